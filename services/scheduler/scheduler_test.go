package scheduler_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/scheduler"
)

type env struct {
	t    *testing.T
	conn *bus.Conn
}

// startScheduler runs a scheduler on a fresh embedded NATS until the test ends.
func startScheduler(t *testing.T) env {
	t.Helper()
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), nil)
	s, err := scheduler.New(scheduler.Config{Logger: bustest.Logger(t), Resync: time.Second}, conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return env{t: t, conn: conn}
}

func (e env) node(name, cpu, mem string, labels map[string]string) {
	e.t.Helper()
	n := &schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: name, Labels: labels}, Status: schemas.NodeReady,
		LastHeartbeat: time.Now(), Capacity: schemas.ResourceList{CPU: cpu, Memory: mem, Pods: 110}}
	if err := e.conn.Nodes.Create(context.Background(), n); err != nil {
		e.t.Fatal(err)
	}
}

func (e env) pod(name, owner, cpu, mem string, sel map[string]string) {
	e.t.Helper()
	p := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: name, UID: name + "-uid"}, Owner: owner, Status: schemas.PodPending,
		PodSpec: schemas.PodSpec{Image: "busybox", Command: []string{"true"}, NodeSelector: sel,
			Resources: schemas.ResourceList{CPU: cpu, Memory: mem}}}
	if err := e.conn.Pods.Create(context.Background(), p); err != nil {
		e.t.Fatal(err)
	}
	_ = e.conn.Publish(bus.SubjPodCreated, schemas.Event{Type: "created", Kind: schemas.KindPod, Name: name})
}

func (e env) get(name string) *schemas.Pod {
	e.t.Helper()
	p, err := e.conn.Pods.Get(context.Background(), name)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e env) waitBound(name string) string {
	e.t.Helper()
	var node string
	bustest.Eventually(e.t, 20*time.Second, func() error {
		p := e.get(name)
		if p.NodeName == "" {
			return fmt.Errorf("pod %s not bound (%s: %s)", name, p.Reason, p.Message)
		}
		node = p.NodeName
		return nil
	})
	return node
}

// A pod that fits nowhere stays Pending with the reason on it, and is
// bound as soon as room appears: first when the hog is deleted, then when a
// node is added.
func TestUnschedulableUntilRoomAppears(t *testing.T) {
	e := startScheduler(t)
	e.node("n1", "1", "256Mi", nil)
	e.pod("hog", "", "800m", "64Mi", nil)
	if n := e.waitBound("hog"); n != "n1" {
		t.Fatalf("hog on %s, want n1", n)
	}
	e.node("n2", "4", "128Mi", nil)

	e.pod("big", "", "500m", "200Mi", nil)
	want := "0/2 nodes available: 2 insufficient memory, 1 insufficient cpu"
	bustest.Eventually(t, 20*time.Second, func() error {
		p := e.get("big")
		if p.NodeName != "" || p.Status != schemas.PodPending || p.Reason != scheduler.ReasonPodUnschedulable || p.Message != want {
			return fmt.Errorf("pod big: node %q %s %s %q, want Pending Unschedulable %q", p.NodeName, p.Status, p.Reason, p.Message, want)
		}
		return nil
	})
	// The message is written once, not at every retry.
	rv := e.get("big").ResourceVersion
	// Not a synchronisation: a window longer than a resync in which no
	// write may happen.
	time.Sleep(1500 * time.Millisecond)
	if got := e.get("big").ResourceVersion; got != rv {
		t.Fatalf("unchanged reason rewritten: revision %d → %d", rv, got)
	}

	hog := e.get("hog")
	if err := e.conn.Pods.Delete(context.Background(), "hog", hog.ResourceVersion); err != nil {
		t.Fatal(err)
	}
	if n := e.waitBound("big"); n != "n1" {
		t.Fatalf("big on %s, want n1", n)
	}
	if p := e.get("big"); p.Reason != "" || p.Message != "" {
		t.Fatalf("bound pod keeps reason %q %q", p.Reason, p.Message)
	}

	// Now nothing has 200Mi free; a new node makes room.
	e.pod("big2", "", "100m", "200Mi", nil)
	bustest.Eventually(t, 20*time.Second, func() error {
		if p := e.get("big2"); p.Reason != scheduler.ReasonPodUnschedulable {
			return fmt.Errorf("big2: %s %q", p.Reason, p.Message)
		}
		return nil
	})
	e.node("n3", "1", "1Gi", nil)
	if n := e.waitBound("big2"); n != "n3" {
		t.Fatalf("big2 on %s, want n3", n)
	}
}

