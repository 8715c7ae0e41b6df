package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miniku/miniku/schemas"
)

// The CI-sized scale check: 100 hollow nodes and a replicaset of 1,000
// replicas end with exactly 1,000 Running pods, each on a hollow node, no
// node over its pod capacity. It checks correctness, never time. A second
// process (`miniku kubelet --hollow`) joins more hollow nodes to the
// cluster as the shared hollow NATS user.
func TestHollowNodesRunThousandPods(t *testing.T) {
	const nodes, replicas = 100, 1000
	dataDir := t.TempDir()
	apiAddr, natsAddr := freeAddr(t), freeAddr(t)
	start(t, "miniku up", "up", "--data-dir", dataDir, "--api-addr", apiAddr, "--nats-addr", natsAddr,
		"--nodes", "0", "--hollow-nodes", fmt.Sprint(nodes), "--log-level", "warn")
	a := api{t: t, base: "http://" + apiAddr}

	readyNodes := func() (map[string]schemas.Node, error) {
		var list []schemas.Node
		if err := a.getJSON("/nodes", &list); err != nil {
			return nil, err
		}
		out := map[string]schemas.Node{}
		for _, n := range list {
			if n.Status == schemas.NodeReady {
				out[n.Name] = n
			}
		}
		return out, nil
	}
	eventually(t, 60*time.Second, func() error {
		ns, err := readyNodes()
		if err != nil {
			return err
		}
		if len(ns) != nodes {
			return fmt.Errorf("%d nodes Ready, want %d", len(ns), nodes)
		}
		return nil
	})
	// Started once up has written the hollow user's credentials.
	start(t, "miniku kubelet --hollow", "kubelet", "--hollow", "--count", "3", "--name-prefix", "extra-",
		"--data-dir", dataDir, "--nats", "nats://"+natsAddr, "--log-level", "warn")
	eventually(t, 60*time.Second, func() error {
		ns, err := readyNodes()
		if err != nil {
			return err
		}
		if len(ns) != nodes+3 {
			return fmt.Errorf("%d nodes Ready, want %d", len(ns), nodes+3)
		}
		for _, name := range []string{"hollow-1", fmt.Sprintf("hollow-%d", nodes), "extra-1", "extra-3"} {
			n, ok := ns[name]
			if !ok {
				return fmt.Errorf("node %s not Ready", name)
			}
			if n.Capacity.CPU != "32" || n.Capacity.Memory != "128Gi" || n.Capacity.Pods != 110 {
				return fmt.Errorf("node %s capacity %+v, want 32 CPU, 128Gi, 110 pods", name, n.Capacity)
			}
		}
		return nil
	})

	a.mustPost("/replicasets", fmt.Sprintf(`{"name":"scale","desiredCount":%d,"selector":{"app":"scale"},"template":{"image":"busybox","command":["sleep","1d"]}}`, replicas))
	var pods []schemas.Pod
	eventually(t, 5*time.Minute, func() error {
		var err error
		pods, err = running(a, "scale", replicas)
		return err
	})
	perNode := map[string]int{}
	names := map[string]bool{}
	for _, p := range pods {
		if names[p.Name] {
			t.Fatalf("pod %s listed twice", p.Name)
		}
		names[p.Name] = true
		if !strings.HasPrefix(p.NodeName, "hollow-") && !strings.HasPrefix(p.NodeName, "extra-") {
			t.Fatalf("pod %s on node %q, not a hollow node", p.Name, p.NodeName)
		}
		perNode[p.NodeName]++
	}
	for n, c := range perNode {
		if c > 110 {
			t.Fatalf("node %s runs %d pods, over its capacity of 110", n, c)
		}
	}
	eventually(t, time.Minute, func() error {
		rs, err := a.replicaSet("scale")
		if err != nil {
			return err
		}
		if rs.CurrentCount != replicas || rs.ReadyCount != replicas {
			return fmt.Errorf("replicaset counts current %d ready %d, want %d", rs.CurrentCount, rs.ReadyCount, replicas)
		}
		return nil
	})

	// Scaling down stops exactly the surplus: the hollow kubelets finish
	// graceful deletion like real ones.
	scale(t, a, "scale", replicas/2)
	eventually(t, 3*time.Minute, func() error {
		_, err := running(a, "scale", replicas/2)
		if err != nil {
			return err
		}
		all, err := a.pods()
		if err != nil {
			return err
		}
		if len(all) != replicas/2 {
			return fmt.Errorf("%d pods in total, want %d (deleted ones gone)", len(all), replicas/2)
		}
		return nil
	})
}
