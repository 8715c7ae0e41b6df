package garbagecollector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/schemas/kinds"
)

// kindStore is one kind the collector sees: its cached objects, and the
// writes its actions make, compare-and-swap through the kind's strategy.
type kindStore interface {
	resource() string
	// owns says ownerReferences with apiVersion and kind name this kind.
	owns(apiVersion, kind string) bool
	objects() []Object
	join(ctx context.Context, fn func(string)) (remove func(), err error)
	waitSynced(ctx context.Context) error
	// exists reads name live: whether an object with uid is stored.
	exists(ctx context.Context, name, uid string) (bool, error)
	apply(ctx context.Context, a Action, now time.Time) error
}

type store[T any, P bus.Object[T]] struct {
	kind kinds.Kind
	b    *bus.Bucket[T, P]
	inf  *bus.Informer[T, P]
	// owners are an object's ownerReferences, unown drops those to uid
	// (a pod's replicaset is kept apart from its ownerReferences).
	owners func(P) []schemas.OwnerReference
	unown  func(P, string)
	// deleteAt says a Background delete of obj may remove it at once
	// (true) or must mark it with the grace returned (a bound pod its
	// kubelet stops).
	deleteAt func(ctx context.Context, obj P) (now bool, grace int64, err error)
}

func newStore[T any, P bus.Object[T]](resource string, b *bus.Bucket[T, P], inf *bus.Informer[T, P]) *store[T, P] {
	k, ok := kinds.ByResource(resource)
	if !ok {
		panic("garbagecollector: no kind " + resource)
	}
	return &store[T, P]{kind: k, b: b, inf: inf,
		owners: func(p P) []schemas.OwnerReference { return p.GetMeta().OwnerReferences },
		unown: func(p P, uid string) {
			m := p.GetMeta()
			m.OwnerReferences = slices.DeleteFunc(m.OwnerReferences, func(r schemas.OwnerReference) bool { return r.UID == uid })
			if len(m.OwnerReferences) == 0 {
				m.OwnerReferences = nil
			}
		},
		deleteAt: func(context.Context, P) (bool, int64, error) { return true, 0, nil },
	}
}

func (s *store[T, P]) resource() string { return s.kind.Info().Resource }

func (s *store[T, P]) owns(apiVersion, kind string) bool {
	i := s.kind.Info()
	return kind == i.Kind && apiVersion == i.GroupVersion.String()
}

func (s *store[T, P]) objects() []Object {
	list := s.inf.List()
	out := make([]Object, 0, len(list))
	for _, p := range list {
		m := p.GetMeta()
		out = append(out, Object{Resource: s.resource(), Name: m.Name, UID: m.UID, Owners: s.owners(p),
			Finalizers: m.Finalizers, Deleting: m.DeletionTimestamp != nil, Removable: kinds.ReadyToRemove(m)})
	}
	return out
}

func (s *store[T, P]) join(ctx context.Context, fn func(string)) (func(), error) {
	return s.inf.JoinEventHandler(ctx, bus.KeyHandler[T, P](fn))
}

func (s *store[T, P]) waitSynced(ctx context.Context) error { return s.inf.WaitSynced(ctx) }

