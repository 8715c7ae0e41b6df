package controller

import (
	"sync"

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
}

func newOwnerIndex() *ownerIndex {
	return &ownerIndex{pods: map[string]map[string]*schemas.Pod{}, owner: map[string]string{}}
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
		if now != "" {
			x.pods[now][name] = p
		}
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
		set = map[string]*schemas.Pod{}
		x.pods[now] = set
	}
	set[name] = p
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
