package controller

import (
	"sync"

	"github.com/miniku/miniku/internal/shrink"
	"github.com/miniku/miniku/schemas"
)

// ownerIndex holds each replicaset's pods, so a replicaset sync reads its
// own pods instead of scanning every pod in the cache, and reads them
// without a cache lookup each: a sync of a 10,000-pod replicaset is a copy
// of 10,000 pointers.
//
// refresh re-reads the pod from the cache under the index's lock, so the
// last refresh of a pod reflects its latest cached state; the informer
// handler refreshes every changed pod (and every pod at each resync), and
// the controller refreshes every pod it writes right after observing the
// write, so its next sync sees its own writes.
type ownerIndex struct {
	mu    sync.Mutex
	pods  map[string]map[string]*schemas.Pod // owner -> pod name -> pod
	owner map[string]string                  // pod name -> owner
	// counts are, per owner and owner UID, what a sync's plan depends on,
	// kept as pods change: a sync with nothing to create or delete (most
	// syncs while a big replicaset starts) reads them instead of its pods.
	counts map[string]map[string]*podCounts
	// ownerPeak: owner is rebuilt once it emptied (a Go map keeps its
	// peak's table); an owner's pods go with the owner's last pod.
	ownerPeak shrink.Peak
}

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

func newOwnerIndex() *ownerIndex {
	return &ownerIndex{pods: map[string]map[string]*schemas.Pod{}, owner: map[string]string{},
		counts: map[string]map[string]*podCounts{}}
}

// count adds (n = 1) or removes (n = -1) p's contribution to its owner's
// counts.
func (x *ownerIndex) count(p *schemas.Pod, n int) {
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
func (x *ownerIndex) steady(owner, uid string) (podCounts, bool) {
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

func (x *ownerIndex) refresh(name string, get func(string) (*schemas.Pod, bool)) {
	x.mu.Lock()
	defer x.mu.Unlock()
	p, ok := get(name)
	now := ""
	if ok {
		now = p.Owner
	}
	old, had := x.owner[name]
	if had {
		x.count(x.pods[old][name], -1)
	}
	if had && old == now {
		if now != "" {
			x.pods[now][name] = p
			x.count(p, 1)
		}
		return
	}
	if had {
		delete(x.pods[old], name)
		if len(x.pods[old]) == 0 {
			delete(x.pods, old)
		}
		delete(x.owner, name)
		x.owner = shrink.Map(x.owner, &x.ownerPeak)
	}
	if now == "" {
		return
	}
	x.owner[name] = now
	set := x.pods[now]
	if set == nil {
		set = map[string]*schemas.Pod{}
		x.pods[now] = set
	}
	set[name] = p
	x.count(p, 1)
}

// podsOf returns the pods whose owner is name, as last refreshed.
func (x *ownerIndex) podsOf(name string) []*schemas.Pod {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]*schemas.Pod, 0, len(x.pods[name]))
	for _, p := range x.pods[name] {
		out = append(out, p)
	}
	return out
}
