package scheduler

import (
	"sync"

	"github.com/miniku/miniku/schemas"
)

// nodeTable holds the nodes as decisions read them. It changes only when
// something a decision reads changes (status, cordon, capacity, labels),
// not at every heartbeat, and hands out the same slice until then, so a
// decision neither copies nor re-parses a thousand nodes.
type nodeTable struct {
	mu     sync.Mutex
	byName map[string]*nodeInfo
	list   []*nodeInfo // nil: rebuild from byName
}

func newNodeTable() *nodeTable {
	return &nodeTable{byName: map[string]*nodeInfo{}}
}

// set records node name's new state (ok false: deleted).
func (t *nodeTable) set(name string, n *schemas.Node, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ok {
		t.byName[name] = newNodeInfo(n)
	} else {
		delete(t.byName, name)
	}
	t.list = nil
}

// snapshot returns the nodes; callers must not modify the slice.
func (t *nodeTable) snapshot() []*nodeInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.list == nil {
		t.list = make([]*nodeInfo, 0, len(t.byName))
		for _, n := range t.byName {
			t.list = append(t.list, n)
		}
	}
	return t.list
}
