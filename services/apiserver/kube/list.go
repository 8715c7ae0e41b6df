package kube

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
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
	data, err := h.objectJSON(q, obj)
	if err != nil {
		return false, err
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
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
	all := !q.elsewhere() && q.namespace == "" && qv.Get("labelSelector") == "" && qv.Get("fieldSelector") == "" && next == "" && qv.Get("continue") == ""
	if wantsTable(r) {
		return h.writeTableList(w, r, q, items, rv, next, all)
	}
	return h.writeList(w, q, items, rv, next, remaining, all)
}

// writeList sends the list's JSON around each item's JSON, kept per
// revision (wireCache): a list of 10,000 pods that mostly did not change
// encodes only the changed ones. Every item is encoded before the first
// byte is sent, so that a failure is still a Status; the body is then
// written piece by piece, never joined into one big buffer (a 10,000-pod
// list is ~17 MB). all says items is every object of the kind: cache
// entries of any other are dropped.
func (h *Handler) writeList(w http.ResponseWriter, q *request, items []item, rv, cont string, remaining *int64, all bool) error {
	lm := map[string]any{"resourceVersion": rv}
	if cont != "" {
		lm["continue"] = cont
	}
	if remaining != nil {
		lm["remainingItemCount"] = *remaining
	}
	lmj, err := json.Marshal(lm)
	if err != nil {
		return err
	}
	head := fmt.Sprintf(`{"kind":%q,"apiVersion":%q,"metadata":%s,"items":[`, q.info.ListKind, q.info.GroupVersion.String(), lmj)
	parts := make([][]byte, len(items))
	for i, it := range items {
		if parts[i], err = h.objectJSON(q, it.obj); err != nil {
			return err
		}
	}
	if all {
		h.keepOnly(q, items)
	}
	writeParts(w, []byte(head), parts, []byte("]}\n"))
	return nil
}

// keepOnly drops the cache entries of objects a full list did not have.
func (h *Handler) keepOnly(q *request, items []item) {
	keys := make(map[string]bool, len(items))
	for _, it := range items {
		keys[cacheKey(it.obj)] = true
	}
	h.wire(q.info.Resource).keepOnly(keys)
}

// writeParts sends head, the parts joined by commas, and tail as one
// JSON body with its length.
func writeParts(w http.ResponseWriter, head []byte, parts [][]byte, tail []byte) {
	size := len(head) + len(tail) + max(len(parts)-1, 0)
	for _, p := range parts {
		size += len(p)
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-cache, private")
	hd.Set("Content-Length", strconv.Itoa(size))
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	_, _ = bw.Write(head)
	for i, p := range parts {
		if i > 0 {
			_ = bw.WriteByte(',')
		}
		_, _ = bw.Write(p)
	}
	_, _ = bw.Write(tail)
	_ = bw.Flush() // a write error is the client gone: nothing to tell it
}

// isWatch says whether a GET of a collection is a watch.
func isWatch(r *http.Request) bool {
	v := r.URL.Query().Get("watch")
	b, _ := strconv.ParseBool(v)
	return b || v == "1"
}

var _ = apierrors.IsNotFound
