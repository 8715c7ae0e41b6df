package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

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

// TestEvictionNodeMemoryPressure: a node offering its pods 256Mi (--memory,
// which is also the limit of its node-level cgroup, so the host never
// feels it) with --eviction-hard memory.available<128Mi. memory.available
// is that capacity less what the pods' cgroups hold, so the test does not
// depend on the host's free memory. Two pods each put 80Mi in their tmpfs
// /tmp: about 90Mi stays available, MemoryPressure turns True, and the
// BestEffort pod (over its zero request) is evicted, not the Guaranteed
// one holding as much within its request. Once the evicted pod's container
// is gone the condition clears.
func TestEvictionNodeMemoryPressure(t *testing.T) {
	c := newCluster(t)
	c.upEvict(t, "--memory", "256Mi", "--eviction-hard", "memory.available<128Mi")
	a := c.api
	waitCondition(t, a, "node-1", schemas.NodeMemoryPressure, "False", 30*time.Second)

	a.mustPost("/pods", `{"name":"guaranteed","image":"alpine","restartPolicy":"Never",
		"resources":{"cpu":"100m","memory":"128Mi"},"command":`+fillTmp(80)+`}`)
	waitPhase(t, a, "guaranteed", schemas.PodRunning)
	waitLogged(t, c.dataDir, "guaranteed", "filled")
	// 256Mi - 80Mi is well above 128Mi: one pod alone is no pressure.
	// Two measurements (300ms apart) see it filled.
	time.Sleep(time.Second)
	if cond := nodeCondition(t, a, "node-1", schemas.NodeMemoryPressure); cond.Status != "False" {
		t.Fatalf("one pod holding 80Mi of 256Mi: MemoryPressure is %+v, want False", cond)
	}

	posted := time.Now()
	a.mustPost("/pods", `{"name":"besteffort","image":"alpine","restartPolicy":"Never","command":`+fillTmp(80)+`}`)
	waitCondition(t, a, "node-1", schemas.NodeMemoryPressure, "True", 30*time.Second)
	cond := nodeCondition(t, a, "node-1", schemas.NodeMemoryPressure)
	if cond.Reason != "KubeletHasInsufficientMemory" || !strings.Contains(cond.Message, "memory.available") ||
		!strings.Contains(cond.Message, "< 128Mi") {
		t.Errorf("MemoryPressure condition %+v, want reason KubeletHasInsufficientMemory and memory.available < 128Mi", cond)
	}
	t.Logf("MemoryPressure True %v after the second pod was posted: %s", time.Since(posted).Round(time.Millisecond), cond.Message)
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
	// The evicted pod's memory went with its container: the pressure
	// clears after the transition period (2s) and the Guaranteed pod,
	// within its request, was never a candidate.
	waitCondition(t, a, "node-1", schemas.NodeMemoryPressure, "False", 30*time.Second)
	t.Logf("MemoryPressure False %v after the second pod was posted", time.Since(posted).Round(time.Millisecond))
	nodeEvent(t, a, "node-1", schemas.EventNormal, "NodeHasSufficientMemory")
	if g, ok, err := a.getPod("guaranteed"); err != nil || !ok || g.Status != schemas.PodRunning {
		t.Errorf("the Guaranteed pod within its request: %s %s %s (%v), want Running", g.Status, g.Reason, g.Message, err)
	}
}
