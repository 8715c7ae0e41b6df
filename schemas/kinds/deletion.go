package kinds

import (
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/miniku/miniku/schemas"
)

// The finalizers a delete's propagationPolicy puts on the object, which
// the garbage collector removes once it has done what they ask: orphan
// (drop the dependents' ownerReferences) and foregroundDeletion (delete
// the dependents first).
const (
	FinalizerOrphan     = metav1.FinalizerOrphanDependents
	FinalizerForeground = metav1.FinalizerDeleteDependents
)

// DeletionFinalizers are fins after a delete with policy, as
// kube-apiserver's deletionFinalizersForGarbageCollection: Orphan and
// Foreground put their finalizer in place of the other, Background
// removes both, and no policy leaves them as they are (the default,
// Background, for every kind MiniKu serves).
func DeletionFinalizers(fins []string, policy metav1.DeletionPropagation) []string {
	var add string
	switch policy {
	case metav1.DeletePropagationOrphan:
		add = FinalizerOrphan
	case metav1.DeletePropagationForeground:
		add = FinalizerForeground
	case metav1.DeletePropagationBackground:
	default:
		return fins
	}
	out := make([]string, 0, len(fins)+1)
	for _, f := range fins {
		if f != FinalizerOrphan && f != FinalizerForeground {
			out = append(out, f)
		}
	}
	if add != "" {
		out = append(out, add)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// MarkDeleting marks m as being deleted at now, with grace seconds left
// (0 for every kind but a running pod): the first delete sets the
// timestamp; a later one may shorten the grace, never lengthen it. It
// reports whether m changed.
func MarkDeleting(m *schemas.ObjectMeta, now time.Time, grace int64) bool {
	changed := false
	if m.DeletionTimestamp == nil {
		t := now.UTC()
		m.DeletionTimestamp = &t
		changed = true
	}
	if m.DeletionGracePeriodSeconds == nil || grace < *m.DeletionGracePeriodSeconds {
		m.DeletionGracePeriodSeconds = &grace
		changed = true
	}
	return changed
}

// ReadyToRemove says a marked object may go now: no finalizer holds it
// and no grace is left (a pod's kubelet sets 0 once its container is
// stopped). A grace not written is not 0: a pod marked before the grace
// was kept is its kubelet's to finish.
func ReadyToRemove(m *schemas.ObjectMeta) bool {
	return m.DeletionTimestamp != nil && len(m.Finalizers) == 0 &&
		m.DeletionGracePeriodSeconds != nil && *m.DeletionGracePeriodSeconds == 0
}

// SameFinalizers says a and b hold the same finalizers in the same order.
func SameFinalizers(a, b []string) bool { return slices.Equal(a, b) }
