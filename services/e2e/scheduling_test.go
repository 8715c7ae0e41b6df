package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas"
)

// controlPlane starts NATS and an apiserver as processes, and returns the
// API client, the NATS URL and a bus connection for the test's own writes.
// No kubelets: the test registers node objects itself, so binding is all
// that happens (pods stay Pending on their node).
func controlPlane(t *testing.T) (api, string, *bus.Conn, string) {
	t.Helper()
	natsAddr, apiAddr := freeAddr(t), freeAddr(t)
	natsURL := "nats://" + natsAddr
	dir := filepath.Join(t.TempDir(), "nats")
	start(t, "nats", "nats", "--addr", natsAddr, "--data-dir", dir)
	// Components find their NATS credentials under the shared data dir.
	eventually(t, 30*time.Second, func() error {
		_, err := os.Stat(filepath.Join(dir, "nats", "auth", "viewer.json"))
		return err
	})
	start(t, "apiserver", "apiserver", "--nats", natsURL, "--api-addr", apiAddr, "--data-dir", dir)
	a := api{t: t, base: "http://" + apiAddr}
	eventually(t, 30*time.Second, func() error {
		if code, body := a.do("GET", "/healthz", ""); code != 200 {
			return fmt.Errorf("healthz %d %s", code, body)
		}
		return nil
	})
	return a, natsURL, busConnAs(t, natsURL, dir, bus.UserController), dir
}

func registerNode(t *testing.T, conn *bus.Conn, name string, capacity schemas.ResourceList) {
	t.Helper()
	n := &schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: name}, Status: schemas.NodeReady, LastHeartbeat: time.Now(), Capacity: capacity}
	if err := conn.Nodes.Create(context.Background(), n); err != nil {
		t.Fatal(err)
	}
}

// checkCapacity fails unless every pod of rs is bound and no node holds more
// than its capacity; it returns pods per node.
func checkCapacity(a api, nodes []schemas.Node, rs string, want int) (map[string]int, error) {
	pods, err := a.pods()
	if err != nil {
		return nil, err
	}
	type use struct {
		cpu, mem int64
		pods     int
	}
	used := map[string]*use{}
	count := map[string]int{}
	mine := 0
	for _, p := range pods {
		if p.Owner == rs && p.DeletionTimestamp == nil {
			mine++
			if p.NodeName == "" {
				return nil, fmt.Errorf("pod %s not bound (%s %s)", p.Name, p.Reason, p.Message)
			}
			count[p.NodeName]++
		}
		if p.NodeName == "" || p.Status.Terminal() {
			continue
		}
		u := used[p.NodeName]
		if u == nil {
			u = &use{}
			used[p.NodeName] = u
		}
		u.cpu += p.Resources.CPUMilli()
		u.mem += p.Resources.MemoryBytes()
		u.pods++
	}
	for _, n := range nodes {
		u := used[n.Name]
		if u == nil {
			continue
		}
		if u.pods > n.Capacity.Pods || u.cpu > n.Capacity.CPUMilli() || u.mem > n.Capacity.MemoryBytes() {
			return nil, fmt.Errorf("node %s overcommitted: %d pods, %dm cpu, %d bytes; capacity %+v", n.Name, u.pods, u.cpu, u.mem, n.Capacity)
		}
	}
	if mine != want {
		return nil, fmt.Errorf("replicaset %s has %d pods, want %d", rs, mine, want)
	}
	return count, nil
}

// leaseHolderPID reads which process holds a lease (holder is host-pid-rand).
func leaseHolderPID(t *testing.T, conn *bus.Conn, name string) (int, error) {
	js, err := jetstream.New(conn.NATS())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, bus.BucketLeases)
	if err != nil {
		return 0, err
	}
	e, err := kv.Get(ctx, name)
	if err != nil {
		return 0, err
	}
	parts := strings.Split(string(e.Value()), "-")
	if len(parts) < 3 {
		return 0, fmt.Errorf("lease %s holder %q", name, e.Value())
	}
	return strconv.Atoi(parts[len(parts)-2])
}

