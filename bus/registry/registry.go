// Package registry is the one way to write an object of a declared kind:
// every write runs the kind's rules (schemas/kinds) before its
// compare-and-swap, the way Kubernetes' generic registry runs a
// strategy in front of etcd. The writes are typed as Kubernetes has them
// — create, update, status update, pods/binding, replicasets/scale,
// graceful delete — so a controller, the scheduler or a kubelet can no
// longer write what the API would refuse.
//
// Components declare the few methods they call as their own interfaces;
// *Store and *Pods satisfy them.
package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/schemas/kinds"
)

// InvalidError is a write the kind's rules refused: the field errors the
// Kubernetes API returns for the same write (422 Invalid).
type InvalidError struct {
	Kind, Name string
	Errs       field.ErrorList
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("%s %q is invalid: %v", e.Kind, e.Name, e.Errs.ToAggregate())
}

// Invalid is what the apiserver makes its 422 metav1.Status of.
func (e *InvalidError) Invalid() (kind, name string, errs field.ErrorList) {
	return e.Kind, e.Name, e.Errs
}

// Unwrap makes errors.Is(err, bus.ErrInvalid) hold.
func (e *InvalidError) Unwrap() error { return bus.ErrInvalid }

// Store writes one kind's objects through its rules.
type Store[T any, P bus.Object[T], K runtime.Object] struct {
	b   *bus.Bucket[T, P]
	def *kinds.Def[P, K]
	now func() time.Time
}

// New is the store of def's objects in b; now stamps creations and
// deletions (time.Now when nil).
func New[T any, P bus.Object[T], K runtime.Object](b *bus.Bucket[T, P], def *kinds.Def[P, K], now func() time.Time) *Store[T, P, K] {
	if now == nil {
		now = time.Now
	}
	return &Store[T, P, K]{b: b, def: def, now: now}
}

// Bucket is the store's bucket, for reads.
func (s *Store[T, P, K]) Bucket() *bus.Bucket[T, P] { return s.b }

func (s *Store[T, P, K]) invalid(obj P, errs field.ErrorList) error {
	return &InvalidError{Kind: s.def.Meta.Kind, Name: obj.GetMeta().Name, Errs: errs}
}

// Create prepares obj as a new object (identity, status reset), validates
// it and creates it; bus.ErrAlreadyExists if the name is taken.
func (s *Store[T, P, K]) Create(ctx context.Context, obj P) error {
	if s.def.Create != nil {
		s.def.Create(obj, s.now())
	}
	if s.def.Check != nil {
		if errs := s.def.Check(obj); len(errs) > 0 {
			return s.invalid(obj, errs)
		}
	}
	return s.b.Create(ctx, obj)
}

// Update is bus.Bucket.Mutate through the update rules: fn changes a copy
// of the current object; what an update may not change (identity, status,
// deletion) is carried over from the current one, and a change the kind
// forbids is an *InvalidError.
func (s *Store[T, P, K]) Update(ctx context.Context, name string, fn func(P) error) (P, error) {
	return s.b.Mutate(ctx, name, s.updateFn(fn))
}

// UpdateFrom is Update starting from cached (bus.Bucket.MutateFrom).
func (s *Store[T, P, K]) UpdateFrom(ctx context.Context, cached P, fn func(P) error) (P, error) {
	return s.b.MutateFrom(ctx, cached, s.updateFn(fn))
}

func (s *Store[T, P, K]) updateFn(fn func(P) error) func(P) error {
	return func(cur P) error {
		old := P(cur.DeepCopy())
		if err := fn(cur); err != nil {
			return err
		}
		if s.def.Update != nil {
			s.def.Update(cur, old)
		}
		var errs field.ErrorList
		switch {
		case s.def.CheckUpdate != nil:
			errs = s.def.CheckUpdate(cur, old)
		case s.def.Check != nil:
			errs = s.def.Check(cur)
		}
		if len(errs) > 0 {
			return s.invalid(cur, errs)
		}
		return nil
	}
}

// UpdateStatus is Update for the status subresource: of what fn changes
// only the status is kept (the rest is reset to the current object's, as
// Kubernetes' status strategies do), then the kind's status rules check it.
func (s *Store[T, P, K]) UpdateStatus(ctx context.Context, name string, fn func(P) error) (P, error) {
	return s.b.Mutate(ctx, name, s.statusFn(fn))
}

// UpdateStatusFrom is UpdateStatus starting from cached.
func (s *Store[T, P, K]) UpdateStatusFrom(ctx context.Context, cached P, fn func(P) error) (P, error) {
	return s.b.MutateFrom(ctx, cached, s.statusFn(fn))
}

func (s *Store[T, P, K]) statusFn(fn func(P) error) func(P) error {
	return func(cur P) error {
		if s.def.Status == nil {
			return fmt.Errorf("%s has no status subresource", s.def.Meta.Resource)
		}
		next := P(cur.DeepCopy())
		if err := fn(next); err != nil {
			return err
		}
		if err := s.status(next, cur); err != nil {
			return err
		}
		*cur = *next
		return nil
	}
}