func (s *store[T, P]) exists(ctx context.Context, name, uid string) (bool, error) {
	p, err := s.b.Get(ctx, name)
	if errors.Is(err, bus.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return p.GetMeta().UID == uid, nil
}

// errSkip ends a write whose target changed since the decision: the next
// pass decides again on what it then is.
var errSkip = errors.New("changed since the decision")

// update rewrites name (if still uid) with change, compare-and-swap, as
// any writer's update: the kind's PrepareForUpdate and ValidateUpdate,
// then mark (a delete's marking, which an update may not make) if set.
// change returning false means nothing to do.
func (s *store[T, P]) update(ctx context.Context, name, uid string, change func(P) bool, mark func(P) bool) (P, error) {
	return s.b.Mutate(ctx, name, func(cur P) error {
		if cur.GetMeta().UID != uid {
			return errSkip
		}
		old := P(cur.DeepCopy())
		changed := change(cur)
		s.kind.PrepareForUpdate(cur, old)
		if mark != nil && mark(cur) {
			changed = true
		}
		if !changed {
			return errSkip
		}
		if errs := s.kind.ValidateUpdate(cur, old); len(errs) > 0 {
			return fmt.Errorf("%s %s: %w", s.resource(), name, errs.ToAggregate())
		}
		return nil
	})
}

// removeIfDone removes p, just written, if nothing holds it any more.
func (s *store[T, P]) removeIfDone(ctx context.Context, p P) error {
	m := p.GetMeta()
	if !kinds.ReadyToRemove(m) {
		return nil
	}
	err := s.b.Delete(ctx, m.Name, m.ResourceVersion)
	if errors.Is(err, bus.ErrConflict) || errors.Is(err, bus.ErrNotFound) {
		return nil // written meanwhile: the next pass looks again
	}
	return err
}

func (s *store[T, P]) apply(ctx context.Context, a Action, now time.Time) error {
	var p P
	var err error
	switch a.Verb {
	case Remove:
		cur, gerr := s.b.Get(ctx, a.Name)
		if gerr != nil {
			return gerr
		}
		if cur.GetMeta().UID != a.UID {
			return errSkip
		}
		return s.removeIfDone(ctx, cur)
	case Finish:
		p, err = s.update(ctx, a.Name, a.UID, func(cur P) bool {
			m := cur.GetMeta()
			n := len(m.Finalizers)
			m.Finalizers = slices.DeleteFunc(slices.Clone(m.Finalizers), func(f string) bool { return f == a.Finalizer })
			if len(m.Finalizers) == 0 {
				m.Finalizers = nil
			}
			return len(m.Finalizers) != n
		}, nil)
	case Unown:
		p, err = s.update(ctx, a.Name, a.UID, func(cur P) bool {
			before := len(s.owners(cur))
			s.unown(cur, a.OwnerUID)
			return len(s.owners(cur)) != before
		}, nil)
	case Delete:
		return s.delete(ctx, a, now)
	default:
		return fmt.Errorf("unknown action %q", a.Verb)
	}
	if err != nil {
		return err
	}
	return s.removeIfDone(ctx, p)
}

// delete is a Background delete of the target: removed at once unless a
// finalizer holds it or, for a bound pod, its kubelet must stop it first
// (marked with the pod's own grace).
func (s *store[T, P]) delete(ctx context.Context, a Action, now time.Time) error {
	for attempt := 0; ; attempt++ {
		cur, err := s.b.Get(ctx, a.Name)
		if err != nil {
			return err
		}
		m := cur.GetMeta()
		if m.UID != a.UID || m.DeletionTimestamp != nil {
			return errSkip
		}
		atOnce, grace, err := s.deleteAt(ctx, cur)
		if err != nil {
			return err
		}
		if atOnce && len(m.Finalizers) == 0 {
			err = s.b.Delete(ctx, a.Name, m.ResourceVersion)
		} else {
			marked := P(cur.DeepCopy())
			kinds.MarkDeleting(marked.GetMeta(), now, grace)
			err = s.b.Update(ctx, marked)
		}
		if !errors.Is(err, bus.ErrConflict) || attempt >= 10 {
			return err
		}
	}
}

// podStore is the pods' store: a pod's replicaset is its owner and
// ownerUid, and deleting a bound pod is its kubelet's to finish.
func podStore(conn *bus.Conn, inf *bus.Informer[schemas.Pod, *schemas.Pod]) *store[schemas.Pod, *schemas.Pod] {
	s := newStore("pods", conn.Pods, inf)
	s.owners = func(p *schemas.Pod) []schemas.OwnerReference {
		if p.Owner == "" {
			return p.OwnerReferences
		}
		return append([]schemas.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: p.Owner, UID: p.OwnerUID,
			Controller: true, BlockOwnerDeletion: true}}, p.OwnerReferences...)
	}
	unownRefs := s.unown
	s.unown = func(p *schemas.Pod, uid string) {
		if p.Owner != "" && p.OwnerUID == uid {
			p.Owner, p.OwnerUID = "", ""
		}
		unownRefs(p, uid)
	}
	s.deleteAt = func(ctx context.Context, p *schemas.Pod) (bool, int64, error) {
		if p.NodeName == "" {
			return true, 0, nil
		}
		if _, err := conn.Nodes.Get(ctx, p.NodeName); errors.Is(err, bus.ErrNotFound) {
			return true, 0, nil // no kubelet would ever finish it
		} else if err != nil {
			return false, 0, err
		}
		return false, int64(p.GracePeriod().Seconds()), nil
	}
	return s
}
