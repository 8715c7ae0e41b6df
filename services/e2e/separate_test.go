package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/pki"
	"github.com/miniku/miniku/runtime/image/imagetest"
	"github.com/miniku/miniku/schemas"
)

// Every component as its own process, as on several hosts. A kubelet that
// dies makes its node NotReady, its pods are replaced on the other node, and
// when it comes back it stops the copies that were replaced.
func TestSeparateProcessesNodeFailure(t *testing.T) {
	requireRoot(t)
	dataDir := t.TempDir()
	natsAddr, apiAddr := freeAddr(t), freeAddr(t)
	registry := imagetest.Registry(t)
	t.Cleanup(func() { cleanupContainers(t, dataDir) })
	natsURL := "nats://" + natsAddr

	// The control plane shares the NATS server's data dir, so it finds
	// its credentials at the default path; kubelets are given theirs.
	ctlDir := filepath.Join(dataDir, "nats-server")
	creds := func(user string) string { return filepath.Join(ctlDir, "nats", "auth", user+".json") }
	start(t, "nats", "nats", "--addr", natsAddr, "--data-dir", ctlDir, "--kubelets", "node-a,node-b")
	eventually(t, 30*time.Second, func() error { // written before it listens; viewer last
		_, err := os.Stat(creds(bus.UserViewer))
		return err
	})
	// TLS only, so every component below connects over TLS.
	requireNATSTLS(t, natsAddr)
	start(t, "apiserver", "apiserver", "--nats", natsURL, "--api-addr", apiAddr, "--data-dir", ctlDir)
	start(t, "scheduler", "scheduler", "--nats", natsURL, "--data-dir", ctlDir)
	start(t, "controller", "controller", "--nats", natsURL, "--node-grace", "2s", "--eviction-timeout", "2s", "--data-dir", ctlDir)
	kubelet := func(node string) *proc {
		return start(t, "kubelet "+node, "kubelet", "--nats", natsURL, "--node-name", node,
			"--nats-creds", creds("kubelet-"+node), "--nats-ca", pki.CAPath(ctlDir),
			"--data-dir", dataDir, "--registry-mirror", "http://"+registry, "--heartbeat-interval", "500ms")
	}
	kubelet("node-a")
	kb := kubelet("node-b")

	a := api{t: t, base: "http://" + apiAddr}
	waitReadyNodes(t, a, 2)

	nc := viewerNATS(t, natsURL, ctlDir)
	notReady, err := nc.SubscribeSync("node.notready")
	if err != nil {
		t.Fatal(err)
	}

	// An image that does not exist keeps the pod Pending with a clear
	// reason, as in Kubernetes (retried with backoff).
	if code, body := a.do("POST", "/pods", `{"name":"nope","image":"does-not-exist:1"}`); code != 201 {
		t.Fatalf("POST /pods: %d %s", code, body)
	}
	eventually(t, 30*time.Second, func() error {
		var p schemas.Pod
		if err := a.getJSON("/pods/nope", &p); err != nil {
			return err
		}
		if p.Status != schemas.PodPending || (p.Reason != "ErrImagePull" && p.Reason != "ImagePullBackOff") ||
			!strings.Contains(p.Message, "does-not-exist") || strings.Contains(p.Message, "ErrImagePull") {
			return fmt.Errorf("pod nope: %s %s %q", p.Status, p.Reason, p.Message)
		}
		return nil
	})

	rs := `{"name":"web","desiredCount":2,"selector":{"app":"web"},"template":{"image":"busybox","command":["sleep","3600"],"terminationGracePeriodSeconds":1}}`
	if code, body := a.do("POST", "/replicasets", rs); code != 201 {
		t.Fatalf("POST /replicasets: %d %s", code, body)
	}
	var pods []schemas.Pod
	eventually(t, 60*time.Second, func() (err error) { pods, err = running(a, "web", 2); return err })
	onB := ""
	for _, p := range pods {
		if p.NodeName == "node-b" {
			onB = p.ContainerID
		}
	}
	if onB == "" {
		t.Fatalf("no pod spread to node-b: %+v", pods)
	}

	kb.kill()
	died := time.Now()
	eventually(t, 20*time.Second, func() error {
		var n schemas.Node
		if err := a.getJSON("/nodes/node-b", &n); err != nil {
			return err
		}
		if n.Status != schemas.NodeNotReady {
			return fmt.Errorf("node-b is %s", n.Status)
		}
		return nil
	})
	t.Logf("kubelet death to NotReady: %v", time.Since(died))
	if msg, err := notReady.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("no node.notready event: %v", err)
	} else {
		var ev schemas.Event
		if err := schemas.Unmarshal(msg.Data, &ev); err != nil || ev.Name != "node-b" {
			t.Fatalf("node.notready event %+v: %v", ev, err)
		}
	}
	eventually(t, 30*time.Second, func() error {
		pods, err := running(a, "web", 2)
		if err != nil {
			return err
		}
		for _, p := range pods {
			if p.NodeName != "node-a" {
				return fmt.Errorf("pod %s still on %s", p.Name, p.NodeName)
			}
		}
		return nil
	})
	t.Logf("kubelet death to replacements Running: %v", time.Since(died))
	// The replaced pods were deleted gracefully, but no kubelet runs on
	// node-b to finish that: the controller force-deletes them.
	eventually(t, 30*time.Second, func() error {
		pods, err := a.pods()
		if err != nil {
			return err
		}
		for _, p := range pods {
			if p.Owner == "web" && p.NodeName == "node-b" {
				return fmt.Errorf("pod %s still on lost node-b: %s deletionTimestamp %v", p.Name, p.Status, p.DeletionTimestamp)
			}
		}
		return nil
	})
	// The old copy still runs on the dead node's host...
	if _, ok := liveContainers(t, dataDir)[onB]; !ok {
		t.Fatalf("container %s on node-b should still run while its kubelet is down", onB)
	}
	// ...until its kubelet returns and stops it.
	kubelet("node-b")
	eventually(t, 30*time.Second, func() error {
		if _, ok := liveContainers(t, dataDir)[onB]; ok {
			return fmt.Errorf("replaced container %s still running on node-b", onB)
		}
		var n schemas.Node
		if err := a.getJSON("/nodes/node-b", &n); err != nil {
			return err
		}
		if n.Status != schemas.NodeReady {
			return fmt.Errorf("node-b is %s", n.Status)
		}
		return nil
	})
	if n := len(liveContainers(t, dataDir)); n != 2 {
		t.Fatalf("%d live containers, want 2", n)
	}
}