func TestNodeSelectorHonoured(t *testing.T) {
	e := startScheduler(t)
	e.node("hdd-1", "", "", map[string]string{"disk": "hdd"})
	e.node("hdd-2", "", "", map[string]string{"disk": "hdd"})
	e.node("ssd-1", "", "", map[string]string{"disk": "ssd"})
	for i := range 5 {
		e.pod(fmt.Sprint("fast-", i), "", "", "", map[string]string{"disk": "ssd"})
	}
	for i := range 5 {
		if n := e.waitBound(fmt.Sprint("fast-", i)); n != "ssd-1" {
			t.Fatalf("fast-%d on %s, want ssd-1", i, n)
		}
	}
	e.pod("gpu", "", "", "", map[string]string{"gpu": "yes"})
	bustest.Eventually(t, 20*time.Second, func() error {
		p := e.get("gpu")
		if p.NodeName != "" || p.Message != "0/3 nodes available: 3 didn't match nodeSelector" {
			return fmt.Errorf("gpu: node %q %q", p.NodeName, p.Message)
		}
		return nil
	})
}

func TestReplicaSetSpreadAcrossNodes(t *testing.T) {
	e := startScheduler(t)
	for _, n := range []string{"a", "b", "c"} {
		e.node(n, "4", "4Gi", nil)
	}
	// Other pods load a: the spread still puts web's pods evenly.
	for i := range 3 {
		e.pod(fmt.Sprint("other-", i), "other", "1", "1Gi", map[string]string{})
	}
	for i := range 3 {
		e.waitBound(fmt.Sprint("other-", i))
	}
	for i := range 9 {
		e.pod(fmt.Sprint("web-", i), "web", "100m", "64Mi", nil)
	}
	count := map[string]int{}
	for i := range 9 {
		count[e.waitBound(fmt.Sprint("web-", i))]++
	}
	if count["a"] != 3 || count["b"] != 3 || count["c"] != 3 {
		t.Fatalf("web spread %v, want 3 per node", count)
	}
}

// events returns "Reason: message" of every event recorded about pod.
func (e env) events(pod string) []string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := e.conn.EventsStream().OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{bus.EventSubject(schemas.KindPod, pod)}})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for {
		msgs, err := cons.FetchNoWait(100)
		if err != nil {
			e.t.Fatal(err)
		}
		n := 0
		for m := range msgs.Messages() {
			n++
			var ev schemas.ObjectEvent
			if err := schemas.Unmarshal(m.Data(), &ev); err != nil {
				e.t.Fatal(err)
			}
			out = append(out, ev.Type+" "+ev.Reason+": "+ev.Message)
		}
		if n == 0 {
			return out
		}
	}
}

func TestSchedulingEvents(t *testing.T) {
	e := startScheduler(t)
	e.node("n1", "1", "1Gi", nil)
	e.pod("big", "", "2", "", nil)
	bustest.Eventually(t, 20*time.Second, func() error {
		if got := strings.Join(e.events("big"), "\n"); got != "Warning FailedScheduling: 0/1 nodes available: 1 insufficient cpu" {
			return fmt.Errorf("events %q", got)
		}
		return nil
	})
	e.node("n2", "4", "1Gi", nil)
	e.waitBound("big")
	bustest.Eventually(t, 20*time.Second, func() error {
		got := e.events("big")
		// Once per reason: the retries in between wrote nothing.
		if len(got) != 2 || got[1] != "Normal Scheduled: Successfully assigned big to n2" {
			return fmt.Errorf("events %q", got)
		}
		return nil
	})
}

// With caches shared by the process (miniku up), a new term joins the
// running caches: it must count the binds of the term before it, so a
// full node stays full for it, and must not leave the old term's handlers
// behind.
func TestSharedCachesAcrossTerms(t *testing.T) {
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), nil)
	log := bustest.Logger(t)
	pods := bus.NewInformer(conn, conn.Pods, time.Hour, log)
	nodes := bus.NewInformer(conn, conn.Nodes, time.Hour, log)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, run := range []func(context.Context) error{pods.Run, nodes.Run} {
		done := make(chan struct{})
		go func() { defer close(done); _ = run(ctx) }()
		defer func() { cancel(); <-done }()
	}
	term := func() (stop func()) {
		s, err := scheduler.New(scheduler.Config{Logger: log, Pods: pods, Nodes: nodes}, conn)
		if err != nil {
			t.Fatal(err)
		}
		tctx, tcancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = s.Run(tctx) }()
		return func() { tcancel(); <-done }
	}
	e := env{t: t, conn: conn}
	n := &schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: "a"}, Status: schemas.NodeReady, LastHeartbeat: time.Now(),
		Capacity: schemas.ResourceList{Pods: 2}}
	if err := conn.Nodes.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	stop := term()
	e.pod("p1", "web", "", "", nil)
	e.pod("p2", "web", "", "", nil)
	e.waitBound("p1")
	e.waitBound("p2")
	stop()

	stop = term()
	defer stop()
	e.pod("p3", "web", "", "", nil)
	bustest.Eventually(t, 20*time.Second, func() error {
		p := e.get("p3")
		if p.NodeName != "" {
			t.Fatalf("p3 bound to %s, a node the last term filled", p.NodeName)
		}
		if !strings.Contains(p.Message, "too many pods") {
			return fmt.Errorf("p3: reason %q, message %q", p.Reason, p.Message)
		}
		return nil
	})
}
