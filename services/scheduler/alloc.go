package scheduler

import (
	"sort"
	"sync"

	"github.com/miniku/miniku/internal/shrink"
	"github.com/miniku/miniku/schemas"
)

// allocIndex keeps the nodes as decisions read them and what the pods bound
// to each node request, updated one node or pod at a time from the
// informers' handlers and after each bind, so a decision is one pass over
// the nodes instead of a sum over every bound pod.
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
//
// The scheduler weighs every node for every pod, so the pass must be
// cheap: each node name has a slot, usage is a slice indexed by slot, and
// the pods of each replicaset per node (for spreading) a slice per owner.
// A pass reads no map but the pod's owner's, once.
type allocIndex struct {
	mu sync.Mutex
	// slots: a slot lives while its node exists or a pod holds room on it
	// (a pod may be bound to a node the scheduler has not seen, or that
	// was deleted).
	slots map[string]int
	names []string // by slot; "" for a free slot
	use   []slotUse
	free  []int
	// spread is, per owner, its pods on each slot.
	spread map[string][]int32
	// nodes are the existing nodes; table is them as a slice, rebuilt
	// after a change of nodes (nil: stale).
	nodes map[string]*nodeInfo
	table []*nodeInfo
	// next is where the next decision starts its pass over table, so
	// that decisions that stop early (feasibleToFind) weigh every node in
	// turn.
	next int
	// held is what each pod currently contributes, to remove it exactly.
	held    map[string]contribution
	assumed map[string]bool
	// The pod-keyed maps are rebuilt once they emptied (a Go map keeps its
	// peak's table).
	heldPeak, assumedPeak shrink.Peak
}

type slotUse struct {
	cpu, mem int64
	pods     int
}

type contribution struct {
	node     string
	cpu, mem int64
	owner    string
}

func newAllocIndex() *allocIndex {
	return &allocIndex{slots: map[string]int{}, spread: map[string][]int32{}, nodes: map[string]*nodeInfo{},
		held: map[string]contribution{}, assumed: map[string]bool{}}
}

// slotOf returns node name's slot, making one.
func (x *allocIndex) slotOf(name string) int {
	if s, ok := x.slots[name]; ok {
		return s
	}
	var s int
	if n := len(x.free); n > 0 {
		s, x.free = x.free[n-1], x.free[:n-1]
		x.names[s] = name
	} else {
		s = len(x.names)
		x.names = append(x.names, name)
		x.use = append(x.use, slotUse{})
	}
	x.slots[name] = s
	return s
}

// release frees name's slot once neither a node nor a pod needs it. Its
// usage and spread counts are zero then: every pod's contribution was
// removed.
func (x *allocIndex) release(name string) {
	s, ok := x.slots[name]
	if !ok || x.use[s].pods > 0 || x.nodes[name] != nil {
		return
	}
	delete(x.slots, name)
	x.names[s] = ""
	x.use[s] = slotUse{}
	x.free = append(x.free, s)
}

// setNode records node name's state as decisions read it (ok false: the
// node is gone). Call it when status, cordon, capacity or labels changed.
func (x *allocIndex) setNode(name string, n *schemas.Node, ok bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.table = nil
	if !ok {
		delete(x.nodes, name)
		x.release(name)
		return
	}
	ni := newNodeInfo(n)
	ni.slot = x.slotOf(name)
	x.nodes[name] = ni
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
			x.remove(name, old)
		}
		return
	}
	c := contribution{node: p.NodeName, cpu: p.Resources.CPUMilli(), mem: p.Resources.MemoryBytes(), owner: p.Owner}
	if had {
		if old == c {
			return
		}
		x.remove(name, old)
	}
	x.add(name, c)
}

func (x *allocIndex) add(name string, c contribution) {
	x.held[name] = c
	s := x.slotOf(c.node)
	u := &x.use[s]
	u.cpu += c.cpu
	u.mem += c.mem
	u.pods++
	if c.owner != "" {
		counts := x.spread[c.owner]
		if len(counts) <= s {
			counts = append(counts, make([]int32, len(x.names)-len(counts))...)
			x.spread[c.owner] = counts
		}
		counts[s]++
	}
}

func (x *allocIndex) remove(name string, c contribution) {
	delete(x.held, name)
	x.held = shrink.Map(x.held, &x.heldPeak)
	s, ok := x.slots[c.node]
	if !ok {
		return
	}
	u := &x.use[s]
	u.cpu -= c.cpu
	u.mem -= c.mem
	u.pods--
	if c.owner != "" {
		if counts := x.spread[c.owner]; s < len(counts) {
			counts[s]--
			if counts[s] <= 0 && allZero(counts) {
				delete(x.spread, c.owner)
			}
		}
	}
	x.release(c.node)
}

