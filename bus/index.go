package bus

import (
	"slices"

	"github.com/miniku/miniku/internal/shrink"
)

// Handler hears an informer's cache change object by object, as
// client-go's ResourceEventHandler does: OnAdd when a key enters the
// cache, OnUpdate when a cached key gets a new version (and at each
// resync, with old and new the same object: a level-triggered handler
// revisits it, an edge-triggered one skips old == new), OnDelete when a
// key leaves it, with the last version the cache held (which may be older
// than the one deleted, when the deletion was seen only as a key missing
// from a fresh snapshot: Kubernetes' DeletedFinalStateUnknown).
//
// Calls are made one at a time, in the order the cache changed, outside
// the cache's lock: a handler may read the cache (Get, List, ByIndex) but
// must not write it (Observe, ObserveDelete), and must not block for long:
// hand work to a queue.
type Handler[P any] interface {
	OnAdd(obj P)
	OnUpdate(old, new P)
	OnDelete(old P)
}

// HandlerFuncs is a Handler made of functions; a nil one is skipped.
type HandlerFuncs[P any] struct {
	Add    func(obj P)
	Update func(old, new P)
	Delete func(old P)
}

func (h HandlerFuncs[P]) OnAdd(obj P) {
	if h.Add != nil {
		h.Add(obj)
	}
}

func (h HandlerFuncs[P]) OnUpdate(old, new P) {
	if h.Update != nil {
		h.Update(old, new)
	}
}

func (h HandlerFuncs[P]) OnDelete(old P) {
	if h.Delete != nil {
		h.Delete(old)
	}
}

// KeyHandler calls fn with the key of every object added, updated or
// deleted: for consumers that queue keys and read the cache when they
// work.
func KeyHandler[T any, P Object[T]](fn func(key string)) Handler[P] {
	return HandlerFuncs[P]{
		Add:    func(obj P) { fn(obj.GetMeta().Name) },
		Update: func(_, obj P) { fn(obj.GetMeta().Name) },
		Delete: func(obj P) { fn(obj.GetMeta().Name) },
	}
}

// IndexFunc gives the values an object is indexed under (none: it is not
// in the index).
type IndexFunc[P any] func(P) []string

// index holds, per value, the objects indexed under it by key. It stores
// the objects themselves so that ByIndex needs no lookup per key.
type index[P any] struct {
	fn   IndexFunc[P]
	m    map[string]map[string]P
	peak shrink.Peak
}

func newIndex[P any](fn IndexFunc[P]) *index[P] {
	return &index[P]{fn: fn, m: map[string]map[string]P{}}
}

func (x *index[P]) add(key string, obj P, values []string) {
	for _, v := range values {
		set := x.m[v]
		if set == nil {
			set = map[string]P{}
			x.m[v] = set
		}
		set[key] = obj
	}
}

func (x *index[P]) remove(key string, values []string) {
	for _, v := range values {
		set := x.m[v]
		delete(set, key)
		if len(set) == 0 {
			delete(x.m, v)
		}
	}
	x.m = shrink.Map(x.m, &x.peak)
}

// update moves key from old's values (had false: it was not cached) to
// obj's.
func (x *index[P]) update(key string, old P, had bool, obj P) {
	now := x.fn(obj)
	if had {
		before := x.fn(old)
		if !slices.Equal(before, now) {
			x.remove(key, before)
		}
	}
	// Also when the values stayed: the set holds the new version.
	x.add(key, obj, now)
}

// values returns the objects indexed under v.
func (x *index[P]) values(v string) []P {
	set := x.m[v]
	if len(set) == 0 {
		return nil
	}
	out := make([]P, 0, len(set))
	for _, o := range set {
		out = append(out, o)
	}
	return out
}