func scale(t *testing.T, a api, name string, n int) {
	t.Helper()
	for {
		rs, err := a.replicaSet(name)
		if err != nil {
			t.Fatal(err)
		}
		rs.DesiredCount = n
		body, _ := json.Marshal(rs)
		code, resp := a.do("PUT", "/replicasets/"+name, string(body))
		if code == 200 {
			return
		}
		if code != 409 {
			t.Fatalf("PUT /replicasets/%s: %d %s", name, code, resp)
		}
	}
}

var assignRE = regexp.MustCompile(`assigning pod (\S+) to node`)

// Two schedulers and two controllers, each its own process, on a replicaset
// of 200 pods over 4 nodes of limited capacity: every pod is bound exactly
// once, no node is overcommitted, there are never more than 200 pods; the
// same after scaling down and up. kill -9 of the leading scheduler and then
// of the leading controller: the standbys take over.
func TestTwoSchedulersTwoControllers(t *testing.T) {
	a, natsURL, conn, dir := controlPlane(t)
	procs := map[int]*proc{}
	for i := range 2 {
		p := start(t, fmt.Sprint("scheduler-", i), "scheduler", "--nats", natsURL, "--data-dir", dir, "--lease-ttl", "2s")
		procs[p.cmd.Process.Pid] = p
		c := start(t, fmt.Sprint("controller-", i), "controller", "--nats", natsURL, "--data-dir", dir, "--lease-ttl", "2s",
			"--node-grace", "1h", "--eviction-timeout", "1h")
		procs[c.cmd.Process.Pid] = c
	}
	// 33 + 32 + 55 + 90 = 210 slots for pods of 30m cpu and 16Mi.
	caps := map[string]schemas.ResourceList{
		"n1": {CPU: "1", Memory: "64Gi", Pods: 110},   // cpu: 33 pods
		"n2": {CPU: "64", Memory: "512Mi", Pods: 110}, // memory: 32 pods
		"n3": {CPU: "64", Memory: "64Gi", Pods: 55},
		"n4": {CPU: "64", Memory: "64Gi", Pods: 90},
	}
	var nodes []schemas.Node
	for name, c := range caps {
		registerNode(t, conn, name, c)
		nodes = append(nodes, schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: name}, Capacity: c})
	}

	// No kubelets run here: finish graceful deletions as a kubelet would
	// once the container is stopped, so terminating pods free their room.
	stopFinisher := finishTerminations(t, conn)
	defer stopFinisher()

	// Never more pods than desired: watch every pod creation.
	maxSeen := make(chan int, 1)
	maxSeen <- 0
	stopWatch := watchPodCount(t, conn, "web", maxSeen)
	defer stopWatch()

	rs := `{"name":"web","desiredCount":200,"selector":{"app":"web"},"template":{"image":"busybox","command":["sleep","3600"],"resources":{"cpu":"30m","memory":"16Mi"}}}`
	if code, body := a.do("POST", "/replicasets", rs); code != 201 {
		t.Fatalf("POST /replicasets: %d %s", code, body)
	}
	posted := time.Now()
	var perNode map[string]int
	eventually(t, 90*time.Second, func() (err error) { perNode, err = checkCapacity(a, nodes, "web", 200); return err })
	t.Logf("200 pods bound in %v: %v", time.Since(posted).Round(time.Millisecond), perNode)
	if m := <-maxSeen; m > 200 {
		t.Fatalf("saw %d pods of web at once: duplicates were created", m)
	} else {
		maxSeen <- m
	}

	scale(t, a, "web", 120)
	eventually(t, 60*time.Second, func() (err error) { _, err = checkCapacity(a, nodes, "web", 120); return err })
	scale(t, a, "web", 200)
	eventually(t, 90*time.Second, func() (err error) { perNode, err = checkCapacity(a, nodes, "web", 200); return err })
	t.Logf("after scaling to 120 and back to 200: %v", perNode)

	// Kill the leading scheduler: the standby binds new pods.
	pid, err := leaseHolderPID(t, conn, "scheduler")
	if err != nil || procs[pid] == nil {
		t.Fatalf("scheduler lease holder pid %d (%v) is not one of ours", pid, err)
	}
	procs[pid].kill()
	killed := time.Now()
	scale(t, a, "web", 205)
	eventually(t, 60*time.Second, func() (err error) { _, err = checkCapacity(a, nodes, "web", 205); return err })
	t.Logf("scheduler kill -9 to new pods bound by the standby: %v (lease TTL 2s)", time.Since(killed).Round(time.Millisecond))
	if newPID, err := leaseHolderPID(t, conn, "scheduler"); err != nil || newPID == pid || procs[newPID] == nil {
		t.Fatalf("scheduler lease now held by pid %d (%v), killed %d", newPID, err, pid)
	}

	// Kill the leading controller: the standby creates the missing pods.
	pid, err = leaseHolderPID(t, conn, "controller")
	if err != nil || procs[pid] == nil {
		t.Fatalf("controller lease holder pid %d (%v) is not one of ours", pid, err)
	}
	procs[pid].kill()
	killed = time.Now()
	scale(t, a, "web", 210)
	eventually(t, 60*time.Second, func() (err error) { perNode, err = checkCapacity(a, nodes, "web", 210); return err })
	t.Logf("controller kill -9 to 210 pods bound: %v; per node %v", time.Since(killed).Round(time.Millisecond), perNode)
	// Full: one more pod stays Pending with the reason.
	scale(t, a, "web", 211)
	eventually(t, 60*time.Second, func() error {
		pods, err := a.pods()
		if err != nil {
			return err
		}
		for _, p := range pods {
			if p.NodeName == "" && p.Owner == "web" && p.Reason == "Unschedulable" &&
				p.Message == "0/4 nodes available: 2 too many pods, 1 insufficient cpu, 1 insufficient memory" {
				return nil
			}
		}
		return fmt.Errorf("no Pending pod with the expected reason among %d", len(pods))
	})

	stopWatch()
	if m := <-maxSeen; m > 211 {
		t.Fatalf("saw %d pods of web at once: duplicates were created", m)
	}
	// Every bind happened once, across both schedulers' logs.
	binds := map[string]int{}
	for _, p := range procs {
		if !strings.HasPrefix(p.name, "scheduler") {
			continue
		}
		for _, m := range assignRE.FindAllStringSubmatch(p.output(), -1) {
			binds[m[1]]++
		}
	}
	for pod, n := range binds {
		if n > 1 {
			t.Errorf("pod %s bound %d times", pod, n)
		}
	}
	if len(binds) < 210 {
		t.Errorf("%d binds logged, want at least 210", len(binds))
	}
}

