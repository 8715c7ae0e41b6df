package kube

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// selectableFields are the field selectors served, for every kind (a
// field a kind lacks is empty, as kube-apiserver's are).
var selectableFields = map[string][]string{
	"metadata.name":      {"metadata", "name"},
	"metadata.namespace": {"metadata", "namespace"},
	"spec.nodeName":      {"spec", "nodeName"},
	"status.phase":       {"status", "phase"},
	// Events' (kubectl describe lists an object's events by these).
	"involvedObject.kind":       {"involvedObject", "kind"},
	"involvedObject.name":       {"involvedObject", "name"},
	"involvedObject.namespace":  {"involvedObject", "namespace"},
	"involvedObject.uid":        {"involvedObject", "uid"},
	"involvedObject.apiVersion": {"involvedObject", "apiVersion"},
	"involvedObject.fieldPath":  {"involvedObject", "fieldPath"},
	"reason":                    {"reason"},
	"type":                      {"type"},
	"source":                    {"source", "component"},
}

// unrecordedFields match any value when the object does not record
// them: MiniKu's events name their object but do not keep its uid, and
// kubectl describe asks for the uid of the object it shows.
var unrecordedFields = map[string]bool{"involvedObject.uid": true}

// selectors are a list's or watch's label and field selectors.
type selectors struct {
	label labels.Selector
	field fields.Selector
}

func parseSelectors(r *http.Request) (*selectors, error) {
	qv := r.URL.Query()
	s := &selectors{label: labels.Everything(), field: fields.Everything()}
	var err error
	if v := qv.Get("labelSelector"); v != "" {
		if s.label, err = labels.Parse(v); err != nil {
			return nil, badRequest("unable to parse requirement: %v", err)
		}
	}
	if v := qv.Get("fieldSelector"); v != "" {
		if s.field, err = fields.ParseSelector(v); err != nil {
			return nil, badRequest("invalid field selector: %v", err)
		}
		for _, req := range s.field.Requirements() {
			if _, ok := selectableFields[req.Field]; !ok {
				return nil, badRequest("field label not supported: %s", req.Field)
			}
		}
	}
	return s, nil
}

// matches checks a stored object (labels) and, when a field selector is
// set, its wire form.
func (s *selectors) matches(h *Handler, q *request, obj Object) (bool, error) {
	if !s.label.Empty() && !s.label.Matches(labels.Set(obj.GetMeta().Labels)) {
		return false, nil
	}
	if s.field.Empty() {
		return true, nil
	}
	k, err := h.toKube(q, obj)
	if err != nil {
		return false, err
	}
	m, err := toMap(k)
	if err != nil {
		return false, err
	}
	set := fields.Set{}
	for name, path := range selectableFields {
		var cur any = m
		for _, p := range path {
			mm, _ := cur.(map[string]any)
			cur = mm[p]
		}
		if v, ok := cur.(string); ok {
			set[name] = v
		} else {
			set[name] = ""
		}
		if set[name] == "" && unrecordedFields[name] {
			if v, ok := s.field.RequiresExactMatch(name); ok {
				set[name] = v
			}
		}
	}
	return s.field.Matches(set), nil
}

type item struct {
	obj Object
}

// selected is the objects a list asks for, sorted by name, and the
// revision the list reflects.
func (h *Handler) selected(ctx context.Context, r *http.Request, q *request) ([]item, uint64, error) {
	sel, err := parseSelectors(r)
	if err != nil {
		return nil, 0, err
	}
	if err := h.checkNamespace(ctx, q); err != nil {
		return nil, 0, err
	}
	objs, rev, err := h.cfg.Store.List(ctx, q.info.Resource)
	if err != nil {
		return nil, 0, err
	}
	if q.elsewhere() {
		objs = nil
	}
	out := make([]item, 0, len(objs))
	for _, o := range objs {
		ok, err := sel.matches(h, q, o)
		if err != nil {
			return nil, 0, err
		}
		if ok {
			out = append(out, item{obj: o})
		}
	}
	slices.SortFunc(out, func(a, b item) int { return strings.Compare(a.obj.GetMeta().Name, b.obj.GetMeta().Name) })
	return out, rev, nil
}

// continueToken is the opaque ?continue: the list's revision and the
// last name sent.
type continueToken struct {
	Rev   uint64 `json:"rv"`
	After string `json:"after"`
}

func parseContinue(s string) (*continueToken, error) {
	data, err := base64.RawURLEncoding.DecodeString(s)
	var t continueToken
	if err == nil {
		err = json.Unmarshal(data, &t)
	}
	if err != nil || t.After == "" {
		return nil, badRequest("continue: not a token this server gave")
	}
	return &t, nil
}

