package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/pki"
	mkrt "github.com/miniku/miniku/runtime"
	"github.com/miniku/miniku/runtime/image/imagetest"
	"github.com/miniku/miniku/schemas"
)

// Chaos knobs: MINIKU_CHAOS_DURATION (a Go duration, default 60s; `make
// chaos` runs longer) and MINIKU_CHAOS_SEED (default: the clock; printed so
// a failing run can be replayed).
func chaosSettings(t *testing.T) (time.Duration, uint64) {
	t.Helper()
	d := 60 * time.Second
	if s := os.Getenv("MINIKU_CHAOS_DURATION"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			t.Fatalf("MINIKU_CHAOS_DURATION: %v", err)
		}
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("MINIKU_CHAOS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("MINIKU_CHAOS_SEED: %v", err)
		}
	}
	return d, seed
}

// chaosCluster is every component as its own process, restartable.
type chaosCluster struct {
	t     *testing.T
	mu    sync.Mutex
	procs map[string]*proc
	args  map[string][]string
	order []string
	all   []*proc // every process ever started, for the panic check

	dataDir, ctlDir, natsURL string
}

// startCluster runs every component as its own process: NATS, an
// apiserver, `pairs` schedulers and controllers, and a kubelet per node,
// all with short timers, and waits until every node is Ready.
func startCluster(t *testing.T, nodes []string, pairs int) (*chaosCluster, api) {
	t.Helper()
	dataDir := t.TempDir()
	natsAddr, apiAddr := freeAddr(t), freeAddr(t)
	registry := imagetest.Registry(t)
	t.Cleanup(func() { cleanupContainers(t, dataDir) })
	natsURL := "nats://" + natsAddr
	ctlDir := filepath.Join(dataDir, "nats-server")

	c := &chaosCluster{t: t, procs: map[string]*proc{}, args: map[string][]string{},
		dataDir: dataDir, ctlDir: ctlDir, natsURL: natsURL}
	c.add("nats", "nats", "--addr", natsAddr, "--data-dir", ctlDir, "--kubelets", strings.Join(nodes, ","))
	eventually(t, 30*time.Second, func() error {
		_, err := os.Stat(filepath.Join(ctlDir, "nats", "auth", bus.UserViewer+".json"))
		return err
	})
	c.add("apiserver", "apiserver", "--nats", natsURL, "--api-addr", apiAddr, "--data-dir", ctlDir)
	for i := 1; i <= pairs; i++ {
		c.add(fmt.Sprintf("scheduler-%d", i), "scheduler", "--nats", natsURL, "--data-dir", ctlDir, "--lease-ttl", "2s")
	}
	for i := 1; i <= pairs; i++ {
		c.add(fmt.Sprintf("controller-%d", i), "controller", "--nats", natsURL, "--data-dir", ctlDir, "--lease-ttl", "2s",
			"--node-grace", "3s", "--eviction-timeout", "3s")
	}
	for _, n := range nodes {
		c.add("kubelet-"+n, "kubelet", "--nats", natsURL, "--node-name", n,
			"--nats-creds", filepath.Join(ctlDir, "nats", "auth", "kubelet-"+n+".json"), "--nats-ca", pki.CAPath(ctlDir),
			"--data-dir", dataDir, "--registry-mirror", "http://"+registry,
			"--heartbeat-interval", "500ms", "--restart-backoff", "300ms", "--restart-backoff-max", "2s")
	}
	a := api{t: t, base: "http://" + apiAddr}
	waitReadyNodes(t, a, len(nodes))
	return c, a
}

func (c *chaosCluster) add(name string, args ...string) {
	c.args[name] = args
	c.order = append(c.order, name)
	c.procs[name] = start(c.t, name, args...)
	c.all = append(c.all, c.procs[name])
}

func (c *chaosCluster) kill(name string) {
	c.mu.Lock()
	p := c.procs[name]
	c.mu.Unlock()
	p.kill()
}

func (c *chaosCluster) restart(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.procs[name].kill()
	c.procs[name] = start(c.t, name, c.args[name]...)
	c.all = append(c.all, c.procs[name])
}

