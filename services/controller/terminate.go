package controller

import (
	"context"
	"errors"
	"fmt"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas"
)

// terminatePod is the controller's pod delete: like DELETE /pods/{name} it
// marks the pod Terminating with CAS (deletionTimestamp, and the pod's own
// grace period), and the kubelet stops the container and deletes the
// object. A pod no kubelet would finish — unbound, or bound to a node that
// does not exist — is deleted at once. Terminating pods on a node that
// stays NotReady are force-deleted by the node loop (see evictPods).
func (c *Controller) terminatePod(ctx context.Context, p *schemas.Pod, why string) error {
	if p.DeletionTimestamp != nil {
		return nil
	}
	if _, known := c.nodes.Get(p.NodeName); p.NodeName == "" || !known {
		return c.deletePod(ctx, p, why)
	}
	var unbound *schemas.Pod
	updated, err := c.podWrites.MarkDeleting(ctx, p.Name, func(cur *schemas.Pod) (int64, error) {
		unbound = nil // decide runs again after a conflict
		// An owner change (orphaned meanwhile) takes it out of the sync
		// that decided this.
		if cur.UID != p.UID || cur.DeletionTimestamp != nil || cur.OwnerUID != p.OwnerUID {
			return 0, bus.ErrNoChange
		}
		if cur.NodeName == "" {
			unbound = cur
			return 0, bus.ErrNoChange
		}
		return int64(cur.GracePeriod().Seconds()), nil
	})
	switch {
	case errors.Is(err, bus.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("terminate pod %s: %w", p.Name, err)
	case unbound != nil:
		return c.deletePod(ctx, unbound, why)
	}
	if updated.UID == p.UID && updated.DeletionTimestamp != nil {
		c.pods.Observe(updated)
		c.log.Info("terminating pod", "pod", p.Name, "replicaset", p.Owner, "node", p.NodeName, "reason", why)
	}
	return nil
}
