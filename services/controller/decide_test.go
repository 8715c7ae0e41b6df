package controller

import (
	"slices"
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
	}, Failures{}, FailureBackoff{}, time.Unix(1000, 0))
	if plan.Create != 2 {
		t.Fatalf("create %d, want 2", plan.Create)
	}
	if got := names(plan.Delete); len(got) != 2 || !slices.Contains(got, "dead") || !slices.Contains(got, "done") {
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
	}, Failures{}, FailureBackoff{}, time.Unix(1000, 0))
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
	plan := DecideReplicaSet(rs, []*schemas.Pod{gone, goneFailed, pod("ok", schemas.PodRunning, "n", time.Hour)}, Failures{}, FailureBackoff{}, time.Unix(1000, 0))
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
	plan := DecideReplicaSet(rs, old, Failures{}, FailureBackoff{}, time.Unix(1000, 0))
	if plan.Create != 0 || len(plan.Delete) != 0 {
		t.Fatalf("a template change touched existing pods: create %d delete %v", plan.Create, names(plan.Delete))
	}
}

func failedPod(name, reason string) *schemas.Pod {
	p := pod(name, schemas.PodFailed, "n", time.Minute)
	p.Reason = reason
	return p
}

// A replicaset whose pods keep failing replaces the first round at once,
// then waits Base, 2×Base, ... up to Max; the failed pods stay until then
// and hold their replacements' places. Evicted pods and a quiet spell do
// not count.
func TestDecideFailureBackoff(t *testing.T) {
	t0 := time.Unix(5000, 0)
	b := FailureBackoff{Base: time.Second, Max: 8 * time.Second} // reset after 16s
	running := pod("a", schemas.PodRunning, "n", time.Hour)
	for _, c := range []struct {
		name     string
		desired  int
		pods     []*schemas.Pod
		f        Failures
		now      time.Time
		create   int
		delete   []string
		held     []string
		retryAt  time.Time
		failures Failures
	}{
		{name: "first round at once", desired: 2, pods: []*schemas.Pod{running, failedPod("f1", "StartError")}, now: t0,
			create: 1, delete: []string{"f1"}, failures: Failures{1, t0}},
		{name: "second round waits Base", desired: 2, pods: []*schemas.Pod{running, failedPod("f2", "StartError")},
			f: Failures{1, t0}, now: t0.Add(500 * time.Millisecond),
			held: []string{"f2"}, retryAt: t0.Add(time.Second), failures: Failures{1, t0}},
		{name: "second round after Base", desired: 2, pods: []*schemas.Pod{running, failedPod("f2", "StartError")},
			f: Failures{1, t0}, now: t0.Add(time.Second),
			create: 1, delete: []string{"f2"}, failures: Failures{2, t0.Add(time.Second)}},
		{name: "third round waits twice Base", desired: 2, pods: []*schemas.Pod{running, failedPod("f3", "Error")},
			f: Failures{2, t0}, now: t0.Add(1500 * time.Millisecond),
			held: []string{"f3"}, retryAt: t0.Add(2 * time.Second), failures: Failures{2, t0}},
		{name: "capped at Max", desired: 2, pods: []*schemas.Pod{running, failedPod("f", "Error")},
			f: Failures{30, t0}, now: t0.Add(7 * time.Second),
			held: []string{"f"}, retryAt: t0.Add(8 * time.Second), failures: Failures{30, t0}},
		{name: "forgotten after a quiet spell", desired: 2, pods: []*schemas.Pod{running, failedPod("f", "Error")},
			f: Failures{30, t0}, now: t0.Add(16 * time.Second),
			create: 1, delete: []string{"f"}, failures: Failures{1, t0.Add(16 * time.Second)}},
		{name: "lost node replaced at once", desired: 2, pods: []*schemas.Pod{running, failedPod("lost", "NodeLost")},
			f: Failures{5, t0}, now: t0.Add(time.Millisecond),
			create: 1, delete: []string{"lost"}, failures: Failures{5, t0}},
		{name: "both failed: both held", desired: 2, pods: []*schemas.Pod{failedPod("f1", "Error"), failedPod("f2", "Error")},
			f: Failures{3, t0}, now: t0.Add(time.Second),
			held: []string{"f1", "f2"}, retryAt: t0.Add(4 * time.Second), failures: Failures{3, t0}},
		{name: "scaled down while held: extras go", desired: 1, pods: []*schemas.Pod{running, failedPod("f", "Error")},
			f: Failures{3, t0}, now: t0.Add(time.Second),
			delete: []string{"f"}, failures: Failures{3, t0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rs := &schemas.ReplicaSet{DesiredCount: c.desired}
			plan := DecideReplicaSet(rs, c.pods, c.f, b, c.now)
			if plan.Create != c.create || !slices.Equal(names(plan.Delete), c.delete) || !slices.Equal(names(plan.Held), c.held) {
				t.Errorf("create %d delete %v held %v, want %d %v %v", plan.Create, names(plan.Delete), names(plan.Held), c.create, c.delete, c.held)
			}
			if len(c.held) > 0 && !plan.RetryAt.Equal(c.retryAt) {
				t.Errorf("retry at %v, want %v", plan.RetryAt.Sub(t0), c.retryAt.Sub(t0))
			}
			if plan.Failures.Rounds != c.failures.Rounds || !plan.Failures.Last.Equal(c.failures.Last) {
				t.Errorf("failures %+v, want %+v", plan.Failures, c.failures)
			}
			// Held pods are not counted: currentCount is what runs or will.
			if want := c.desired - len(c.held); plan.Status.CurrentCount != want {
				t.Errorf("currentCount %d, want %d", plan.Status.CurrentCount, want)
			}
		})
	}
}

func TestFailureBackoffDefaults(t *testing.T) {
	b := FailureBackoff{}.withDefaults()
	if b.Base != time.Second || b.Max != 5*time.Minute || b.Reset != 10*time.Minute {
		t.Fatalf("defaults %+v", b)
	}
	for rounds, w := range []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second} {
		if got := b.Delay(rounds); got != w {
			t.Errorf("Delay(%d) = %v, want %v", rounds, got, w)
		}
	}
	if got := b.Delay(1 << 20); got != 5*time.Minute {
		t.Errorf("Delay(huge) = %v", got)
	}
}

func TestCountReplicas(t *testing.T) {
	gone := time.Unix(900, 0)
	term := pod("term", schemas.PodRunning, "n", time.Hour)
	term.DeletionTimestamp = &gone
	st := CountReplicas([]*schemas.Pod{
		pod("run", schemas.PodRunning, "n", time.Hour),
		pod("pend", schemas.PodPending, "", time.Hour),
		pod("done", schemas.PodSucceeded, "n", time.Hour),
		term,
	})
	if st.CurrentCount != 2 || st.ReadyCount != 1 {
		t.Fatalf("counted %d current, %d ready; want 2 and 1", st.CurrentCount, st.ReadyCount)
	}
}
