package scheduler

import (
	"fmt"
	"sort"
	"strings"

	"github.com/miniku/miniku/schemas"
)

// DefaultMaxPods is the pod capacity of a node that does not report one
// (Kubernetes' default --max-pods).
const DefaultMaxPods = 110

// Reasons a node is filtered out, as they appear in the message of an
// unschedulable pod ("0/3 nodes available: 2 insufficient memory, 1 NotReady").
const (
	ReasonNotReady      = "NotReady"
	ReasonUnschedulable = "unschedulable"
	ReasonSelector      = "didn't match nodeSelector"
	ReasonTooManyPods   = "too many pods"
	ReasonCPU           = "insufficient cpu"
	ReasonMemory        = "insufficient memory"
)

// Decide picks the node for pod, or returns "" and why no node fits. It is
// a pure function of its inputs: bound holds the pods the scheduler knows
// (those bound to a node and not terminal count against its capacity).
//
// Filters, as in kube-scheduler: the node is Ready, not cordoned, carries
// every label of the pod's nodeSelector, has a free pod slot and room for
// the pod's cpu and memory requests (an unset node capacity is unlimited,
// an unset pod request is zero). Scores, in order: fewest pods of the same
// replicaset (spread), then the lowest share of the node allocated once the
// pod is placed (least allocated: the mean of the cpu, memory and pod
// fractions it has capacity for), then the name, so the choice is
// deterministic. Beyond 100 nodes it weighs only the first feasibleToFind
// nodes that fit (kube-scheduler's percentageOfNodesToScore), taken in name
// order from where the previous decision stopped (here: the first name).
func Decide(pod *schemas.Pod, nodes []*schemas.Node, bound []*schemas.Pod) (string, string) {
	x := newAllocIndex()
	for _, n := range nodes {
		x.setNode(n.Name, n, true)
	}
	for _, p := range bound {
		if p.NodeName == "" || p.Status.Terminal() || p.Name == pod.Name {
			continue
		}
		x.add(p.Name, contribution{node: p.NodeName, cpu: p.Resources.CPUMilli(), mem: p.Resources.MemoryBytes(), owner: p.Owner})
	}
	return x.decide(pod)
}

// usage is what the pods bound to a node request, as reported by
// allocIndex.usageByName.
type usage struct {
	cpu, mem int64
	pods     int
	// owners counts this node's pods per replicaset.
	owners map[string]int
}

// nodeInfo is a node as decisions read it, its capacities parsed once per
// change of the node rather than once per node per decision: the scheduler
// weighs every node for every pod.
type nodeInfo struct {
	*schemas.Node
	cpuCap, memCap int64 // < 0: unlimited
	maxPods        int
	slot           int // in the allocIndex that holds it
	rank           int // in the allocIndex's table, sorted by name
	// down is why the node takes no pod whatever the pod (NotReady,
	// cordoned), as filter's reason bits; 0 if none.
	down uint
	// The reciprocals of the capacities allocated divides by (0: none)
	// and how many there are.
	perPod, perMilli, perByte, dims float64
}

func newNodeInfo(n *schemas.Node) *nodeInfo {
	ni := &nodeInfo{Node: n, cpuCap: -1, memCap: -1, maxPods: DefaultMaxPods}
	if n.Capacity.CPU != "" {
		ni.cpuCap = n.Capacity.CPUMilli()
	}
	if n.Capacity.Memory != "" {
		ni.memCap = n.Capacity.MemoryBytes()
	}
	if n.Capacity.Pods > 0 {
		ni.maxPods = n.Capacity.Pods
	}
	switch {
	case n.Status != schemas.NodeReady:
		ni.down = 1 << bitNotReady
	case n.Unschedulable:
		ni.down = 1 << bitUnschedulable
	}
	ni.perPod, ni.dims = 1/float64(ni.maxPods), 1
	if ni.cpuCap > 0 {
		ni.perMilli = 1 / float64(ni.cpuCap)
		ni.dims++
	}
	if ni.memCap > 0 {
		ni.perByte = 1 / float64(ni.memCap)
		ni.dims++
	}
	return ni
}

// Filter results are bit sets of reasons, so that weighing a node that
// fits allocates nothing.
const (
	bitNotReady = iota
	bitUnschedulable
	bitSelector
	bitTooManyPods
	bitCPU
	bitMemory
	numReasons
)

var reasonText = [numReasons]string{ReasonNotReady, ReasonUnschedulable, ReasonSelector, ReasonTooManyPods, ReasonCPU, ReasonMemory}

// filter returns why pod cannot go to n as a set of reason bits; zero means
// it fits. Like kube-scheduler, a node lacking several resources counts
// under each.
func filter(pod *schemas.Pod, n *nodeInfo, u *slotUse, reqCPU, reqMem int64) uint {
	if n.down != 0 {
		return n.down
	}
	for k, v := range pod.NodeSelector {
		if got, ok := n.Labels[k]; !ok || got != v {
			return 1 << bitSelector
		}
	}
	var why uint
	if u.pods+1 > n.maxPods {
		why |= 1 << bitTooManyPods
	}
	if n.cpuCap >= 0 && u.cpu+reqCPU > n.cpuCap {
		why |= 1 << bitCPU
	}
	if n.memCap >= 0 && u.mem+reqMem > n.memCap {
		why |= 1 << bitMemory
	}
	return why
}

// allocated is the mean fraction of the node's capacities in use once pod
// is placed there.
func allocated(n *nodeInfo, u *slotUse, reqCPU, reqMem int64) float64 {
	sum := float64(u.pods+1) * n.perPod
	sum += float64(u.cpu+reqCPU) * n.perMilli
	sum += float64(u.mem+reqMem) * n.perByte
	return sum / n.dims
}

// unschedulableMessage renders Kubernetes' FailedScheduling message, most
// frequent reason first.
func unschedulableMessage(total int, counts [numReasons]int) string {
	if total == 0 {
		return "0/0 nodes available: no nodes registered"
	}
	failures := map[string]int{}
	for r, c := range counts {
		if c > 0 {
			failures[reasonText[r]] = c
		}
	}
	reasons := make([]string, 0, len(failures))
	for r := range failures {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool {
		a, b := reasons[i], reasons[j]
		if failures[a] != failures[b] {
			return failures[a] > failures[b]
		}
		return a < b
	})
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		parts[i] = fmt.Sprintf("%d %s", failures[r], r)
	}
	return fmt.Sprintf("0/%d nodes available: %s", total, strings.Join(parts, ", "))
}
