package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mkrt "github.com/miniku/miniku/runtime"
	"github.com/miniku/miniku/schemas"
)

// fillTmp is a pod command that puts n MiB into the container's /tmp: a
// tmpfs, whose pages are charged to the pod's memory cgroup and stay there
// until the container is gone (a shell variable would be at the mercy of
// the allocator, a page cache of the disk at the kernel's reclaim).
func fillTmp(mib int) string {
	return fmt.Sprintf(`["sh","-c","head -c %d /dev/zero > /tmp/fill && echo filled; sleep 1000"]`, mib<<20)
}

// nodeEvent waits for a Kubernetes-style event about node with reason.
func nodeEvent(t *testing.T, a api, node, typ, reason string) schemas.ObjectEvent {
	t.Helper()
	var found schemas.ObjectEvent
	eventually(t, 10*time.Second, func() error {
		var evs []schemas.ObjectEvent
		if err := a.getJSON("/events", &evs); err != nil {
			return err
		}
		for _, e := range evs {
			if e.Kind == schemas.KindNode && e.Name == node && e.Reason == reason && e.Type == typ {
				found = e
				return nil
			}
		}
		return fmt.Errorf("no %s %s event for node %s among %d events", typ, reason, node, len(evs))
	})
	return found
}

// podMemory is what the kubelet counts for pod: its running containers'
// memory cgroup usage, for the log of a failing run.
func podMemory(t *testing.T, dataDir, pod string) string {
	t.Helper()
	var total int64
	roots, _ := filepath.Glob(filepath.Join(dataDir, "nodes", "*", "containers"))
	for _, root := range roots {
		rt, err := mkrt.New(root, nil)
		if err != nil {
			t.Fatal(err)
		}
		list, _ := rt.List()
		for _, ctr := range list {
			if ctr.Labels["miniku.pod"] == pod && ctr.Status == mkrt.StatusRunning {
				if u, err := rt.Usage(ctr.ID); err == nil {
					total += u.MemoryBytes
				}
			}
		}
		_ = rt.Close()
	}
	return schemas.FormatMemory(total)
}