// exited returns the components that ended by themselves (not killed by us
// and not yet restarted), restarting them.
func (c *chaosCluster) reviveExited() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, name := range c.order {
		p := c.procs[name]
		select {
		case <-p.done:
			c.t.Logf("chaos: %s exited by itself: %v\n%s", name, p.cmd.ProcessState, tail(p.output(), 2000))
			out = append(out, name)
			c.procs[name] = start(c.t, name, c.args[name]...)
			c.all = append(c.all, c.procs[name])
		default:
		}
	}
	return out
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// chaosModel is what the client was told: the last accepted desiredCount
// of every replicaset it created and has not deleted.
type chaosModel struct {
	mu      sync.Mutex
	live    map[string]int
	deleted map[string]bool
	tried   atomic.Int64
	okay    atomic.Int64
}

// Kill -9 and restart random components, NATS included, while a client
// creates, scales and deletes replicasets; then everything the client was
// told succeeded must hold, with exactly the right containers running.
func TestChaos(t *testing.T) {
	requireRoot(t)
	duration, seed := chaosSettings(t)
	t.Logf("chaos: seed %d (MINIKU_CHAOS_SEED=%d to replay), duration %v", seed, seed, duration)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	c, a := startCluster(t, []string{"node-a", "node-b", "node-c"}, 2)
	dataDir := c.dataDir
	// Pull the image once before the faults start, so the first pods do
	// not spend the run waiting for it.
	if code, body := a.do("POST", "/replicasets", chaosRS("warm", 3)); code != 201 {
		t.Fatalf("POST warm: %d %s", code, body)
	}
	eventually(t, 60*time.Second, func() error { _, err := running(a, "warm", 3); return err })

	m := &chaosModel{live: map[string]int{"warm": 3}, deleted: map[string]bool{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); chaosClient(t, a, m, rand.New(rand.NewPCG(seed+1, seed)), stop) }()

	faults, natsFaults, selfExits := 0, 0, 0
	end := time.Now().Add(duration)
	for time.Now().Before(end) {
		time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
		// Mostly one component at a time, sometimes two together.
		victims := []string{c.order[rng.IntN(len(c.order))]}
		if rng.IntN(4) == 0 {
			if other := c.order[rng.IntN(len(c.order))]; other != victims[0] {
				victims = append(victims, other)
			}
		}
		for _, name := range victims {
			c.kill(name)
			faults++
			if name == "nats" {
				natsFaults++
			}
		}
		time.Sleep(time.Duration(100+rng.IntN(2000)) * time.Millisecond)
		for _, name := range victims {
			c.restart(name)
		}
		selfExits += len(c.reviveExited())
	}
	close(stop)
	wg.Wait()
	selfExits += len(c.reviveExited())
	t.Logf("chaos: faults injected %d (NATS %d); components that exited by themselves %d", faults, natsFaults, selfExits)

	// Settle: every accepted object holds, with exactly its pods running.
	m.mu.Lock()
	defer m.mu.Unlock()
	settle := 120 * time.Second
	began := time.Now()
	var checked, podsChecked, containersChecked int
	eventually(t, settle, func() error {
		if n := len(c.reviveExited()); n > 0 {
			selfExits += n
		}
		var list []schemas.ReplicaSet
		if err := a.getJSON("/replicasets", &list); err != nil {
			return err
		}
		got := map[string]int{}
		for _, rs := range list {
			got[rs.Name] = rs.DesiredCount
		}
		for name, want := range m.live {
			d, ok := got[name]
			if !ok {
				return fmt.Errorf("LOST: replicaset %s (desiredCount %d accepted) is missing", name, want)
			}
			if d != want {
				return fmt.Errorf("LOST: replicaset %s has desiredCount %d, the last accepted was %d", name, d, want)
			}
		}
		for name := range got {
			if _, ok := m.live[name]; !ok {
				return fmt.Errorf("replicaset %s exists but was deleted (or never accepted)", name)
			}
		}
		pods, err := a.pods()
		if err != nil {
			return err
		}
		byUID := map[string]schemas.Pod{}
		total := 0
		for _, p := range pods {
			if _, ok := m.live[p.Owner]; !ok {
				return fmt.Errorf("pod %s of %q has no replicaset", p.Name, p.Owner)
			}
			if p.DeletionTimestamp != nil {
				return fmt.Errorf("pod %s still terminating", p.Name)
			}
			byUID[p.UID] = p
		}
		for name, want := range m.live {
			if _, err := running(a, name, want); err != nil {
				return err
			}
			total += want
		}
		seen := map[string]string{}
		live := liveContainersByNode(t, dataDir)
		n := 0
		for node, cs := range live {
			for _, ct := range cs {
				n++
				uid := ct.Labels["miniku.pod-uid"]
				p, ok := byUID[uid]
				if !ok {
					return fmt.Errorf("container %s on %s runs without a pod (pod %s uid %s)", ct.ID, node, ct.Labels["miniku.pod"], uid)
				}
				if p.NodeName != node {
					return fmt.Errorf("container %s of pod %s runs on %s, the pod is bound to %s", ct.ID, p.Name, node, p.NodeName)
				}
				if other, dup := seen[uid]; dup {
					return fmt.Errorf("pod %s has two live containers: on %s and %s", p.Name, other, node)
				}
				seen[uid] = node
			}
		}
		if n != total {
			return fmt.Errorf("%d live containers, want %d", n, total)
		}
		// A container whose start was cut short before state.json has no
		// state for List to read: only its shim process shows it.
		if dirs := unrecordedShims(dataDir); len(dirs) > 0 {
			return fmt.Errorf("container shims running for directories without state: %v", dirs)
		}
		checked, podsChecked, containersChecked = len(m.live)+len(m.deleted), len(pods), n
		return nil
	})
	t.Logf("chaos: settled in %v", time.Since(began).Round(time.Millisecond))
	t.Logf("chaos: seed %d, %v, faults injected %d (NATS %d), self-exits %d, requests tried %d, accepted %d, "+
		"objects checked %d (%d live, %d deleted), pods checked %d, containers checked %d, lost 0",
		seed, duration, faults, natsFaults, selfExits, m.tried.Load(), m.okay.Load(),
		checked, len(m.live), len(m.deleted), podsChecked, containersChecked)
	if selfExits > 0 {
		t.Errorf("%d components exited by themselves during the chaos (see the log)", selfExits)
	}
	c.checkNoPanic()
}

