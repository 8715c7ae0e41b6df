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

// usage is what the pods bound to a node request.
type usage struct {
	cpu, mem int64
	pods     int
	// owners counts this node's pods per replicaset, for spreading.
	owners map[string]int
}

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
// deterministic.
func Decide(pod *schemas.Pod, nodes []*schemas.Node, bound []*schemas.Pod) (string, string) {
	infos := make([]*nodeInfo, len(nodes))
	for i, n := range nodes {
		infos[i] = newNodeInfo(n)
	}
	return decideWith(pod, infos, usageByNode(pod, bound))
}

// nodeInfo is a node as decisions read it, its capacities parsed once per
// change of the node rather than once per node per decision: the scheduler
// weighs every node for every pod.
type nodeInfo struct {
	*schemas.Node
	cpuCap, memCap int64 // < 0: unlimited
	maxPods        int
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
	return ni
}

// decideWith is Decide given what each node's bound pods already request
// (not counting pod itself), as the scheduler's allocation index keeps it.
// use is only read.
func decideWith(pod *schemas.Pod, nodes []*nodeInfo, use map[string]*usage) (string, string) {
	reqCPU, reqMem := pod.Resources.CPUMilli(), pod.Resources.MemoryBytes()
	var failures [numReasons]int
	var best *nodeInfo
	var bestSpread int
	var bestAlloc float64
	for _, n := range nodes {
		u := use[n.Name]
		if why := filter(pod, n, u, reqCPU, reqMem); why != 0 {
			for r := range numReasons {
				if why&(1<<r) != 0 {
					failures[r]++
				}
			}
			continue
		}
		spread := 0
		if pod.Owner != "" && u != nil {
			spread = u.owners[pod.Owner]
		}
		alloc := allocated(n, u, reqCPU, reqMem)
		if best == nil || spread < bestSpread ||
			(spread == bestSpread && (alloc < bestAlloc || (alloc == bestAlloc && n.Name < best.Name))) {
			best, bestSpread, bestAlloc = n, spread, alloc
		}
	}
	if best != nil {
		return best.Name, ""
	}
	counts := map[string]int{}
	for r, c := range failures {
		if c > 0 {
			counts[reasonText[r]] = c
		}
	}
	return "", unschedulableMessage(len(nodes), counts)
}

func usageByNode(pod *schemas.Pod, bound []*schemas.Pod) map[string]*usage {
	use := map[string]*usage{}
	for _, p := range bound {
		if p.NodeName == "" || p.Status.Terminal() || p.Name == pod.Name {
			continue
		}
		u := use[p.NodeName]
		if u == nil {
			u = &usage{owners: map[string]int{}}
			use[p.NodeName] = u
		}
		u.cpu += p.Resources.CPUMilli()
		u.mem += p.Resources.MemoryBytes()
		u.pods++
		if p.Owner != "" {
			u.owners[p.Owner]++
		}
	}
	return use
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
func filter(pod *schemas.Pod, n *nodeInfo, u *usage, reqCPU, reqMem int64) uint {
	if n.Status != schemas.NodeReady {
		return 1 << bitNotReady
	}
	if n.Unschedulable {
		return 1 << bitUnschedulable
	}
	for k, v := range pod.NodeSelector {
		if got, ok := n.Labels[k]; !ok || got != v {
			return 1 << bitSelector
		}
	}
	var pods int
	var cpu, mem int64
	if u != nil {
		pods, cpu, mem = u.pods, u.cpu, u.mem
	}
	var why uint
	if pods+1 > n.maxPods {
		why |= 1 << bitTooManyPods
	}
	if n.cpuCap >= 0 && cpu+reqCPU > n.cpuCap {
		why |= 1 << bitCPU
	}
	if n.memCap >= 0 && mem+reqMem > n.memCap {
		why |= 1 << bitMemory
	}
	return why
}

// allocated is the mean fraction of the node's capacities in use once pod
// is placed there.
func allocated(n *nodeInfo, u *usage, reqCPU, reqMem int64) float64 {
	var pods int
	var cpu, mem int64
	if u != nil {
		pods, cpu, mem = u.pods, u.cpu, u.mem
	}
	sum := float64(pods+1) / float64(n.maxPods)
	dims := 1.0
	if n.cpuCap > 0 {
		sum += float64(cpu+reqCPU) / float64(n.cpuCap)
		dims++
	}
	if n.memCap > 0 {
		sum += float64(mem+reqMem) / float64(n.memCap)
		dims++
	}
	return sum / dims
}

// unschedulableMessage renders Kubernetes' FailedScheduling message, most
// frequent reason first.
func unschedulableMessage(total int, failures map[string]int) string {
	if total == 0 {
		return "0/0 nodes available: no nodes registered"
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