// TestEvictionNodeMemoryPressure: a node offering its pods 384Mi
// (--memory, also the limit of its node-level cgroup, so the host never
// feels it) with --eviction-hard memory.available<176Mi. memory.available
// is that capacity less the working set of the pods' cgroups, so the test
// does not depend on the host's free memory.
//
// A pod that wrote 256Mi to its disk is no pressure: that page cache is
// charged to it but is not its working set. Then three pods put memory in
// their tmpfs /tmp (charged to their cgroups until the container is gone):
// a Guaranteed one 80Mi of its 128Mi, a Burstable one (cpu only: a zero
// memory request) 96Mi, leaving about 200Mi, no pressure; then a
// BestEffort one 64Mi, leaving about 136Mi: MemoryPressure turns True and
// one pod is evicted, its container killed within about a second although
// it ignores SIGTERM. The pods over their request (zero) rank before the
// Guaranteed one; of those the BestEffort ones before the Burstable one,
// though it holds more; of the BestEffort ones the one holding more, not
// the writer. Its memory freed, the condition clears and nothing else is
// evicted.
func TestEvictionNodeMemoryPressure(t *testing.T) {
	c := newCluster(t)
	c.upEvict(t, "--memory", "384Mi", "--eviction-hard", "memory.available<176Mi")
	a := c.api
	waitCondition(t, a, "node-1", schemas.NodeMemoryPressure, "False", 30*time.Second)

	// A pod that wrote 256Mi to its disk is charged that much page cache,
	// but the kernel reclaims it at will: it is no memory pressure (the
	// kubelet measures the working set, as Kubernetes' does).
	a.mustPost("/pods", `{"name":"writer","image":"alpine","restartPolicy":"Never",
		"command":["sh","-c","head -c 268435456 /dev/zero > /fill && sync && echo filled; sleep 1000"]}`)
	waitPhase(t, a, "writer", schemas.PodRunning)
	waitLogged(t, c.dataDir, "writer", "filled")
	time.Sleep(time.Second)
	if cond := nodeCondition(t, a, "node-1", schemas.NodeMemoryPressure); cond.Status != "False" {
		t.Fatalf("a pod that wrote 256Mi to disk (counted %s): MemoryPressure is %+v, want False", podMemory(t, c.dataDir, "writer"), cond)
	}

	a.mustPost("/pods", `{"name":"guaranteed","image":"alpine","restartPolicy":"Never",
		"resources":{"cpu":"100m","memory":"128Mi"},"command":`+fillTmp(80)+`}`)
	a.mustPost("/pods", `{"name":"burstable","image":"alpine","restartPolicy":"Never",
		"resources":{"cpu":"100m"},"command":`+fillTmp(96)+`}`)
	for _, p := range []string{"guaranteed", "burstable"} {
		waitPhase(t, a, p, schemas.PodRunning)
		waitLogged(t, c.dataDir, p, "filled")
	}
	// Measured every 300ms: a few measurements see both filled.
	time.Sleep(time.Second)
	if cond := nodeCondition(t, a, "node-1", schemas.NodeMemoryPressure); cond.Status != "False" {
		t.Fatalf("pods holding 176Mi of 384Mi (guaranteed %s, burstable %s): MemoryPressure is %+v, want False",
			podMemory(t, c.dataDir, "guaranteed"), podMemory(t, c.dataDir, "burstable"), cond)
	}

	posted := time.Now()
	// It ignores SIGTERM: a hard eviction must not wait out its 30 s grace
	// period to free the memory.
	a.mustPost("/pods", `{"name":"besteffort","image":"alpine","restartPolicy":"Never",
		"command":["sh","-c","trap '' TERM; head -c 67108864 /dev/zero > /tmp/fill && echo filled; sleep 1000"]}`)
	waitCondition(t, a, "node-1", schemas.NodeMemoryPressure, "True", 30*time.Second)
	cond := nodeCondition(t, a, "node-1", schemas.NodeMemoryPressure)
	t.Logf("MemoryPressure True %v after the third pod was posted: %s", time.Since(posted).Round(time.Millisecond), cond.Message)
	if cond.Reason != "KubeletHasInsufficientMemory" || !strings.Contains(cond.Message, "memory.available") ||
		!strings.Contains(cond.Message, "< 176Mi") {
		t.Errorf("MemoryPressure condition %+v, want reason KubeletHasInsufficientMemory and memory.available < 176Mi", cond)
	}
	nodeEvent(t, a, "node-1", schemas.EventWarning, "NodeHasMemoryPressure")

	p := waitEvicted(t, a, "besteffort")
	if p.Message != "The node was low on resource: memory." {
		t.Errorf("message %q, want Kubernetes' memory pressure message", p.Message)
	}
	eventually(t, 30*time.Second, func() error {
		for _, ctr := range containersOf(t, c.dataDir, "besteffort") {
			if ctr.Status == "running" {
				return fmt.Errorf("the evicted pod's container %s still runs", ctr.ID)
			}
		}
		return nil
	})
	if p.FinishedAt == nil {
		t.Errorf("evicted pod without finishedAt: %+v", p)
	} else if d := time.Since(*p.FinishedAt); d > 15*time.Second {
		t.Errorf("the evicted pod's container stopped %v after the eviction: it waited out the grace period (30s), want about 1s", d.Round(time.Millisecond))
	} else {
		t.Logf("the evicted pod's container stopped within %v of the eviction", d.Round(time.Millisecond))
	}
	// Its memory went with its container: the pressure clears after the
	// transition period (2s), and the other two were never evicted.
	waitCondition(t, a, "node-1", schemas.NodeMemoryPressure, "False", 30*time.Second)
	t.Logf("MemoryPressure False %v after the third pod was posted", time.Since(posted).Round(time.Millisecond))
	nodeEvent(t, a, "node-1", schemas.EventNormal, "NodeHasSufficientMemory")
	t.Logf("after the eviction the kubelet counts writer %s, guaranteed %s, burstable %s", podMemory(t, c.dataDir, "writer"),
		podMemory(t, c.dataDir, "guaranteed"), podMemory(t, c.dataDir, "burstable"))
	for _, name := range []string{"writer", "guaranteed", "burstable"} {
		if g, ok, err := a.getPod(name); err != nil || !ok || g.Status != schemas.PodRunning {
			t.Errorf("pod %s (holding %s): %s %s %s (%v), want Running", name, podMemory(t, c.dataDir, name), g.Status, g.Reason, g.Message, err)
		}
	}
}
