package scheduler

import (
	"fmt"
	"sync"

	"github.com/miniku/miniku/internal/shrink"
	"github.com/miniku/miniku/schemas"
)

// roomTracker tells when room may have appeared for pending pods: a pod
// that held resources on a node is gone or finished, or a node changed in a
// way that matters to Decide. Heartbeats and resyncs, which change nothing
// of that, then cost no re-decision of every pending pod.
type roomTracker struct {
	mu      sync.Mutex
	holding map[string]bool   // pods bound and not terminal
	nodes   map[string]string // what Decide reads of each node
	// holdingPeak: holding is rebuilt once it emptied.
	holdingPeak shrink.Peak
}

func newRoomTracker() *roomTracker {
	return &roomTracker{holding: map[string]bool{}, nodes: map[string]string{}}
}

// podChanged records the pod's current state (ok false: deleted) and
// reports whether it released room.
func (r *roomTracker) podChanged(name string, p *schemas.Pod, ok bool) bool {
	holds := ok && p.NodeName != "" && !p.Status.Terminal()
	r.mu.Lock()
	defer r.mu.Unlock()
	held := r.holding[name]
	if holds {
		r.holding[name] = true
	} else {
		delete(r.holding, name)
		r.holding = shrink.Map(r.holding, &r.holdingPeak)
	}
	return held && !holds
}

// nodeChanged reports whether what Decide reads of the node changed.
func (r *roomTracker) nodeChanged(name string, n *schemas.Node, ok bool) bool {
	fp := ""
	if ok {
		// fmt prints maps sorted by key, so equal labels print equally.
		fp = fmt.Sprint(n.Status, n.Unschedulable, n.Capacity, n.Labels)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old, seen := r.nodes[name]
	if ok {
		r.nodes[name] = fp
	} else {
		delete(r.nodes, name)
	}
	return !seen || old != fp
}
