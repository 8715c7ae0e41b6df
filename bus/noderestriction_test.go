package bus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/bus/registry"
	"github.com/miniku/miniku/schemas"
)

// serveNodeAPI runs the apiserver's node API on c until the test ends, and
// returns once it is subscribed.
func serveNodeAPI(t *testing.T, c *bus.Conn) {
	t.Helper()
	serveNodeAPIWith(t, c, bus.NodeAPIConfig{})
}

func serveNodeAPIWith(t *testing.T, c *bus.Conn, cfg bus.NodeAPIConfig) {
	t.Helper()
	cfg.Logger = bustest.Logger(t)
	cfg.PodStatus = registry.For(c, nil).Pods
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	before := c.NATS().NumSubscriptions()
	go func() { done <- bus.ServeNodeAPI(ctx, c, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	bustest.Eventually(t, 10*time.Second, func() error {
		if c.NATS().NumSubscriptions() <= before {
			return errors.New("node API not subscribed yet")
		}
		return c.NATS().Flush()
	})
}

// refused runs a write that must not get through and fails if it does.
func refused(t *testing.T, what string, f func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := f(ctx); err == nil {
		t.Errorf("%s: allowed", what)
	} else {
		t.Logf("%s: %v", what, err)
	}
}

// Kubernetes' NodeRestriction: with kubelet-node-1's credentials, nothing
// but the status of node-1's pods (and removal of its terminated ones)
// may change, whatever the kubelet sends.
func TestNodeRestrictionPods(t *testing.T) {
	ns, authDir := bustest.SecureServer(t, "node-1", "node-2")
	url := ns.ClientURL()
	ctx := context.Background()
	admin := bustest.ConnAs(t, url, authDir, bus.UserAPIServer, false)
	serveNodeAPI(t, admin)
	k1 := bustest.ConnAs(t, url, authDir, bus.KubeletUser("node-1"), true)

	mk := func(name, node string) *schemas.Pod {
		p := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: name, UID: "uid-" + name},
			PodSpec: schemas.PodSpec{Image: "busybox", Command: []string{"sleep", "1d"}}, NodeName: node, Status: schemas.PodPending}
		if err := admin.Pods.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	two := mk("two", "node-2")
	mine := mk("mine", "node-1")
	pending := mk("pending", "")

	// Straight into the bucket: every kind of write refused. Its
	// connection has no pods bucket (it may not even bind to it), so the
	// writes are what a KV client publishes.
	k1js, err := jetstream.New(k1.NATS())
	if err != nil {
		t.Fatal(err)
	}
	kvPut := func(ctx context.Context, p *schemas.Pod, op string) error {
		data, err := schemas.Marshal(p)
		if err != nil {
			return err
		}
		m := nats.NewMsg("$KV." + bus.BucketPods + "." + p.Name)
		m.Data = data
		if op != "" {
			m.Header.Set("KV-Operation", op)
		}
		var opts []jetstream.PublishOpt
		if p.ResourceVersion != 0 {
			opts = append(opts, jetstream.WithExpectLastSequencePerSubject(p.ResourceVersion))
		}
		_, err = k1js.PublishMsg(ctx, m, opts...)
		return err
	}
	refused(t, "create a hostNetwork pod bound to node-2", func(ctx context.Context) error {
		return kvPut(ctx, &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "evil"}, NodeName: "node-2",
			PodSpec: schemas.PodSpec{Image: "busybox", Command: []string{"sh"}, HostNetwork: true}}, "")
	})
	refused(t, "update node-2's pod", func(ctx context.Context) error {
		p := two.DeepCopy()
		p.Command = []string{"sh", "-c", "evil"}
		return kvPut(ctx, p, "")
	})
	refused(t, "update its own pod's spec", func(ctx context.Context) error {
		p := mine.DeepCopy()
		p.HostNetwork = true
		return kvPut(ctx, p, "")
	})
	refused(t, "bind a pending pod to itself", func(ctx context.Context) error {
		p := pending.DeepCopy()
		p.NodeName = "node-1"
		return kvPut(ctx, p, "")
	})
	refused(t, "purge node-2's pod", func(ctx context.Context) error { return kvPut(ctx, two, "PURGE") })
	refused(t, "delete node-2's pod", func(ctx context.Context) error { return kvPut(ctx, two, "DEL") })
	refused(t, "write node-2's Node", func(ctx context.Context) error {
		return k1.Nodes.Create(ctx, &schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: "node-2"}, Status: schemas.NodeReady})
	})

	// Through the node API: only its own pods' status.
	if _, err := k1.UpdatePodStatus(ctx, "node-1", two); !errors.Is(err, bus.ErrForbidden) {
		t.Errorf("status of node-2's pod through the node API: %v, want ErrForbidden", err)
	}
	if _, err := k1.UpdatePodStatus(ctx, "node-1", pending); !errors.Is(err, bus.ErrForbidden) {
		t.Errorf("status of an unbound pod: %v, want ErrForbidden", err)
	}
	if _, err := k1.DeletePod(ctx, "node-1", two); !errors.Is(err, bus.ErrForbidden) {
		t.Errorf("delete node-2's pod through the node API: %v, want ErrForbidden", err)
	}
	refused(t, "speak as node-2 on the node API", func(ctx context.Context) error {
		_, err := k1.UpdatePodStatus(ctx, "node-2", two)
		return err
	})

	for _, name := range []string{"two", "pending"} {
		p, err := admin.Pods.Get(ctx, name)
		if err != nil {
			t.Fatalf("%s after the refused writes: %v", name, err)
		}
		if p.Status != schemas.PodPending || p.HostNetwork || len(p.Command) != 2 || (name == "pending" && p.NodeName != "") {
			t.Errorf("%s changed: %+v", name, p)
		}
	}
	if _, err := admin.Pods.Get(ctx, "evil"); !errors.Is(err, bus.ErrNotFound) {
		t.Errorf("evil pod: %v, want ErrNotFound", err)
	}

	// Its own pod: the status changes, nothing else does.
	got, err := k1.MutatePodStatus(ctx, "node-1", nil, "mine", func(p *schemas.Pod) error {
		p.Status, p.ContainerID = schemas.PodRunning, "c1"
		p.HostNetwork, p.Image, p.NodeName = true, "evil", "node-2"
		return nil
	})
	if err != nil {
		t.Fatalf("status of its own pod: %v", err)
	}
	stored, err := admin.Pods.Get(ctx, "mine")
	if err != nil {
		t.Fatal(err)
	}
	if stored.Status != schemas.PodRunning || stored.ContainerID != "c1" || stored.HostNetwork || stored.Image != "busybox" || stored.NodeName != "node-1" {
		t.Fatalf("own pod after a status write: %+v", stored)
	}
	if got.ResourceVersion != stored.ResourceVersion {
		t.Errorf("written revision %d, stored %d", got.ResourceVersion, stored.ResourceVersion)
	}
	// A stale revision is a conflict that hands back the current pod.
	stale := mine.DeepCopy()
	stale.Status = schemas.PodFailed
	fresh, err := k1.UpdatePodStatus(ctx, "node-1", stale)
	if !errors.Is(err, bus.ErrConflict) || fresh == nil || fresh.ResourceVersion != stored.ResourceVersion || fresh.Status != schemas.PodRunning {
		t.Fatalf("stale status write: %v, %+v", err, fresh)
	}
	// A pod that is not Terminating is not the kubelet's to remove.
	if _, err := k1.DeletePod(ctx, "node-1", stored); !errors.Is(err, bus.ErrForbidden) {
		t.Fatalf("delete its running pod: %v, want ErrForbidden", err)
	}
	term, err := admin.Pods.Mutate(ctx, "mine", func(p *schemas.Pod) error {
		now := time.Now().UTC()
		p.DeletionTimestamp = &now
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k1.DeletePod(ctx, "node-1", term); err != nil {
		t.Fatalf("delete its terminated pod: %v", err)
	}
	if _, err := admin.Pods.Get(ctx, "mine"); !errors.Is(err, bus.ErrNotFound) {
		t.Fatalf("own pod after delete: %v", err)
	}
}

// A terminal status is final, even from the pod's own kubelet.
func TestNodeAPIKeepsTerminalStatus(t *testing.T) {
	ns, authDir := bustest.SecureServer(t, "node-1")
	ctx := context.Background()
	admin := bustest.ConnAs(t, ns.ClientURL(), authDir, bus.UserAPIServer, false)
	serveNodeAPI(t, admin)
	k1 := bustest.ConnAs(t, ns.ClientURL(), authDir, bus.KubeletUser("node-1"), true)
	p := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "done", UID: "u"}, NodeName: "node-1", Status: schemas.PodFailed}
	if err := admin.Pods.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	p.Status = schemas.PodRunning
	if _, err := k1.UpdatePodStatus(ctx, "node-1", p); !errors.Is(err, bus.ErrInvalid) || !strings.Contains(err.Error(), "status") {
		t.Fatalf("Failed back to Running: %v, want ErrInvalid naming status", err)
	}
}

