package kubelet

import (
	"context"
	"fmt"
	"time"

	"github.com/miniku/miniku/schemas"
)

// replaceMalformedNode overwrites this node's object when its KV value is
// garbage (bus.ErrMalformed): the kubelet owns it, and without a heartbeat
// the node would go NotReady and lose its pods. The write is a CAS on the
// garbage's revision, so a concurrent good write wins instead. What the old
// object held beyond what describe restores (cordon) is lost; it said
// nothing readable anyway.
func (k *Kubelet) replaceMalformedNode(ctx context.Context, now time.Time, hostname string) error {
	e, err := k.conn.Nodes.KV().Get(ctx, k.cfg.NodeName)
	if err != nil {
		return fmt.Errorf("read malformed node %s: %w", k.cfg.NodeName, err)
	}
	k.log.Warn("node object is malformed; replacing it", "revision", e.Revision(), "bytes", len(e.Value()))
	n := &schemas.Node{
		ObjectMeta:    schemas.ObjectMeta{Name: k.cfg.NodeName, CreatedAt: now, UID: newContainerID()[:32], ResourceVersion: e.Revision()},
		Status:        schemas.NodeReady,
		LastHeartbeat: now,
		Hostname:      hostname,
	}
	k.describe(n)
	k.label(n)
	if err := k.conn.Nodes.Update(ctx, n); err != nil {
		return fmt.Errorf("replace malformed node %s: %w", k.cfg.NodeName, err)
	}
	return nil
}
