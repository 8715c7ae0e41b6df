package kube

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/miniku/miniku/schemas/kinds"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// wireCache keeps, per object and revision, what the Kubernetes API
// sends of it: its JSON (lists, watches, a Table's includeObject=Object),
// its table row with the ages still to fill in, and the
// PartialObjectMetadata JSON a Table row carries by default. Converting
// and encoding a pod to its wire form is ~40 µs: without this a list of
// 10,000 pods, or one change sent to 100 watchers, does that each time.
// An entry is used only at its object's revision; it goes when the
// object is deleted (Forget), when a full list no longer has it, or when
// the cache reaches maxCached and starts over.
type wireCache struct {
	mu sync.Mutex
	m  map[string]wireEntry
}

// wireEntry's fields are filled as they are asked for; each is immutable
// once set (readers use them outside the lock).
type wireEntry struct {
	rev  uint64
	json []byte
	row  *encodedRow
	meta []byte
}

// maxCached bounds a kind's cache; past it the cache starts over (the
// next list fills it again).
const maxCached = 50000

// cacheKey is what an object is cached under: its store key.
func cacheKey(obj Object) string { return obj.GetMeta().Name }

func (c *wireCache) entry(obj Object) wireEntry {
	m := obj.GetMeta()
	c.mu.Lock()
	e, ok := c.m[cacheKey(obj)]
	c.mu.Unlock()
	if !ok || e.rev != m.ResourceVersion {
		return wireEntry{rev: m.ResourceVersion}
	}
	return e
}

// put stores what e has, merged with what the entry at the same revision
// already holds.
func (c *wireCache) put(obj Object, e wireEntry) {
	key := cacheKey(obj)
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[key]; ok && old.rev == e.rev {
		if e.json == nil {
			e.json = old.json
		}
		if e.row == nil {
			e.row = old.row
		}
		if e.meta == nil {
			e.meta = old.meta
		}
	} else if !ok && len(c.m) >= maxCached {
		c.m = map[string]wireEntry{}
	}
	c.m[key] = e
}

func (c *wireCache) forget(key string) {
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
}

// keepOnly drops the entries of objects not in keys (a full list: what
// is not in it was deleted).
func (c *wireCache) keepOnly(keys map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) <= len(keys) {
		return
	}
	m := make(map[string]wireEntry, len(keys))
	for k, e := range c.m {
		if keys[k] {
			m[k] = e
		}
	}
	c.m = m
}

func (h *Handler) wire(resource string) *wireCache {
	h.cacheMu.Lock()
	defer h.cacheMu.Unlock()
	c, ok := h.caches[resource]
	if !ok {
		c = &wireCache{m: map[string]wireEntry{}}
		h.caches[resource] = c
	}
	return c
}

// Forget drops what is cached of resource's object key (its store key):
// the apiserver calls it when an object is deleted, whoever deleted it.
func (h *Handler) Forget(resource, key string) {
	h.wire(resource).forget(key)
}

// objectJSON is obj's wire JSON, from the cache at its revision.
func (h *Handler) objectJSON(q *request, obj Object) ([]byte, error) {
	c := h.wire(q.info.Resource)
	e := c.entry(obj)
	if e.json != nil {
		return e.json, nil
	}
	k, err := h.toKube(q, obj)
	if err != nil {
		return nil, err
	}
	if e.json, err = json.Marshal(k); err != nil {
		return nil, fmt.Errorf("encode %s %s: %w", q.info.Kind, obj.GetMeta().Name, err)
	}
	c.put(obj, wireEntry{rev: e.rev, json: e.json})
	return e.json, nil
}

// encodedRow is a table row's cells as JSON, cut where a cell changes
// as time passes: segs[i], ago[i], segs[i+1], ... (len(segs) is
// len(ago)+1).
type encodedRow struct {
	segs [][]byte
	ago  []kinds.Ago
}

func encodeRow(cells []any) (*encodedRow, error) {
	r := &encodedRow{}
	var cur []byte
	for i, c := range cells {
		if i > 0 {
			cur = append(cur, ',')
		}
		if a, ok := c.(kinds.Ago); ok {
			r.segs, r.ago = append(r.segs, cur), append(r.ago, a)
			cur = nil
			continue
		}
		data, err := json.Marshal(c)
		if err != nil {
			return nil, fmt.Errorf("encode table cell %d: %w", i, err)
		}
		cur = append(cur, data...)
	}
	r.segs = append(r.segs, cur)
	return r, nil
}

// appendTo appends the cells as read at now.
func (r *encodedRow) appendTo(buf []byte, now time.Time) ([]byte, error) {
	for i, seg := range r.segs {
		buf = append(buf, seg...)
		if i < len(r.ago) {
			data, err := json.Marshal(r.ago[i].At(now))
			if err != nil {
				return nil, err
			}
			buf = append(buf, data...)
		}
	}
	return buf, nil
}

// tableParts is what a Table row of obj needs from the cache: the
// encoded cells and the row's object (nil for includeObject=None).
func (h *Handler) tableParts(q *request, obj Object, include metav1.IncludeObjectPolicy) (*encodedRow, []byte, error) {
	c := h.wire(q.info.Resource)
	e := c.entry(obj)
	fresh := wireEntry{rev: e.rev}
	var k runtime.Object
	kube := func() (runtime.Object, error) {
		var err error
		if k == nil {
			k, err = h.toKube(q, obj)
		}
		return k, err
	}
	if e.row == nil {
		k, err := kube()
		if err != nil {
			return nil, nil, err
		}
		cells, err := q.kind.Cells(k)
		if err != nil {
			return nil, nil, err
		}
		if e.row, err = encodeRow(cells); err != nil {
			return nil, nil, fmt.Errorf("%s %s: %w", q.info.Kind, obj.GetMeta().Name, err)
		}
		fresh.row = e.row
	}
	var object []byte
	switch include {
	case metav1.IncludeNone:
	case metav1.IncludeMetadata:
		if e.meta == nil {
			k, err := kube()
			if err != nil {
				return nil, nil, err
			}
			if e.meta, err = partialMetadata(k); err != nil {
				return nil, nil, err
			}
			fresh.meta = e.meta
		}
		object = e.meta
	default:
		if e.json == nil {
			k, err := kube()
			if err != nil {
				return nil, nil, err
			}
			if e.json, err = json.Marshal(k); err != nil {
				return nil, nil, err
			}
			fresh.json = e.json
		}
		object = e.json
	}
	if fresh.row != nil || fresh.meta != nil || fresh.json != nil {
		c.put(obj, fresh)
	}
	return e.row, object, nil
}

// partialMetadata is obj's PartialObjectMetadata JSON, the object a
// Table row carries by default (as kube-apiserver sends).
func partialMetadata(obj runtime.Object) ([]byte, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	pm := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{Kind: "PartialObjectMetadata", APIVersion: "meta.k8s.io/v1"}}
	if om, ok := m.(*metav1.ObjectMeta); ok {
		pm.ObjectMeta = *om
	} else {
		pm.Name, pm.Namespace, pm.ResourceVersion, pm.UID = m.GetName(), m.GetNamespace(), m.GetResourceVersion(), m.GetUID()
		pm.Labels, pm.Annotations, pm.CreationTimestamp = m.GetLabels(), m.GetAnnotations(), m.GetCreationTimestamp()
		pm.DeletionTimestamp = m.GetDeletionTimestamp()
	}
	return json.Marshal(pm)
}