// checkNoPanic fails the test if any process ever started panicked or hit
// a fatal runtime error.
func (c *chaosCluster) checkNoPanic() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.all {
		out := p.output()
		for _, bad := range []string{"panic:", "fatal error:", "DATA RACE"} {
			if i := strings.Index(out, bad); i >= 0 {
				c.t.Errorf("%s: %s\n%s", p.name, bad, tail(out[i:], 4000))
			}
		}
	}
}

func chaosRS(name string, n int) string {
	return fmt.Sprintf(`{"name":%q,"desiredCount":%d,"selector":{"app":%q},"template":{"image":"busybox","command":["sleep","3600"],"terminationGracePeriodSeconds":1}}`, name, n, name)
}

func waitReadyNodes(t *testing.T, a api, want int) {
	t.Helper()
	eventually(t, 60*time.Second, func() error {
		var nodes []schemas.Node
		if err := a.getJSON("/nodes", &nodes); err != nil {
			return err
		}
		ready := 0
		for _, n := range nodes {
			if n.Status == schemas.NodeReady {
				ready++
			}
		}
		if ready != want {
			return fmt.Errorf("%d Ready nodes, want %d", ready, want)
		}
		return nil
	})
}

// liveContainersByNode lists running containers per node of dataDir.
func liveContainersByNode(t *testing.T, dataDir string) map[string][]mkrt.Container {
	t.Helper()
	out := map[string][]mkrt.Container{}
	roots, _ := filepath.Glob(filepath.Join(dataDir, "nodes", "*", "containers"))
	for _, root := range roots {
		node := filepath.Base(filepath.Dir(root))
		rt, err := mkrt.New(root, nil)
		if err != nil {
			t.Fatal(err)
		}
		list, err := rt.List()
		_ = rt.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, ct := range list {
			if ct.Status == mkrt.StatusRunning {
				out[node] = append(out[node], ct)
			}
		}
	}
	return out
}

