package controller

import (
	"sync"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas"
)

// ownerCounts are, per owner name and owner UID, what a replicaset sync's
// plan depends on, kept from the pod cache's events: a sync with nothing
// to create or delete (most syncs while a big replicaset starts) reads
// them instead of its pods. The cache's events come one at a time in the
// order it changed, the controller's own writes (Observe) included before
// Observe returns, so the counts are the cache's.
type ownerCounts struct {
	mu     sync.Mutex
	counts map[string]map[string]*podCounts
}

var _ bus.Handler[*schemas.Pod] = (*ownerCounts)(nil)

// podCounts classifies an owner's pods as DecideReplicaSet does.
type podCounts struct {
	active, running, terminal, deleting int
}

func (c *podCounts) add(p *schemas.Pod, n int) {
	switch {
	case p.DeletionTimestamp != nil:
		c.deleting += n
	case p.Status.Terminal():
		c.terminal += n
	default:
		c.active += n
		if p.Status == schemas.PodRunning {
			c.running += n
		}
	}
}

func newOwnerCounts() *ownerCounts {
	return &ownerCounts{counts: map[string]map[string]*podCounts{}}
}

func (x *ownerCounts) OnAdd(p *schemas.Pod) { x.apply(nil, p) }

func (x *ownerCounts) OnUpdate(old, p *schemas.Pod) {
	if old != p {
		x.apply(old, p)
	}
}

func (x *ownerCounts) OnDelete(old *schemas.Pod) { x.apply(old, nil) }

func (x *ownerCounts) apply(old, p *schemas.Pod) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if old != nil {
		x.count(old, -1)
	}
	if p != nil {
		x.count(p, 1)
	}
}

// count adds (n = 1) or removes (n = -1) p's contribution to its owner's
// counts.
func (x *ownerCounts) count(p *schemas.Pod, n int) {
	if p.Owner == "" {
		return
	}
	byUID := x.counts[p.Owner]
	if byUID == nil {
		byUID = map[string]*podCounts{}
		x.counts[p.Owner] = byUID
	}
	c := byUID[p.OwnerUID]
	if c == nil {
		c = &podCounts{}
		byUID[p.OwnerUID] = c
	}
	c.add(p, n)
	if *c == (podCounts{}) {
		delete(byUID, p.OwnerUID)
		if len(byUID) == 0 {
			delete(x.counts, p.Owner)
		}
	}
}

// steady returns the counts of owner's pods when all of them belong to the
// replicaset with uid and none is terminal or terminating: then a sync
// needs no pod, only these counts.
func (x *ownerCounts) steady(owner, uid string) (podCounts, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	byUID := x.counts[owner]
	c := byUID[uid]
	if c == nil {
		return podCounts{}, len(byUID) == 0
	}
	if len(byUID) != 1 || c.terminal != 0 || c.deleting != 0 {
		return podCounts{}, false
	}
	return *c, true
}
