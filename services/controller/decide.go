package controller

import (
	"sort"

	"github.com/miniku/miniku/schemas"
)

// Plan is what one replicaset reconcile decided.
type Plan struct {
	Create int            // pods to create
	Delete []*schemas.Pod // pods to delete (terminal ones to replace, extras)
	Status schemas.ReplicaSet
}

// DecideReplicaSet compares a replicaset with its pods. Terminating pods
// (deletionTimestamp set) are already going and count for nothing, so
// replacements start at once, as in Kubernetes. Terminal pods are
// deleted and replaced. Extras go in Kubernetes' order: unscheduled first,
// then not yet running, then the newest.
func DecideReplicaSet(rs *schemas.ReplicaSet, pods []*schemas.Pod) Plan {
	var plan Plan
	var active []*schemas.Pod
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		if p.Status.Terminal() {
			plan.Delete = append(plan.Delete, p)
			continue
		}
		active = append(active, p)
	}
	switch diff := rs.DesiredCount - len(active); {
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
