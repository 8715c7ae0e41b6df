package controller

import (
	"sync"

	"github.com/miniku/miniku/schemas"
)

// ownerIndex lists each replicaset's pods by name, so a replicaset sync
// reads its own pods instead of scanning every pod in the cache.
//
// refresh re-reads the pod from the cache under the index's lock, so the
// last refresh of a pod reflects its latest cached state; the informer
// handler refreshes every changed pod (and every pod at each resync), and
// the controller refreshes the pods it creates right after observing them,
// so its next sync counts them.
type ownerIndex struct {
	mu    sync.Mutex
	pods  map[string]map[string]struct{} // owner -> pod names
	owner map[string]string              // pod name -> owner
}

func newOwnerIndex() *ownerIndex {
	return &ownerIndex{pods: map[string]map[string]struct{}{}, owner: map[string]string{}}
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
	if had && old == now {
		return
	}
	if had {
		delete(x.pods[old], name)
		if len(x.pods[old]) == 0 {
			delete(x.pods, old)
		}
		delete(x.owner, name)
	}
	if now == "" {
		return
	}
	x.owner[name] = now
	set := x.pods[now]
	if set == nil {
		set = map[string]struct{}{}
		x.pods[now] = set
	}
	set[name] = struct{}{}
}

// podsOf returns the cached pods whose owner is name.
func (x *ownerIndex) podsOf(name string, get func(string) (*schemas.Pod, bool)) []*schemas.Pod {
	x.mu.Lock()
	names := make([]string, 0, len(x.pods[name]))
	for n := range x.pods[name] {
		names = append(names, n)
	}
	x.mu.Unlock()
	out := make([]*schemas.Pod, 0, len(names))
	for _, n := range names {
		// The cache may have moved on since the index was refreshed.
		if p, ok := get(n); ok && p.Owner == name {
			out = append(out, p)
		}
	}
	return out
}