// allZero is only reached when an owner's count on one node drops to zero,
// so it costs a pass over the nodes per node an owner leaves.
func allZero(counts []int32) bool {
	for _, c := range counts {
		if c != 0 {
			return false
		}
	}
	return true
}

// nodeTable returns the nodes sorted by name, each knowing its rank there
// (ties between equal scores go to the lower rank: the name order Decide
// documents, without comparing strings in the pass).
func (x *allocIndex) nodeTable() []*nodeInfo {
	if x.table == nil {
		x.table = make([]*nodeInfo, 0, len(x.nodes))
		for _, n := range x.nodes {
			x.table = append(x.table, n)
		}
		sort.Slice(x.table, func(i, j int) bool { return x.table[i].Name < x.table[j].Name })
		for i, n := range x.table {
			n.rank = i
		}
	}
	return x.table
}

// feasibleToFind is how many fitting nodes a decision weighs before it
// stops, as kube-scheduler's percentageOfNodesToScore: every node of a
// small cluster, then a share falling from 50 % by one point per 125
// nodes to at least 5 %, never fewer than 100. A pod that fits nowhere is
// still checked against every node (its message counts them all).
func feasibleToFind(nodes int) int {
	const minFeasible, minPercent = 100, 5
	if nodes <= minFeasible {
		return nodes
	}
	pct := max(50-nodes/125, minPercent)
	return max(nodes*pct/100, minFeasible)
}

// decideLocked is Decide on the index: filters and scores as Decide
// documents, pod itself not counted anywhere.
func (x *allocIndex) decideLocked(pod *schemas.Pod) (string, string) {
	reqCPU, reqMem := pod.Resources.CPUMilli(), pod.Resources.MemoryBytes()
	var counts []int32
	if pod.Owner != "" {
		counts = x.spread[pod.Owner]
	}
	nodes := x.nodeTable()
	want := feasibleToFind(len(nodes))
	start := 0
	if len(nodes) > 0 {
		start = x.next % len(nodes)
	}
	var failures [numReasons]int
	var best *nodeInfo
	var bestSpread int32
	var bestAlloc float64
	found, i := 0, 0
	for ; i < len(nodes) && found < want; i++ {
		n := nodes[(start+i)%len(nodes)]
		u := &x.use[n.slot]
		if why := filter(pod, n, u, reqCPU, reqMem); why != 0 {
			for r := range numReasons {
				if why&(1<<r) != 0 {
					failures[r]++
				}
			}
			continue
		}
		found++
		var spread int32
		if n.slot < len(counts) {
			spread = counts[n.slot]
		}
		if best != nil && spread > bestSpread {
			continue
		}
		alloc := allocated(n, u, reqCPU, reqMem)
		if best == nil || spread < bestSpread || alloc < bestAlloc || (alloc == bestAlloc && n.rank < best.rank) {
			best, bestSpread, bestAlloc = n, spread, alloc
		}
	}
	x.next = start + i
	if best != nil {
		return best.Name, ""
	}
	return "", unschedulableMessage(len(nodes), failures)
}

// decide decides without assuming.
func (x *allocIndex) decide(pod *schemas.Pod) (string, string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.decideLocked(pod)
}

// decideAndAssume decides and, when a node fits, assumes the pod there in
// the same critical section, so the next decision already counts it. The
// caller must call forget once the bind succeeded or failed.
func (x *allocIndex) decideAndAssume(pod *schemas.Pod) (string, string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.assumed[pod.Name] {
		// Another worker is binding this pod; it settles, then the cache
		// tells.
		return "", ""
	}
	if old, had := x.held[pod.Name]; had {
		// Decide never counts the pod itself.
		x.remove(pod.Name, old)
	}
	node, why := x.decideLocked(pod)
	if node == "" {
		return "", why
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
	x.assumed = shrink.Map(x.assumed, &x.assumedPeak)
	x.refreshLocked(name, get)
}

// usageByName reports the index's usage the way Decide's recount builds
// it (nodes with pods only), for tests and debugging.
func (x *allocIndex) usageByName() map[string]*usage {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := map[string]*usage{}
	for name, s := range x.slots {
		u := x.use[s]
		if u.pods == 0 {
			continue
		}
		r := &usage{cpu: u.cpu, mem: u.mem, pods: u.pods, owners: map[string]int{}}
		for owner, counts := range x.spread {
			if s < len(counts) && counts[s] > 0 {
				r.owners[owner] = int(counts[s])
			}
		}
		out[name] = r
	}
	return out
}