// Another kubelet neither reads an exec's stdin nor answers for it; the
// node's own kubelet serves its exec with the real permissions.
func TestExecStreamScopedToNode(t *testing.T) {
	ns, authDir := bustest.SecureServer(t, "node-1", "node-2")
	url := ns.ClientURL()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	api := bustest.ConnAs(t, url, authDir, bus.UserAPIServer, false)

	serve := func(node string) {
		k := bustest.ConnAs(t, url, authDir, bus.KubeletUser(node), true)
		_, err := k.NATS().Subscribe(bus.KubeletExecSubject(node), func(m *nats.Msg) {
			go func() {
				_ = bus.ServeExec(ctx, k.NATS(), m.Reply, schemas.ExecRequest{Stdin: true}, func(_ context.Context, eio bus.ExecIO) (int, error) {
					_, err := io.Copy(eio.Stdout, eio.Stdin) // cat
					return 0, err
				})
			}()
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := k.NATS().Flush(); err != nil {
			t.Fatal(err)
		}
	}
	serve("node-1")
	serve("node-2")

	spy, spyErrs := rawAs(t, url, authDir, bus.KubeletUser("node-1"))
	seen := make(chan string, 100)
	for _, subj := range []string{
		bus.InboxPrefix(bus.UserAPIServer) + ".*.stdin", // the stdin subject before it carried the node
		bus.InboxPrefix(bus.UserAPIServer) + ".node.node-2.*.stdin",
		bus.InboxPrefix(bus.UserAPIServer) + ".node.*.*.stdin",
		bus.KubeletExecSubject("node-2"),
	} {
		if _, err := spy.Subscribe(subj, func(m *nats.Msg) {
			seen <- m.Subject + " " + string(m.Data)
			_ = m.Respond(nil) // a forged ack of the stdin
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	wantViolation(t, spyErrs, "node-2")

	exec := func(node, secret string) string {
		t.Helper()
		s, err := api.RequestExec(ctx, node, schemas.ExecRequest{Pod: "p", Command: []string{"cat"}, Stdin: true})
		if err != nil {
			t.Fatalf("exec on %s: %v", node, err)
		}
		defer s.Close()
		if err := s.WriteStdin(ctx, []byte(secret)); err != nil {
			t.Fatalf("stdin on %s: %v", node, err)
		}
		if err := s.CloseStdin(ctx); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		for {
			o, err := s.Next(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("exec output on %s: %v", node, err)
			}
			out.Write(o.Data)
		}
		return out.String()
	}
	if got := exec("node-2", "TOP-SECRET-PASSWORD"); got != "TOP-SECRET-PASSWORD" {
		t.Fatalf("exec on node-2 said %q", got)
	}
	if got := exec("node-1", "own"); got != "own" {
		t.Fatalf("exec on node-1 (its own kubelet) said %q", got)
	}
	// Whatever reached the spy came before the exec's end on the same
	// server; a flush makes sure it has been delivered.
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-seen:
		t.Fatalf("kubelet-node-1 received node-2's exec traffic: %s", m)
	default:
	}
}

// The viewer reads only its own replies, and keeps no consumer for good.
func TestViewerInboxAndConsumers(t *testing.T) {
	ns, authDir := bustest.SecureServer(t, "node-1")
	url := ns.ClientURL()
	ctx := context.Background()
	admin := bustest.ConnAs(t, url, authDir, bus.UserAPIServer, false)
	if err := admin.Pods.Create(ctx, &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "p"}}); err != nil {
		t.Fatal(err)
	}
	admin.Emit(schemas.ObjectEvent{Kind: schemas.KindPod, Name: "p", Reason: "Test"})

	nc, errs := rawAs(t, url, authDir, bus.UserViewer)
	for _, subj := range []string{"_INBOX.apiserver.>", "_INBOX.kubelet-node-1.>", "kubelet.node-1.exec", ">"} {
		if _, err := nc.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
		wantViolation(t, errs, subj)
	}

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// What `nats kv watch` and `nats sub --stream` do: ordered
	// (ephemeral) consumers.
	kv, err := js.KeyValue(ctx, bus.BucketPods)
	if err != nil {
		t.Fatal(err)
	}
	w, err := kv.Watch(ctx, "p")
	if err != nil {
		t.Fatalf("viewer kv watch: %v", err)
	}
	select {
	case e := <-w.Updates():
		if e == nil || e.Key() != "p" {
			t.Fatalf("watch: %v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no watch entry")
	}
	_ = w.Stop()
	oc, err := js.OrderedConsumer(ctx, bus.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"event.>"}})
	if err != nil {
		t.Fatalf("viewer ordered consumer on events: %v", err)
	}
	mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := oc.Next(jetstream.FetchMaxWait(5 * time.Second)); err != nil {
		t.Fatalf("viewer reads an event: %v", err)
	}

	// The legacy durable subject: refused.
	_ = nc.Publish("$JS.API.CONSUMER.DURABLE.CREATE.KV_pods.evil", []byte(`{"stream_name":"KV_pods","config":{"durable_name":"evil"}}`))
	wantViolation(t, errs, "$JS.API.CONSUMER.DURABLE.CREATE.KV_pods.evil")
	// A durable on the subject ephemeral ones use too: the server bounds
	// how long it outlives its use, as any consumer's.
	for _, st := range []string{"KV_pods", bus.StreamEvents} {
		c, err := js.CreateConsumer(mctx, st, jetstream.ConsumerConfig{Durable: "evil", AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			t.Logf("durable on %s refused: %v", st, err)
			continue
		}
		cfg := c.CachedInfo().Config
		if cfg.InactiveThreshold <= 0 || cfg.InactiveThreshold > bus.ConsumerIdleLimit {
			t.Errorf("viewer's durable on %s lives on unused for %v, want at most %v", st, cfg.InactiveThreshold, bus.ConsumerIdleLimit)
		}
	}
}

// Events a kubelet records carry its node as their source, whatever they
// claim, and a flood from one node is cut to its rate.
func TestKubeletEventsStampedAndBounded(t *testing.T) {
	ns, authDir := bustest.SecureServer(t, "node-1")
	url := ns.ClientURL()
	ctx := context.Background()
	admin := bustest.ConnAs(t, url, authDir, bus.UserAPIServer, false)
	const burst, perSec = 20, 10
	serveNodeAPIWith(t, admin, bus.NodeAPIConfig{EventRate: perSec, EventBurst: burst})
	k1 := bustest.ConnAs(t, url, authDir, bus.KubeletUser("node-1"), true)

	// Straight into the stream: refused.
	raw, errs := rawAs(t, url, authDir, bus.KubeletUser("node-1"))
	_ = raw.Publish(bus.EventSubject(schemas.KindPod, "x"), []byte("forged"))
	wantViolation(t, errs, bus.EventSubject(schemas.KindPod, "x"))

	k1.Emit(schemas.ObjectEvent{Kind: schemas.KindPod, Name: "x", Reason: "Scheduled", Component: "scheduler", Node: "node-2",
		Message: "Successfully assigned x to node-2"})
	var ev schemas.ObjectEvent
	bustest.Eventually(t, 10*time.Second, func() error {
		m, err := admin.EventsStream().GetLastMsgForSubject(ctx, bus.EventSubject(schemas.KindPod, "x"))
		if err != nil {
			return err
		}
		evs, err := schemas.UnmarshalEvents(m.Data)
		if err != nil {
			return err
		}
		ev = evs[0]
		return nil
	})
	if ev.Component != "kubelet" || ev.Node != "node-1" {
		t.Fatalf("forged event stored as from %q on %q, want kubelet on node-1", ev.Component, ev.Node)
	}

	start := time.Now()
	const flood = 500
	for i := range flood {
		k1.Emit(schemas.ObjectEvent{Kind: schemas.KindPod, Name: fmt.Sprintf("f%d", i), Reason: "Flood"})
	}
	if err := k1.NATS().Flush(); err != nil {
		t.Fatal(err)
	}
	count := func() (int, error) {
		info, err := admin.EventsStream().Info(ctx, jetstream.WithSubjectFilter("event.pod.*"))
		if err != nil {
			return 0, err
		}
		n := 0
		for s, k := range info.State.Subjects {
			if strings.HasPrefix(s, "event.pod.f") {
				n += int(k)
			}
		}
		return n, nil
	}
	bustest.Eventually(t, 10*time.Second, func() error {
		n, err := count()
		if err != nil {
			return err
		}
		if n < burst-1 {
			return fmt.Errorf("%d flood events stored, want the burst of %d", n, burst)
		}
		return nil
	})
	n, err := count()
	if err != nil {
		t.Fatal(err)
	}
	if allowed := burst + int(time.Since(start).Seconds()*perSec) + 1; n > allowed {
		t.Fatalf("%d of %d flood events stored; the rate allows %d", n, flood, allowed)
	}
	t.Logf("%d of %d flood events stored", n, flood)
}