// unrecordedShims returns the container directories under dataDir that a
// live shim ("<exe> runtime-init <dir>") runs for but that hold no
// state.json: containers no List can see.
func unrecordedShims(dataDir string) []string {
	procs, _ := os.ReadDir("/proc")
	prefix := filepath.Join(dataDir, "nodes") + "/"
	var out []string
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
		if len(args) != 3 || args[1] != mkrt.InitArg || !strings.HasPrefix(args[2], prefix) {
			continue
		}
		if _, err := os.Stat(filepath.Join(args[2], "state.json")); errors.Is(err, os.ErrNotExist) {
			out = append(out, args[2])
		}
	}
	return out
}

const (
	chaosMaxRS    = 5 // at most 5 × 4 pods + warm's 3 = 23 containers
	chaosMaxCount = 4
)

// chaosClient creates, scales and deletes replicasets until stop. A request
// that gets no answer (connection error, 5xx) may or may not have happened,
// so the client repeats it until the outcome is known: a 2xx, or a read that
// shows its effect. Only then is the value recorded as accepted.
func chaosClient(t *testing.T, a api, m *chaosModel, rng *rand.Rand, stop <-chan struct{}) {
	next := 0
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	// do retries until a non-5xx answer (the components come back, so one
	// arrives; 0 after 2 minutes without).
	do := func(method, path, body string) (int, []byte) {
		giveUp := time.Now().Add(2 * time.Minute)
		for time.Now().Before(giveUp) {
			m.tried.Add(1)
			code, data := a.do(method, path, body)
			if code != 0 && code < 500 {
				if code < 300 {
					m.okay.Add(1)
				}
				return code, data
			}
			time.Sleep(100 * time.Millisecond)
		}
		return 0, []byte("no answer for 2 minutes")
	}
	for !stopped() {
		m.mu.Lock()
		names := make([]string, 0, len(m.live))
		for n := range m.live {
			names = append(names, n)
		}
		m.mu.Unlock()
		sort.Strings(names)
		op := rng.IntN(10)
		switch {
		case len(names) < chaosMaxRS && (op < 3 || len(names) == 0):
			name := fmt.Sprintf("rs-%d", next)
			next++
			n := rng.IntN(chaosMaxCount + 1)
			for {
				code, body := do("POST", "/replicasets", chaosRS(name, n))
				if code == 201 {
					break
				}
				if code == 409 { // an earlier attempt went through?
					rs, ok := getRS(a, m, name, do)
					if ok && rs.DesiredCount == n {
						break
					}
				}
				t.Errorf("chaos client: POST %s: %d %s", name, code, body)
				return
			}
			m.mu.Lock()
			m.live[name] = n
			m.mu.Unlock()
		case op < 8 && len(names) > 0:
			name := names[rng.IntN(len(names))]
			n := rng.IntN(chaosMaxCount + 1)
			for {
				rs, ok := getRS(a, m, name, do)
				if !ok {
					t.Errorf("chaos client: replicaset %s is gone", name)
					return
				}
				if rs.DesiredCount == n {
					break
				}
				rs.DesiredCount = n
				data, _ := json.Marshal(rs)
				code, body := do("PUT", "/replicasets/"+name, string(data))
				if code == 200 {
					break
				}
				if code != 409 {
					t.Errorf("chaos client: PUT %s: %d %s", name, code, body)
					return
				}
			}
			m.mu.Lock()
			m.live[name] = n
			m.mu.Unlock()
		case len(names) > 0:
			name := names[rng.IntN(len(names))]
			code, body := do("DELETE", "/replicasets/"+name, "")
			if code != 200 && code != 404 { // 404: an earlier attempt went through
				t.Errorf("chaos client: DELETE %s: %d %s", name, code, body)
				return
			}
			m.mu.Lock()
			delete(m.live, name)
			m.deleted[name] = true
			m.mu.Unlock()
		}
		time.Sleep(time.Duration(50+rng.IntN(300)) * time.Millisecond)
	}
}

func getRS(a api, m *chaosModel, name string, do func(string, string, string) (int, []byte)) (schemas.ReplicaSet, bool) {
	var rs schemas.ReplicaSet
	code, body := do("GET", "/replicasets/"+name, "")
	if code != 200 {
		return rs, false
	}
	if err := json.Unmarshal(body, &rs); err != nil {
		return rs, false
	}
	return rs, true
}
