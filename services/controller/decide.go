package controller

import (
	"sort"
	"time"

	"github.com/miniku/miniku/schemas"
)

// Plan is what one replicaset reconcile decided.
type Plan struct {
	Create int            // pods to create
	Delete []*schemas.Pod // pods to delete (terminal ones to replace, extras)
	Status schemas.ReplicaSet
	// Failures is the replicaset's failure backoff state after this plan.
	Failures Failures
	// Held are failed pods kept, not yet replaced, until RetryAt: their
	// replicaset is backing off.
	Held    []*schemas.Pod
	RetryAt time.Time
}

// FailureBackoff is how long a replicaset whose pods keep failing waits
// before replacing them again: the first round of failed pods is replaced
// at once, the next after Base, doubling up to Max; Reset without a
// failure starts afresh. Kubernetes' replicaset controller replaces failed
// pods at full speed (its pods rarely fail: the kubelet restarts them in
// place); here a pod that fails at once, e.g. StartError, would make it
// create and delete pods as fast as the store allows.
type FailureBackoff struct {
	Base, Max, Reset time.Duration
}

// Defaults of the failure backoff: 1 s doubling to 5 min (the kubelet's
// crash-loop cap), forgotten after 10 min without a failure.
const (
	DefaultFailureBackoff    = time.Second
	DefaultFailureBackoffMax = 5 * time.Minute
)

func (b FailureBackoff) withDefaults() FailureBackoff {
	if b.Base <= 0 {
		b.Base = DefaultFailureBackoff
	}
	if b.Max < b.Base {
		b.Max = max(b.Base, DefaultFailureBackoffMax)
	}
	if b.Reset <= 0 {
		b.Reset = 2 * b.Max
	}
	return b
}

// Delay is the wait before the next replacement after rounds replacements
// of failed pods in a row.
func (b FailureBackoff) Delay(rounds int) time.Duration {
	if rounds <= 0 {
		return 0
	}
	d := b.Base
	for i := 1; i < rounds && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// Failures is one replicaset's failure backoff state: how many rounds of
// failed pods it replaced in a row, the last at Last.
type Failures struct {
	Rounds int
	Last   time.Time
}

// backsOff says whether a terminal pod's end counts against its template.
// Pods the node controller or an eviction failed did nothing wrong: they
// are replaced at once, as in Kubernetes.
func backsOff(p *schemas.Pod) bool {
	return p.Status == schemas.PodFailed && p.Reason != "NodeLost" && p.Reason != "Evicted"
}

// DecideReplicaSet compares a replicaset with its pods. Terminating pods
// (deletionTimestamp set) are already going and count for nothing, so
// replacements start at once, as in Kubernetes. Terminal pods are
// deleted and replaced; failed ones only once the failure backoff allows
// (until then they stay, visible, and are not replaced). Extras go in
// Kubernetes' order: unscheduled first, then not yet running, then the
// newest.
func DecideReplicaSet(rs *schemas.ReplicaSet, pods []*schemas.Pod, f Failures, b FailureBackoff, now time.Time) Plan {
	b = b.withDefaults()
	if f.Rounds > 0 && now.Sub(f.Last) >= b.Reset {
		f = Failures{}
	}
	plan := Plan{Failures: f}
	var active, failed []*schemas.Pod
	for _, p := range pods {
		switch {
		case p.DeletionTimestamp != nil:
		case backsOff(p):
			failed = append(failed, p)
		case p.Status.Terminal():
			plan.Delete = append(plan.Delete, p)
		default:
			active = append(active, p)
		}
	}
	diff := rs.DesiredCount - len(active)
	if len(failed) > 0 {
		if retry := f.Last.Add(b.Delay(f.Rounds)); now.Before(retry) {
			// Backing off: the failed pods hold the places of their
			// replacements. Those beyond the desired count go now.
			keep := min(len(failed), max(diff, 0))
			plan.Held, plan.RetryAt = failed[:keep], retry
			plan.Delete = append(plan.Delete, failed[keep:]...)
			diff -= keep
		} else {
			plan.Delete = append(plan.Delete, failed...)
			plan.Failures = Failures{Rounds: f.Rounds + 1, Last: now}
		}
	}
	switch {
	case diff > 0:
		plan.Create = diff
	case diff < 0:
		sort.SliceStable(active, func(i, j int) bool { return deleteBefore(active[i], active[j]) })
		plan.Delete = append(plan.Delete, active[:-diff]...)
		active = active[-diff:]
	}
	plan.Status.CurrentCount = len(active) + plan.Create
	for _, p := range active {
		if p.Status == schemas.PodRunning {
			plan.Status.ReadyCount++
		}
	}
	return plan
}

// CountReplicas is the status of a replicaset whose pods are pods, with
// no plan to change them (one being deleted): its pods neither
// terminating nor finished, and of those the running ones.
func CountReplicas(pods []*schemas.Pod) schemas.ReplicaSet {
	var st schemas.ReplicaSet
	for _, p := range pods {
		if p.DeletionTimestamp != nil || p.Status.Terminal() {
			continue
		}
		st.CurrentCount++
		if p.Status == schemas.PodRunning {
			st.ReadyCount++
		}
	}
	return st
}

func deleteBefore(a, b *schemas.Pod) bool {
	if ra, rb := deleteRank(a), deleteRank(b); ra != rb {
		return ra < rb
	}
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	return a.Name > b.Name
}

func deleteRank(p *schemas.Pod) int {
	switch {
	case p.NodeName == "":
		return 0
	case p.Status != schemas.PodRunning:
		return 1
	default:
		return 2
	}
}
