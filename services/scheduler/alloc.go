package scheduler

import (
	"sync"

	"github.com/miniku/miniku/schemas"
)

// allocIndex keeps what the pods bound to each node request, updated one
// pod at a time from the pod informer's handler and after each bind, so a
// decision reads it in O(nodes) instead of summing every bound pod.
//
// It cannot drift from the cache: refresh re-reads the pod from the cache
// under the index's lock, so the last refresh of a pod always reflects its
// latest cached state, and every resync refreshes every cached pod (pods
// dropped by a resync are notified as changed too).
type allocIndex struct {
	mu     sync.Mutex
	byNode map[string]*usage
	// held is what each pod currently contributes, to remove it exactly.
	held map[string]contribution
}

type contribution struct {
	node     string
	cpu, mem int64
	owner    string
}

func newAllocIndex() *allocIndex {
	return &allocIndex{byNode: map[string]*usage{}, held: map[string]contribution{}}
}

// refresh re-reads pod name through get and updates its contribution: a pod
// bound and not terminal holds its requests on its node; a pod pending,
// finished or gone holds nothing.
func (x *allocIndex) refresh(name string, get func(string) (*schemas.Pod, bool)) {
	x.mu.Lock()
	defer x.mu.Unlock()
	p, ok := get(name)
	old, had := x.held[name]
	if !ok || p.NodeName == "" || p.Status.Terminal() {
		if had {
			x.remove(old)
			delete(x.held, name)
		}
		return
	}
	c := contribution{node: p.NodeName, cpu: p.Resources.CPUMilli(), mem: p.Resources.MemoryBytes(), owner: p.Owner}
	if had {
		if old == c {
			return
		}
		x.remove(old)
	}
	x.held[name] = c
	u := x.byNode[c.node]
	if u == nil {
		u = &usage{owners: map[string]int{}}
		x.byNode[c.node] = u
	}
	u.cpu += c.cpu
	u.mem += c.mem
	u.pods++
	if c.owner != "" {
		u.owners[c.owner]++
	}
}

func (x *allocIndex) remove(c contribution) {
	u := x.byNode[c.node]
	if u == nil {
		return
	}
	u.cpu -= c.cpu
	u.mem -= c.mem
	u.pods--
	if c.owner != "" {
		if u.owners[c.owner]--; u.owners[c.owner] <= 0 {
			delete(u.owners, c.owner)
		}
	}
	if u.pods <= 0 {
		delete(x.byNode, c.node)
	}
}

// decide runs Decide's logic on the indexed usage; the index is locked
// for the decision so it reads one consistent state.
func (x *allocIndex) decide(pod *schemas.Pod, nodes []*schemas.Node) (string, string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return decideWith(pod, nodes, x.byNode)
}