func (t continueToken) String() string {
	data, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(data)
}

func (h *Handler) list(ctx context.Context, w http.ResponseWriter, r *http.Request, q *request) error {
	qv := r.URL.Query()
	items, rev, err := h.selected(ctx, r, q)
	if err != nil {
		return err
	}
	if v := qv.Get("continue"); v != "" {
		t, err := parseContinue(v)
		if err != nil {
			return err
		}
		i, _ := slices.BinarySearchFunc(items, t.After, func(it item, name string) int { return strings.Compare(it.obj.GetMeta().Name, name) })
		for i < len(items) && items[i].obj.GetMeta().Name <= t.After {
			i++
		}
		items = items[i:]
	}
	var next string
	var remaining *int64
	if v := qv.Get("limit"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return badRequest("limit: %q is not a non-negative integer", v)
		}
		if n > 0 && int64(len(items)) > n {
			left := int64(len(items)) - n
			remaining = &left
			items = items[:n]
			next = continueToken{Rev: rev, After: items[n-1].obj.GetMeta().Name}.String()
		}
	}
	rv := strconv.FormatUint(rev, 10)
	if wantsTable(r) {
		objs := make([]runtime.Object, len(items))
		for i, it := range items {
			if objs[i], err = h.toKube(q, it.obj); err != nil {
				return err
			}
		}
		return h.writeTable(w, r, q, objs, rv, next)
	}
	data, err := h.encodeList(q, items, rv, next, remaining)
	if err != nil {
		return err
	}
	writeRaw(w, http.StatusOK, data)
	return nil
}

// encodeList is the list's JSON around each item's JSON, kept by name
// and revision: a list of 10,000 pods that mostly did not change
// re-encodes only the changed ones. Items are gathered first so that the
// buffer is allocated once (pod JSON is ~1.5 KB: regrowing a 15 MB
// buffer cost as much as the rest of the list).
func (h *Handler) encodeList(q *request, items []item, rv, cont string, remaining *int64) ([]byte, error) {
	c := h.itemCache(q.info.Resource)
	lm := map[string]any{"resourceVersion": rv}
	if cont != "" {
		lm["continue"] = cont
	}
	if remaining != nil {
		lm["remainingItemCount"] = *remaining
	}
	lmj, _ := json.Marshal(lm)
	head := fmt.Sprintf(`{"kind":%q,"apiVersion":%q,"metadata":%s,"items":[`, q.info.ListKind, q.info.GroupVersion.String(), lmj)
	parts := make([][]byte, len(items))
	size := len(head) + len(items) + 2
	for i, it := range items {
		data, err := c.get(it.obj, func() ([]byte, error) {
			k, err := h.toKube(q, it.obj)
			if err != nil {
				return nil, err
			}
			return json.Marshal(k)
		})
		if err != nil {
			return nil, err
		}
		parts[i] = data
		size += len(data)
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	buf.WriteString(head)
	for i, data := range parts {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(data)
	}
	buf.WriteString("]}")
	return buf.Bytes(), nil
}

// jsonCache is each object's JSON as last encoded, by name and revision.
type jsonCache struct {
	mu sync.Mutex
	m  map[string]cachedJSON
}

type cachedJSON struct {
	rev  uint64
	data []byte
}

// maxCached bounds a kind's cache; past it the cache starts over (a full
// list re-fills it), which also drops deleted objects' entries.
const maxCached = 50000

func (c *jsonCache) get(obj Object, encode func() ([]byte, error)) ([]byte, error) {
	m := obj.GetMeta()
	c.mu.Lock()
	e, ok := c.m[m.Name]
	c.mu.Unlock()
	if ok && e.rev == m.ResourceVersion {
		return e.data, nil
	}
	data, err := encode()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.m) >= maxCached {
		c.m = map[string]cachedJSON{}
	}
	c.m[m.Name] = cachedJSON{rev: m.ResourceVersion, data: data}
	c.mu.Unlock()
	return data, nil
}

func (h *Handler) itemCache(resource string) *jsonCache {
	h.cacheMu.Lock()
	defer h.cacheMu.Unlock()
	c, ok := h.caches[resource]
	if !ok {
		c = &jsonCache{m: map[string]cachedJSON{}}
		h.caches[resource] = c
	}
	return c
}

// isWatch says whether a GET of a collection is a watch.
func isWatch(r *http.Request) bool {
	v := r.URL.Query().Get("watch")
	b, _ := strconv.ParseBool(v)
	return b || v == "1"
}

var _ = apierrors.IsNotFound
