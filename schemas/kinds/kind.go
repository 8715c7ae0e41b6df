// Package kinds declares every API kind once: its names, its group,
// version and resource, whether it is namespaced, its per-kind rules
// (defaulting, validation, which fields each writer may set), its table
// columns and its conversion to and from the Kubernetes wire type
// (k8s.io/api). The store, the NATS permissions, the informers, the
// apiserver's generic REST handler, discovery and the CLI read these
// declarations instead of naming kinds by hand, the way Kubernetes'
// pkg/registry strategies feed its generic store.
//
// The package is pure: no I/O, no clock (callers pass now), so every
// writer — apiserver, controller, scheduler, kubelet — can run the same
// rules before it writes.
package kinds

import (
	"fmt"
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Info names a kind as discovery, the REST paths and the store see it.
type Info struct {
	Kind     string // "Pod"
	ListKind string // "PodList"
	// GroupVersion is the served version ("" group is the core API).
	GroupVersion schema.GroupVersion
	Resource     string // "pods"
	Singular     string // "pod"
	ShortNames   []string
	Categories   []string
	Namespaced   bool
	// Verbs as discovery lists them: get, list, watch, create, update,
	// patch, delete, deletecollection.
	Verbs []string
	// Subresources served under <resource>/<name>/<sub>: status, log,
	// exec, binding, eviction, scale.
	Subresources []string
	// Bucket is the KV bucket holding the kind's objects; empty for kinds
	// kept elsewhere (Event lives in the EVENTS stream).
	Bucket string
}

// GVR is the kind's group, version and resource.
func (i *Info) GVR() schema.GroupVersionResource { return i.GroupVersion.WithResource(i.Resource) }

// GVK is the kind's group, version and kind.
func (i *Info) GVK() schema.GroupVersionKind { return i.GroupVersion.WithKind(i.Kind) }

// Kind is the untyped face of a declaration, for the generic layers
// (REST handler, discovery, CLI) that handle every kind alike. Stored
// objects are pointers to the schemas type (*schemas.Pod); wire objects
// are pointers to the k8s.io/api type (*corev1.Pod).
type Kind interface {
	Info() *Info
	// NewStored returns a new empty stored object (*schemas.Pod).
	NewStored() any
	// NewKube returns a new empty wire object (*corev1.Pod), NewKubeList
	// its list (*corev1.PodList).
	NewKube() runtime.Object
	NewKubeList() runtime.Object
	// ToKube converts a stored object to the wire type, status included.
	ToKube(stored any) (runtime.Object, error)
	// FromKube converts a wire object to the stored type. Every field
	// MiniKu does not implement is refused with a field error naming its
	// path (spec.containers[0].livenessProbe: not supported by MiniKu
	// yet), never dropped.
	FromKube(obj runtime.Object) (any, field.ErrorList)
	// PrepareForCreate resets what a creator may not set (status, uid,
	// timestamps) and fills defaults; PrepareForUpdate carries over from
	// old what an update may not change. Both run before Validate.
	PrepareForCreate(stored any, now time.Time)
	PrepareForUpdate(stored, old any)
	// Validate checks a stored object; ValidateUpdate also checks that
	// immutable fields did not change.
	Validate(stored any) field.ErrorList
	ValidateUpdate(stored, old any) field.ErrorList
	// PrepareForStatusUpdate keeps of stored only its status and takes
	// the rest from old (a status write changes nothing else);
	// ValidateStatusUpdate checks the result.
	PrepareForStatusUpdate(stored, old any)
	ValidateStatusUpdate(stored, old any) field.ErrorList
	// Table is the objects as kubectl's columns, every column always
	// (the -o wide ones with Priority 1, which kubectl hides otherwise);
	// ages are counted to now. Rows carry the object in Row.Object; the
	// REST layer trims it to what includeObject asks for.
	Table(objs []runtime.Object, now time.Time) (*metav1.Table, error)
	// Cells is one wire object's row as Table makes it, with the cells
	// that change as time passes left as Ago (to cache per revision).
	Cells(obj runtime.Object) ([]any, error)
}

var registry = map[string]Kind{} // by resource

// Register adds a declaration; it panics on a duplicate resource because
// that is a programming error found at init.
func Register(k Kind) {
	r := k.Info().Resource
	if _, dup := registry[r]; dup {
		panic(fmt.Sprintf("kinds: %s declared twice", r))
	}
	registry[r] = k
}

// ByResource returns the kind served as resource ("pods").
func ByResource(resource string) (Kind, bool) {
	k, ok := registry[resource]
	return k, ok
}

// All returns every declared kind, sorted by group, version, resource.
func All() []Kind {
	out := make([]Kind, 0, len(registry))
	for _, k := range registry {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Info(), out[j].Info()
		if a.GroupVersion.String() != b.GroupVersion.String() {
			return a.GroupVersion.String() < b.GroupVersion.String()
		}
		return a.Resource < b.Resource
	})
	return out
}
