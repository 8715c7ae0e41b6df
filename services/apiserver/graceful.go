package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/schemas/kinds"
)

// deletePodGracefully is the one pod delete path (DELETE /pods/{name}, and
// drain): it marks the pod Terminating by setting deletionTimestamp and
// deletionGracePeriodSeconds with CAS, and the pod's kubelet stops the
// container within that grace, removes it and deletes the object. A pod
// that no kubelet would ever finish — not bound, or bound to a node that no
// longer exists — and a grace of 0 (kubectl delete --force --grace-period=0)
// delete the object at once; a kubelet then stops any container with the
// pod's own grace period.
//
// Finalizers (after policy put its own, see deleteObject) hold the object:
// a pod deleted at once is then only marked with a grace of 0, and goes
// when the last finalizer is removed; the kubelet of a terminating one
// sets the grace to 0 when its container is gone.
//
// want != 0 is a resourceVersion precondition (409 when stale). grace, when
// not nil, overrides the pod's terminationGracePeriodSeconds; a second
// delete may shorten the grace of a Terminating pod but never lengthen it.
// It returns the pod as written (carrying deletionTimestamp) or, when
// deleted at once, as it was last.
func (s *Server) deletePodGracefully(ctx context.Context, name string, want uint64, grace *int64, policy metav1.DeletionPropagation) (*schemas.Pod, error) {
	for attempt := 0; ; attempt++ {
		p, err := getObject(ctx, s.conn.Pods, kindPod, name)
		if errors.Is(err, bus.ErrMalformed) {
			// Not a pod any kubelet could be running: remove the key.
			return nil, deleteMalformed(ctx, s.conn.Pods, kindPod, name)
		}
		if err != nil {
			return nil, err
		}
		if want != 0 && p.ResourceVersion != want {
			return nil, modified(kindPod, name, p.ResourceVersion, want)
		}
		g := int64(p.DeletionGrace().Seconds())
		if grace != nil && (p.DeletionTimestamp == nil || *grace < g) {
			g = *grace
		}
		now, err := s.deleteAtOnce(ctx, p, g)
		if err != nil {
			return nil, err
		}
		fins := kinds.DeletionFinalizers(p.Finalizers, policy)
		if now && len(fins) == 0 {
			err = s.conn.Pods.Delete(ctx, name, p.ResourceVersion)
			if err == nil {
				s.log.Info("pod deleted", "pod", name, "node", p.NodeName, "resourceVersion", p.ResourceVersion)
				// Node lets kubelets that subscribe to all deletions skip other nodes' pods.
				s.publish(bus.SubjPodDeleted, schemas.Event{Type: "deleted", Kind: schemas.KindPod, Name: name, Node: p.NodeName, Revision: p.ResourceVersion})
				return p, nil
			}
		} else {
			if now {
				g = 0 // nothing to wait for but the finalizers
			}
			marked := p.DeepCopy()
			changed := kinds.MarkDeleting(&marked.ObjectMeta, s.now(), g)
			if !kinds.SameFinalizers(fins, marked.Finalizers) {
				marked.Finalizers, changed = fins, true
			}
			if !changed {
				return p, nil // already Terminating with this grace or a shorter one
			}
			err = s.conn.Pods.Update(ctx, marked)
			if err == nil {
				s.log.Info("pod terminating", "pod", name, "node", p.NodeName, "grace", *marked.DeletionGracePeriodSeconds,
					"finalizers", marked.Finalizers, "resourceVersion", marked.ResourceVersion)
				return marked, nil
			}
		}
		if !errors.Is(err, bus.ErrConflict) || attempt >= maxDeleteAttempts {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("delete pod %s: %w", name, ctx.Err())
		}
		// Changed meanwhile (often the kubelet reporting status): a
		// precondition is re-checked by the next read.
	}
}

// deleteAtOnce says whether p is deleted without waiting for a kubelet.
func (s *Server) deleteAtOnce(ctx context.Context, p *schemas.Pod, grace int64) (bool, error) {
	if grace == 0 || p.NodeName == "" {
		return true, nil
	}
	_, err := s.conn.Nodes.Get(ctx, p.NodeName)
	if errors.Is(err, bus.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return false, nil
}

// parseGracePeriod reads ?gracePeriodSeconds=N (nil when absent).
func parseGracePeriod(q url.Values) (*int64, error) {
	if !q.Has("gracePeriodSeconds") {
		return nil, nil
	}
	v, err := strconv.ParseInt(q.Get("gracePeriodSeconds"), 10, 64)
	if err != nil || v < 0 || v > schemas.MaxGracePeriodSeconds {
		return nil, badRequest("gracePeriodSeconds: must be an integer between 0 and %d, got %q", schemas.MaxGracePeriodSeconds, q.Get("gracePeriodSeconds"))
	}
	return &v, nil
}
