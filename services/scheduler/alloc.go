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
//
// A pod being bound is assumed: it holds its requests on the chosen node
// from the decision until the bind's outcome is known, whatever the cache
// says meanwhile, so binds can be in flight concurrently without two
// decisions filling the same room (kube-scheduler's assume, the same idea).
type allocIndex struct {
	mu     sync.Mutex
	byNode map[string]*usage
	// held is what each pod currently contributes, to remove it exactly.
	held    map[string]contribution
	assumed map[string]bool
}

type contribution struct {
	node     string
	cpu, mem int64
	owner    string
}

func newAllocIndex() *allocIndex {
	return &allocIndex{byNode: map[string]*usage{}, held: map[string]contribution{}, assumed: map[string]bool{}}
}

// refresh re-reads pod name through get and updates its contribution: a pod
// bound and not terminal holds its requests on its node; a pod pending,
// finished or gone holds nothing.
func (x *allocIndex) refresh(name string, get func(string) (*schemas.Pod, bool)) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.assumed[name] {
		return // forget refreshes it once the bind is settled
	}
	x.refreshLocked(name, get)
}

func (x *allocIndex) refreshLocked(name string, get func(string) (*schemas.Pod, bool)) {
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
	x.add(name, c)
}

func (x *allocIndex) add(name string, c contribution) {
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
func (x *allocIndex) decide(pod *schemas.Pod, nodes []*nodeInfo) (string, string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return decideWith(pod, nodes, x.byNode)
}

// decideAndAssume decides and, when a node fits, assumes the pod there in
// the same critical section, so the next decision already counts it. The
// caller must call forget once the bind succeeded or failed.
func (x *allocIndex) decideAndAssume(pod *schemas.Pod, nodes []*nodeInfo) (string, string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.assumed[pod.Name] {
		// Another worker is binding this pod (it was re-queued under a new
		// name-less event); it settles, then the cache tells.
		return "", ""
	}
	node, why := decideWith(pod, nodes, x.byNode)
	if node == "" {
		return "", why
	}
	if old, had := x.held[pod.Name]; had {
		x.remove(old)
	}
	x.add(pod.Name, contribution{node: node, cpu: pod.Resources.CPUMilli(), mem: pod.Resources.MemoryBytes(), owner: pod.Owner})
	x.assumed[pod.Name] = true
	return node, ""
}

// forget ends the assumption on pod name and re-reads it through get: call
// it after recording the bind's outcome in the cache (Observe of the bound
// pod, or of a fresh read after a conflict).
func (x *allocIndex) forget(name string, get func(string) (*schemas.Pod, bool)) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.assumed, name)
	x.refreshLocked(name, get)
}
