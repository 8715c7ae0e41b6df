package scheduler

import (
	"context"
	"errors"
	"fmt"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/schemas/kinds"
)

// ReasonPodUnschedulable is set on a Pending pod that fits on no node, with
// the filter summary as its message (Kubernetes records the same in the
// PodScheduled condition).
const ReasonPodUnschedulable = kinds.ReasonUnschedulable

// markUnschedulable records why pod fits nowhere, with a compare-and-swap
// and only when the message changed, so a pod waiting for room costs no
// writes; a FailedScheduling event goes out with each new message.
func (s *Scheduler) markUnschedulable(ctx context.Context, pod *schemas.Pod, msg string) error {
	if pod.Reason == ReasonPodUnschedulable && pod.Message == msg {
		return nil
	}
	wrote := false
	updated, err := s.writes.UpdateStatus(ctx, pod.Name, func(cur *schemas.Pod) error {
		wrote = false // fn runs again after a conflict
		if cur.UID != pod.UID || !needsBinding(cur) || (cur.Reason == ReasonPodUnschedulable && cur.Message == msg) {
			return bus.ErrNoChange
		}
		cur.Reason, cur.Message = ReasonPodUnschedulable, msg
		wrote = true
		return nil
	})
	if errors.Is(err, bus.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("record pod %s unschedulable: %w", pod.Name, err)
	}
	s.pods.Observe(updated)
	if wrote {
		s.log.Info("pod unschedulable", "pod", pod.Name, "reason", msg)
		s.conn.Emit(schemas.ObjectEvent{Type: schemas.EventWarning, Reason: "FailedScheduling", Kind: schemas.KindPod,
			Name: pod.Name, Component: "scheduler", Message: msg})
	}
	return nil
}
