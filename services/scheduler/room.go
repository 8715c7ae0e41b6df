package scheduler

import (
	"fmt"

	"github.com/miniku/miniku/schemas"
)

// Room may appear for pending pods when a pod that held resources on a node
// is gone or finished, or a node changed in a way that matters to Decide.
// Heartbeats and resyncs, which change nothing of that, then cost no
// re-decision of every pending pod. The informers hand over the version
// before a change, so these are functions of the two versions (nil: the
// object did not exist, or is gone).

// holdsRoom reports whether p holds resources on a node.
func holdsRoom(p *schemas.Pod) bool {
	return p != nil && p.NodeName != "" && !p.Status.Terminal()
}

// freesRoom reports whether a pod's change from old to now released room.
func freesRoom(old, now *schemas.Pod) bool { return holdsRoom(old) && !holdsRoom(now) }

// nodeMatters reports whether what Decide reads of a node changed from old
// to now.
func nodeMatters(old, now *schemas.Node) bool {
	if old == nil || now == nil {
		return old != now
	}
	return nodeFingerprint(old) != nodeFingerprint(now)
}

func nodeFingerprint(n *schemas.Node) string {
	// fmt prints maps sorted by key, so equal labels print equally.
	return fmt.Sprint(n.Status, n.Unschedulable, n.Capacity, n.Labels)
}
