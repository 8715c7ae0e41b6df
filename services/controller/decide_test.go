package controller

import (
	"testing"
	"time"

	"github.com/miniku/miniku/schemas"
)

func pod(name string, phase schemas.PodPhase, node string, age time.Duration) *schemas.Pod {
	return &schemas.Pod{
		ObjectMeta: schemas.ObjectMeta{Name: name, CreatedAt: time.Unix(1000, 0).Add(-age)},
		Status:     phase, NodeName: node,
	}
}

func names(ps []*schemas.Pod) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func TestDecideScaleUpAndReplaceTerminal(t *testing.T) {
	rs := &schemas.ReplicaSet{DesiredCount: 3}
	plan := DecideReplicaSet(rs, []*schemas.Pod{
		pod("ok", schemas.PodRunning, "n", time.Hour),
		pod("dead", schemas.PodFailed, "n", time.Hour),
		pod("done", schemas.PodSucceeded, "n", time.Hour),
	})
	if plan.Create != 2 {
		t.Fatalf("create %d, want 2", plan.Create)
	}
	if got := names(plan.Delete); len(got) != 2 || got[0] != "dead" || got[1] != "done" {
		t.Fatalf("delete %v, want the terminal pods", got)
	}
	if plan.Status.CurrentCount != 3 || plan.Status.ReadyCount != 1 {
		t.Fatalf("status %+v", plan.Status)
	}
}

func TestDecideScaleDownOrder(t *testing.T) {
	rs := &schemas.ReplicaSet{DesiredCount: 2}
	plan := DecideReplicaSet(rs, []*schemas.Pod{
		pod("old-running", schemas.PodRunning, "n", 3*time.Hour),
		pod("new-running", schemas.PodRunning, "n", time.Hour),
		pod("pending-bound", schemas.PodPending, "n", 5*time.Hour),
		pod("unbound", schemas.PodPending, "", 6*time.Hour),
		pod("mid-running", schemas.PodRunning, "n", 2*time.Hour),
	})
	want := []string{"unbound", "pending-bound", "new-running"}
	got := names(plan.Delete)
	if len(got) != len(want) {
		t.Fatalf("delete %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delete %v, want %v", got, want)
		}
	}
	if plan.Create != 0 || plan.Status.CurrentCount != 2 || plan.Status.ReadyCount != 2 {
		t.Fatalf("plan %+v", plan)
	}
}

func TestDecideIgnoresTerminating(t *testing.T) {
	rs := &schemas.ReplicaSet{DesiredCount: 2}
	gone := pod("going", schemas.PodRunning, "n", time.Hour)
	ts := time.Unix(2000, 0)
	gone.DeletionTimestamp = &ts
	goneFailed := pod("going-failed", schemas.PodFailed, "n", time.Hour)
	goneFailed.DeletionTimestamp = &ts
	plan := DecideReplicaSet(rs, []*schemas.Pod{gone, goneFailed, pod("ok", schemas.PodRunning, "n", time.Hour)})
	// Terminating pods are neither counted nor deleted again: a
	// replacement starts at once.
	if plan.Create != 1 || len(plan.Delete) != 0 {
		t.Fatalf("plan create %d delete %v, want 1 and none", plan.Create, names(plan.Delete))
	}
	if plan.Status.CurrentCount != 2 || plan.Status.ReadyCount != 1 {
		t.Fatalf("status %+v", plan.Status)
	}
}

func TestDecideTemplateChangeKeepsPods(t *testing.T) {
	rs := &schemas.ReplicaSet{DesiredCount: 2, Template: schemas.PodTemplate{PodSpec: schemas.PodSpec{Image: "busybox:2", Command: []string{"new"}}}}
	old := []*schemas.Pod{pod("a", schemas.PodRunning, "n", time.Hour), pod("b", schemas.PodRunning, "n", time.Hour)}
	for _, p := range old {
		p.PodSpec = schemas.PodSpec{Image: "busybox:1", Command: []string{"old"}}
	}
	plan := DecideReplicaSet(rs, old)
	if plan.Create != 0 || len(plan.Delete) != 0 {
		t.Fatalf("a template change touched existing pods: create %d delete %v", plan.Create, names(plan.Delete))
	}
}
