package scheduler

import (
	"testing"
	"time"

	"github.com/miniku/miniku/schemas"
)

func TestFreesRoom(t *testing.T) {
	pendingPod := podOn("p", "", "", "", "")
	pendingPod.Status = schemas.PodPending
	bound := pendingPod.DeepCopy()
	bound.NodeName = "a"
	failed := bound.DeepCopy()
	failed.Status = schemas.PodFailed
	for _, tc := range []struct {
		name     string
		old, now *schemas.Pod
		want     bool
	}{
		{"created pending", nil, pendingPod, false},
		{"bound", pendingPod, bound, false},
		{"bound pod failed", bound, failed, true},
		{"terminal pod deleted", failed, nil, false},
		{"bound pod deleted", bound, nil, true},
		{"pending pod deleted", pendingPod, nil, false},
		{"resync", bound, bound, false},
	} {
		if got := freesRoom(tc.old, tc.now); got != tc.want {
			t.Errorf("%s: freesRoom %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestNodeMatters(t *testing.T) {
	n := sized("a", "1", "1Gi", 10, map[string]string{"x": "1", "y": "2"})
	if !nodeMatters(nil, n) {
		t.Fatal("a new node is a change")
	}
	if !nodeMatters(n, nil) {
		t.Fatal("a deleted node is a change")
	}
	beat := n.DeepCopy()
	beat.LastHeartbeat = time.Now()
	if nodeMatters(n, beat) {
		t.Fatal("a heartbeat is not a change")
	}
	for _, change := range []func(*schemas.Node){
		func(n *schemas.Node) { n.Unschedulable = true },
		func(n *schemas.Node) { n.Status = schemas.NodeNotReady },
		func(n *schemas.Node) { n.Capacity.Memory = "2Gi" },
		func(n *schemas.Node) { n.Labels["z"] = "3" },
	} {
		changed := n.DeepCopy()
		change(changed)
		if !nodeMatters(n, changed) {
			t.Fatalf("change not seen: %+v", changed)
		}
	}
}