// watchPodCount records the largest number of rs's pods that existed at
// once, from a KV watch of the pods bucket (every revision, not samples).
func watchPodCount(t *testing.T, conn *bus.Conn, rs string, maxSeen chan int) func() {
	ctx, cancel := context.WithCancel(context.Background())
	w, err := conn.Pods.KV().WatchAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer w.Stop()
		live := map[string]bool{}
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					continue
				}
				if e.Operation() != jetstream.KeyValuePut {
					delete(live, e.Key())
					continue
				}
				var p schemas.Pod
				if schemas.Unmarshal(e.Value(), &p) != nil || p.Owner != rs {
					continue
				}
				if p.DeletionTimestamp != nil {
					// Terminating pods are on their way out; replacements
					// for them are expected, as in Kubernetes.
					delete(live, e.Key())
					continue
				}
				live[e.Key()] = true
				m := <-maxSeen
				maxSeen <- max(m, len(live))
			}
		}
	}()
	stopped := false
	return func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
}

// Cordon keeps new pods off a node; drain deletes its pods and the
// replicaset replaces them elsewhere; nodeSelector pins pods to labelled
// nodes.
func TestCordonDrainAndNodeSelector(t *testing.T) {
	a, natsURL, conn, dir := controlPlane(t)
	start(t, "scheduler", "scheduler", "--nats", natsURL, "--data-dir", dir, "--lease-ttl", "2s")
	start(t, "controller", "controller", "--nats", natsURL, "--data-dir", dir, "--lease-ttl", "2s", "--node-grace", "1h", "--eviction-timeout", "1h")
	room := schemas.ResourceList{CPU: "8", Memory: "8Gi", Pods: 110}
	for _, n := range []string{"n1", "n2", "n3"} {
		registerNode(t, conn, n, room)
	}
	if code, body := a.do("POST", "/replicasets", `{"name":"web","desiredCount":6,"selector":{"app":"web"},"template":{"image":"busybox","command":["sleep","3600"]}}`); code != 201 {
		t.Fatalf("POST /replicasets: %d %s", code, body)
	}
	live := func(want int) (map[string][]string, error) {
		pods, err := a.pods()
		if err != nil {
			return nil, err
		}
		out := map[string][]string{}
		n := 0
		for _, p := range pods {
			if p.Owner != "web" || p.DeletionTimestamp != nil || p.Status.Terminal() {
				continue
			}
			if p.NodeName == "" {
				return nil, fmt.Errorf("pod %s not bound", p.Name)
			}
			out[p.NodeName] = append(out[p.NodeName], p.Name)
			n++
		}
		if n != want {
			return nil, fmt.Errorf("%d live pods, want %d", n, want)
		}
		return out, nil
	}
	var byNode map[string][]string
	eventually(t, 60*time.Second, func() (err error) { byNode, err = live(6); return err })
	if len(byNode["n1"]) != 2 || len(byNode["n2"]) != 2 || len(byNode["n3"]) != 2 {
		t.Fatalf("not spread: %v", byNode)
	}

	if code, body := a.do("POST", "/nodes/n1/cordon", ""); code != 200 {
		t.Fatalf("cordon: %d %s", code, body)
	}
	scale(t, a, "web", 12)
	eventually(t, 60*time.Second, func() (err error) { byNode, err = live(12); return err })
	if len(byNode["n1"]) != 2 {
		t.Fatalf("cordoned n1 got new pods: %v", byNode)
	}

	code, body := a.do("POST", "/nodes/n2/drain", "")
	if code != 200 {
		t.Fatalf("drain: %d %s", code, body)
	}
	var res struct {
		Node    string   `json:"node"`
		Evicted []string `json:"evicted"`
	}
	if err := json.Unmarshal(body, &res); err != nil || len(res.Evicted) != len(byNode["n2"]) {
		t.Fatalf("drain evicted %s, n2 had %v (%v)", body, byNode["n2"], err)
	}
	eventually(t, 60*time.Second, func() (err error) {
		byNode, err = live(12)
		if err == nil && len(byNode["n2"]) != 0 {
			err = fmt.Errorf("drained n2 still has %v", byNode["n2"])
		}
		return err
	})
	if len(byNode["n1"]) != 2 || len(byNode["n3"]) != 10 {
		t.Fatalf("after drain of n2 with n1 cordoned: %v, want 2 on n1 and 10 on n3", byNode)
	}

	// Uncordon: n1 and n2 take pods again. A labelled node and a selector.
	for _, n := range []string{"n1", "n2"} {
		if code, body := a.do("POST", "/nodes/"+n+"/uncordon", ""); code != 200 {
			t.Fatalf("uncordon %s: %d %s", n, code, body)
		}
	}
	if _, err := conn.Nodes.Mutate(context.Background(), "n2", func(n *schemas.Node) error {
		n.Labels = map[string]string{"disk": "ssd"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if code, body := a.do("POST", "/replicasets", `{"name":"db","desiredCount":3,"selector":{"app":"db"},"template":{"image":"busybox","command":["sleep","3600"],"nodeSelector":{"disk":"ssd"}}}`); code != 201 {
		t.Fatalf("POST /replicasets db: %d %s", code, body)
	}
	eventually(t, 60*time.Second, func() error {
		pods, err := a.pods()
		if err != nil {
			return err
		}
		n := 0
		for _, p := range pods {
			if p.Owner != "db" {
				continue
			}
			if p.NodeName != "n2" {
				return fmt.Errorf("db pod %s on %q, want n2 (disk=ssd)", p.Name, p.NodeName)
			}
			n++
		}
		if n != 3 {
			return fmt.Errorf("%d db pods", n)
		}
		return nil
	})
}

// finishTerminations deletes every Terminating pod (with CAS on the revision
// it saw), standing in for the kubelets this test does not run.
func finishTerminations(t *testing.T, conn *bus.Conn) func() {
	ctx, cancel := context.WithCancel(context.Background())
	w, err := conn.Pods.KV().WatchAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil || e.Operation() != jetstream.KeyValuePut {
					continue
				}
				var p schemas.Pod
				if schemas.Unmarshal(e.Value(), &p) != nil || p.DeletionTimestamp == nil {
					continue
				}
				_ = conn.Pods.Delete(ctx, e.Key(), e.Revision())
			}
		}
	}()
	return func() { cancel(); <-done }
}
