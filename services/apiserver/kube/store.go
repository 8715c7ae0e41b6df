package kube

import (
	"context"
	"errors"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/miniku/miniku/schemas"
)

// Object is a stored object (*schemas.Pod, ...).
type Object interface {
	GetMeta() *schemas.ObjectMeta
}

// Store is what the handler needs of the state store, by resource
// ("pods"). Objects returned are shared with caches: the handler never
// modifies them. Errors are bus.ErrNotFound, bus.ErrAlreadyExists and
// bus.ErrConflict (wrapped), an APIStatus error to send as is, ErrExpired
// and ErrTooLarge for watches, or a store failure.
type Store interface {
	Get(ctx context.Context, resource, name string) (Object, error)
	// List returns every object and the revision the list reflects.
	List(ctx context.Context, resource string) ([]Object, uint64, error)
	// Create writes obj if absent and sets its ResourceVersion.
	Create(ctx context.Context, resource string, obj Object) error
	// Update writes obj if the stored revision is its ResourceVersion.
	Update(ctx context.Context, resource string, obj Object) error
	// Delete deletes name (at revision want when not 0; grace for pods,
	// nil: their own), honouring finalizers after policy ("" keeps them)
	// put its own. It returns the object as last written: for a pod being
	// stopped gracefully or an object a finalizer holds, marked with
	// deletionTimestamp and still there.
	Delete(ctx context.Context, resource, name string, want uint64, grace *int64, policy metav1.DeletionPropagation) (Object, error)
	// Bind sets an unbound pod's node (pods/binding), compare-and-swap;
	// a bound pod is a conflict.
	Bind(ctx context.Context, name, node string) (Object, error)
	// Watch starts a feed of the changes after revision from; from 0
	// also returns every current object (the snapshot) and its revision.
	Watch(ctx context.Context, resource string, from uint64) (*Watch, error)
}

// Availability is an optional Store method: a non-nil error (an APIStatus)
// refuses every request for resource before it starts (the store lost
// its quorum).
type Availability interface {
	Available(resource string) error
}

// Watch is a started watch. C is closed when the store drops it (the
// client fell behind, or the cache restarted): the client re-watches
// from the last revision it saw, as client-go does.
type Watch struct {
	Snapshot []Object
	Rev      uint64
	C        <-chan Change
	Stop     func()
}

// Change is one write: Obj nil is a deletion, Prev nil a creation.
type Change struct {
	Rev       uint64
	Name      string
	Obj, Prev Object
}

var (
	// ErrExpired: the revision asked for is older than the history kept
	// (410 Gone; the client lists again).
	ErrExpired = errors.New("resource version too old")
	// ErrTooLarge: the revision asked for is not reached yet.
	ErrTooLarge = errors.New("resource version too large")
)