// status makes obj old with obj's status and checks it.
func (s *Store[T, P, K]) status(obj, old P) error {
	s.def.Status(obj, old)
	if s.def.CheckStatus != nil {
		if errs := s.def.CheckStatus(obj, old); len(errs) > 0 {
			return s.invalid(obj, errs)
		}
	}
	return nil
}

// WriteStatus writes obj's status over old with one compare-and-swap at
// old's revision: the node API's write, where the kubelet retries on a
// conflict. old (a cache's) is not modified; obj becomes the object as
// written.
func (s *Store[T, P, K]) WriteStatus(ctx context.Context, obj, old P) error {
	if s.def.Status == nil {
		return fmt.Errorf("%s has no status subresource", s.def.Meta.Resource)
	}
	obj.GetMeta().ResourceVersion = old.GetMeta().ResourceVersion
	if err := s.status(obj, old); err != nil {
		return err
	}
	return s.b.Update(ctx, obj)
}

// MarkDeleting is the graceful delete's write: the current object marked
// as being deleted with grace seconds left (kinds.MarkDeleting), nothing
// else changed. decide sees the current object (not to be modified) and
// returns its grace, or bus.ErrNoChange to leave it.
func (s *Store[T, P, K]) MarkDeleting(ctx context.Context, name string, decide func(P) (int64, error)) (P, error) {
	return s.b.Mutate(ctx, name, func(cur P) error {
		grace, err := decide(cur)
		if err != nil {
			return err
		}
		if !kinds.MarkDeleting(cur.GetMeta(), s.now(), grace) {
			return bus.ErrNoChange
		}
		return nil
	})
}

// Pods is the pod store with pods/binding.
type Pods struct {
	*Store[schemas.Pod, *schemas.Pod, *corev1.Pod]
}

// Bind is pods/binding: it sets the node of the pod cached names, if it is
// still that pod (its uid), unbound and not terminating. A bound or
// terminating pod is a bus.ErrConflict, as kube-apiserver answers 409; a
// gone one bus.ErrNotFound.
func (p *Pods) Bind(ctx context.Context, cached *schemas.Pod, node string) (*schemas.Pod, error) {
	uid := cached.UID
	return p.b.MutateFrom(ctx, cached, func(cur *schemas.Pod) error {
		if uid != "" && cur.UID != uid {
			return fmt.Errorf("bind pod %s: uid %s is gone (the pod is %s now): %w", cur.Name, uid, cur.UID, bus.ErrNotFound)
		}
		errs, conflict := kinds.BindPod(cur, node)
		if conflict != nil {
			return conflictError{conflict}
		}
		if len(errs) > 0 {
			return &InvalidError{Kind: "Binding", Name: cur.Name, Errs: errs}
		}
		return nil
	})
}

// conflictError is a rule's conflict (a bound pod), with the rule's
// message as kube-apiserver words it.
type conflictError struct{ err error }

func (e conflictError) Error() string   { return e.err.Error() }
func (e conflictError) Unwrap() []error { return []error{e.err, bus.ErrConflict} }

// ReplicaSets is the replicaset store with replicasets/scale.
type ReplicaSets struct {
	*Store[schemas.ReplicaSet, *schemas.ReplicaSet, *appsv1.ReplicaSet]
}

// Scale sets the desired count of replicaset name: an update of
// spec.replicas only, through the update rules.
func (r *ReplicaSets) Scale(ctx context.Context, name string, replicas int) (*schemas.ReplicaSet, error) {
	return r.Update(ctx, name, func(rs *schemas.ReplicaSet) error {
		if rs.DesiredCount == replicas {
			return bus.ErrNoChange
		}
		rs.DesiredCount = replicas
		return nil
	})
}

// Registry holds the stores of a connection's kinds.
type Registry struct {
	Pods            *Pods
	ReplicaSets     *ReplicaSets
	Nodes           *Store[schemas.Node, *schemas.Node, *corev1.Node]
	ServiceAccounts *Store[schemas.ServiceAccount, *schemas.ServiceAccount, *corev1.ServiceAccount]
}

// For is the registry over c's buckets (those c opened; the others' stores
// are nil), with now as the clock (time.Now when nil).
func For(c *bus.Conn, now func() time.Time) *Registry {
	r := &Registry{}
	if c.Pods != nil {
		r.Pods = &Pods{New(c.Pods, kinds.Pod, now)}
	}
	if c.ReplicaSets != nil {
		r.ReplicaSets = &ReplicaSets{New(c.ReplicaSets, kinds.ReplicaSet, now)}
	}
	if c.Nodes != nil {
		r.Nodes = New(c.Nodes, kinds.Node, now)
	}
	if c.ServiceAccounts != nil {
		r.ServiceAccounts = New(c.ServiceAccounts, kinds.ServiceAccount, now)
	}
	return r
}

// IsInvalid reports whether err is a refusal by the kind's rules, and its
// field errors.
func IsInvalid(err error) (field.ErrorList, bool) {
	var ie *InvalidError
	if errors.As(err, &ie) {
		return ie.Errs, true
	}
	return nil, false
}
