package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miniku/miniku/runtime/image/imagetest"
	"github.com/miniku/miniku/schemas"
)

// The README's walk-through, exactly as a user types it.
const walkthroughRS = `{"name":"test","desiredCount":4,"selector":{"app":"test"},"template":{"image":"alpine","command":["/bin/sh","-c","while true; do sleep 1; done"]}}`

type cluster struct {
	dataDir, apiAddr, natsAddr, registry string
	api                                  api
}

func newCluster(t *testing.T) *cluster {
	requireRoot(t)
	c := &cluster{
		dataDir:  t.TempDir(),
		apiAddr:  freeAddr(t),
		natsAddr: freeAddr(t),
		registry: imagetest.Registry(t),
	}
	c.api = api{t: t, base: "http://" + c.apiAddr}
	// Registered first, so it runs last: after every process is killed.
	t.Cleanup(func() { cleanupContainers(t, c.dataDir) })
	return c
}

func (c *cluster) up(t *testing.T) *proc {
	t.Helper()
	p := start(t, "miniku up", "up",
		"--data-dir", c.dataDir, "--api-addr", c.apiAddr, "--nats-addr", c.natsAddr,
		"--nodes", "2", "--registry-mirror", "http://"+c.registry,
		"--heartbeat-interval", "500ms", "--node-grace", "3s", "--eviction-timeout", "3s")
	eventually(t, 30*time.Second, func() error {
		if code, body := c.api.do("GET", "/healthz", ""); code != 200 {
			return fmt.Errorf("healthz: %d %s", code, body)
		}
		return nil
	})
	// Both nodes register on their first heartbeat, after the API
	// answers: a replicaset posted before node-1 is Ready lands on node-2
	// alone (seen once in CI), as it would on Kubernetes.
	waitReadyNodes(t, c.api, 2)
	return p
}

func TestWalkthrough(t *testing.T) {
	c := newCluster(t)
	up := c.up(t)
	a := c.api

	start := time.Now()
	if code, body := a.do("POST", "/replicasets", walkthroughRS); code != 201 {
		t.Fatalf("POST /replicasets: %d %s", code, body)
	}
	var pods []schemas.Pod
	eventually(t, 60*time.Second, func() (err error) {
		pods, err = running(a, "test", 4)
		return err
	})
	t.Logf("POST to 4 Running: %v", time.Since(start))
	eventually(t, 10*time.Second, func() error {
		rs, err := a.replicaSet("test")
		if err != nil {
			return err
		}
		if rs.CurrentCount != 4 || rs.ReadyCount != 4 {
			return fmt.Errorf("currentCount %d readyCount %d, want 4", rs.CurrentCount, rs.ReadyCount)
		}
		return nil
	})

	nameRE := regexp.MustCompile(`^test-[0-9a-f]{8}$`)
	perNode := map[string]int{}
	ids := map[string]bool{}
	for _, p := range pods {
		if !nameRE.MatchString(p.Name) {
			t.Errorf("pod name %q is not test-<8 hex>", p.Name)
		}
		perNode[p.NodeName]++
		ids[p.ContainerID] = true
	}
	if perNode["node-1"] != 2 || perNode["node-2"] != 2 {
		t.Errorf("pods not spread: %v", perNode)
	}
	live := liveContainers(t, c.dataDir)
	if len(live) != 4 {
		t.Fatalf("%d live containers, want 4", len(live))
	}
	for id := range ids {
		if _, ok := live[id]; !ok {
			t.Errorf("pod container %s is not running", id)
		}
	}
	if !strings.Contains(up.output(), "assigning pod test-") {
		t.Errorf("scheduler log lacks 'assigning pod test-...'")
	}
	// The raw JSON keeps the original field names.
	_, body := a.do("GET", "/pods", "")
	for _, field := range []string{`"name"`, `"status":"Running"`, `"containerId"`, `"nodeName"`} {
		if !strings.Contains(string(body), field) {
			t.Errorf("GET /pods lacks %s: %s", field, body)
		}
	}

	// kill -9 everything; containers must survive and be adopted.
	up.kill()
	if got := liveContainers(t, c.dataDir); len(got) != 4 {
		t.Fatalf("after kill -9: %d live containers, want 4", len(got))
	}
	restart := time.Now()
	up = c.up(t)
	eventually(t, 30*time.Second, func() error {
		now, err := running(a, "test", 4)
		if err != nil {
			return err
		}
		for _, p := range now {
			if !ids[p.ContainerID] {
				return fmt.Errorf("pod %s has new container %s", p.Name, p.ContainerID)
			}
		}
		return nil
	})
	// Give the kubelets time to act on everything they rediscovered: a
	// duplicate start would show up as a fifth container.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		live := liveContainers(t, c.dataDir)
		if len(live) != 4 {
			t.Fatalf("after restart: %d live containers, want the same 4", len(live))
		}
		for id := range live {
			if !ids[id] {
				t.Fatalf("after restart: new container %s", id)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("restart to adopted: %v", time.Since(restart))

	// Scale to 2, then 6, with PUT and the resourceVersion just read.
	scale := func(n int) {
		t.Helper()
		rs, err := a.replicaSet("test")
		if err != nil {
			t.Fatal(err)
		}
		rs.DesiredCount = n
		body, _ := json.Marshal(rs)
		if code, resp := a.do("PUT", "/replicasets/test", string(body)); code != 200 {
			t.Fatalf("PUT desiredCount=%d: %d %s", n, code, resp)
		}
	}
	scale(2)
	eventually(t, 20*time.Second, func() error { _, err := running(a, "test", 2); return err })
	// The container's init forwards SIGTERM to sh, which dies of it at
	// once (a shell that ignored it would take the 30 s grace period).
	eventually(t, 45*time.Second, func() error {
		if n := len(liveContainers(t, c.dataDir)); n != 2 {
			return fmt.Errorf("%d live containers, want 2", n)
		}
		return nil
	})
	scale(6)
	eventually(t, 60*time.Second, func() error { _, err := running(a, "test", 6); return err })
	if n := len(liveContainers(t, c.dataDir)); n != 6 {
		t.Fatalf("%d live containers, want 6", n)
	}

	// Two clients PUT with the same resourceVersion: exactly one wins.
	rs, err := a.replicaSet("test")
	if err != nil {
		t.Fatal(err)
	}
	codes := make([]int, 2)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rs
			r.DesiredCount = 6
			body, _ := json.Marshal(r)
			codes[i], _ = a.do("PUT", "/replicasets/test", string(body))
		}()
	}
	wg.Wait()
	sort.Ints(codes)
	if codes[0] != 200 || codes[1] != 409 {
		t.Fatalf("concurrent PUTs with one resourceVersion: codes %v, want [200 409]", codes)
	}

	// Deleting the replicaset deletes its pods and their containers.
	if code, body := a.do("DELETE", "/replicasets/test", ""); code != 200 {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	eventually(t, 45*time.Second, func() error {
		pods, err := a.pods()
		if err != nil {
			return err
		}
		if len(pods) != 0 {
			return fmt.Errorf("%d pods left", len(pods))
		}
		if n := len(liveContainers(t, c.dataDir)); n != 0 {
			return fmt.Errorf("%d containers still running", n)
		}
		return nil
	})
}
