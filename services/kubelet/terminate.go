package kubelet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/miniku/miniku/bus"
	ctr "github.com/miniku/miniku/runtime"
	"github.com/miniku/miniku/schemas"
)

// stopOp is a container stop in progress. Stops run in their own goroutine
// so a long grace period never holds a sync worker.
type stopOp struct {
	grace  time.Duration
	cancel context.CancelFunc
}

// syncTerminating finishes a graceful delete: stop the container within the
// pod's deletion grace period, remove it, then delete the pod object with
// CAS. Every step is re-derived from KV and the runtime, so a kubelet that
// restarts half-way simply carries on.
func (k *Kubelet) syncTerminating(ctx context.Context, pod *schemas.Pod, current *ctr.Container) error {
	if current != nil {
		if current.Status == ctr.StatusRunning {
			k.stopAsync(ctx, pod, *current, pod.DeletionGrace(), "pod is terminating")
			return nil // requeued when the stop ends
		}
		if err := k.rt.Remove(current.ID); err != nil && !errors.Is(err, ctr.ErrNotFound) {
			return fmt.Errorf("remove container %s of terminating pod %s: %w", current.ID, pod.Name, err)
		}
		k.untrack(current.ID)
		k.log.Info("removed container", "pod", pod.Name, "container", current.ID, "reason", "pod is terminating")
	}
	if k.hasContainer(pod.Name) {
		// A duplicate or an older pod's container is still stopping; its
		// stop requeues the pod.
		return nil
	}
	return k.deleteTerminated(ctx, pod)
}

// deleteTerminated removes the pod object once its container is gone, at the
// revision just read and only if it is still the same Terminating pod.
func (k *Kubelet) deleteTerminated(ctx context.Context, pod *schemas.Pod) error {
	for attempt := 0; ; attempt++ {
		cur, err := k.conn.GetNodePod(ctx, k.cfg.NodeName, pod.Name)
		if errors.Is(err, bus.ErrNotFound) || errors.Is(err, bus.ErrForbidden) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("delete terminated pod %s: %w", pod.Name, err)
		}
		if cur.UID != pod.UID || cur.NodeName != k.cfg.NodeName || cur.DeletionTimestamp == nil {
			return nil
		}
		// Through the node API: it checks the pod is this node's and
		// Terminating, and deletes at the revision just read.
		kept, err := k.conn.DeletePod(ctx, k.cfg.NodeName, cur)
		if errors.Is(err, bus.ErrConflict) && attempt < 10 {
			continue
		}
		if errors.Is(err, bus.ErrNotFound) || errors.Is(err, bus.ErrForbidden) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("delete terminated pod %s: %w", pod.Name, err)
		}
		if kept != nil {
			// Finalizers hold it; done here, the pod goes with the last.
			k.pods.Observe(kept)
			k.log.Info("pod terminated, kept by finalizers", "pod", pod.Name, "finalizers", kept.Finalizers)
			return nil
		}
		k.pods.ObserveDelete(cur.Name, cur.ResourceVersion+1)
		k.log.Info("pod deleted", "pod", pod.Name, "terminatingFor", time.Since(*cur.DeletionTimestamp).Round(time.Millisecond))
		ev := schemas.Event{Type: "deleted", Kind: schemas.KindPod, Name: pod.Name, Node: k.cfg.NodeName, Revision: cur.ResourceVersion}
		if err := k.conn.Publish(bus.SubjPodDeleted, ev); err != nil {
			k.log.Warn("publish pod deleted", "pod", pod.Name, "err", err)
		}
		return nil
	}
}

// stopAsync stops c in the background (SIGTERM, then SIGKILL after grace)
// and requeues its pod when done. A stop already running with the same or
// a shorter grace is left alone; a shorter grace (a second DELETE with a
// smaller gracePeriodSeconds) replaces it. pod may be nil when the pod
// object is gone.
func (k *Kubelet) stopAsync(ctx context.Context, pod *schemas.Pod, c ctr.Container, grace time.Duration, why string) {
	k.mu.Lock()
	if op, ok := k.stopping[c.ID]; ok {
		if grace >= op.grace {
			k.mu.Unlock()
			return
		}
		op.cancel()
	}
	sctx, cancel := context.WithCancel(ctx)
	op := &stopOp{grace: grace, cancel: cancel}
	k.stopping[c.ID] = op
	k.wg.Add(1)
	k.mu.Unlock()

	name := c.Labels[labelPod]
	msg := "Stopping container"
	if pod != nil {
		msg += " " + containerName(pod)
	}
	k.event(&schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: name}}, schemas.EventNormal, "Killing", msg)
	go func() {
		defer k.wg.Done()
		defer cancel()
		err := k.stop(sctx, c, grace, why)
		k.mu.Lock()
		if k.stopping[c.ID] == op {
			delete(k.stopping, c.ID)
		}
		k.mu.Unlock()
		if err != nil && sctx.Err() == nil {
			k.log.Warn("stop container", "pod", name, "container", c.ID, "err", err)
			k.q.AddAfter(name, time.Second) // do not spin on a failing stop
			return
		}
		k.q.Add(name)
	}()
}

// event records a Kubernetes-style event about pod from this kubelet.
func (k *Kubelet) event(pod *schemas.Pod, typ, reason, msg string) {
	k.emit([]schemas.ObjectEvent{podEvent(pod, k.cfg.NodeName, typ, reason, msg)})
}

// emit records events about one pod that happened together, in one
// message (bus.Conn.EmitAll).
func (k *Kubelet) emit(evs []schemas.ObjectEvent) {
	if len(evs) == 0 || evs[0].Name == "" {
		return
	}
	k.conn.EmitAll(evs)
}

func podEvent(pod *schemas.Pod, node, typ, reason, msg string) schemas.ObjectEvent {
	return schemas.ObjectEvent{Time: time.Now().UTC(), Type: typ, Reason: reason, Kind: schemas.KindPod, Name: pod.Name,
		Node: node, Component: "kubelet", Message: msg}
}
