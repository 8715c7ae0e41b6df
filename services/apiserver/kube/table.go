package kube

import (
	"bytes"
	"encoding/json"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// table is objs as the kind's metav1.Table, each row's object trimmed to
// what ?includeObject asks for (Metadata by default, as kube-apiserver).
func (h *Handler) table(r *http.Request, q *request, objs []runtime.Object, rv, cont string) (*metav1.Table, error) {
	include, err := includeObject(r)
	if err != nil {
		return nil, err
	}
	t, err := q.kind.Table(objs, h.cfg.Now())
	if err != nil {
		return nil, err
	}
	t.Kind, t.APIVersion = "Table", "meta.k8s.io/v1"
	t.ResourceVersion, t.Continue = rv, cont
	if t.Rows == nil {
		t.Rows = []metav1.TableRow{}
	}
	for i := range t.Rows {
		row := &t.Rows[i]
		obj := row.Object.Object
		if obj == nil && i < len(objs) {
			obj = objs[i]
		}
		var data []byte
		switch include {
		case metav1.IncludeNone:
			row.Object = runtime.RawExtension{}
			continue
		case metav1.IncludeMetadata:
			data, err = partialMetadata(obj)
		default:
			data, err = json.Marshal(obj)
		}
		if err != nil {
			return nil, err
		}
		row.Object = runtime.RawExtension{Raw: data}
	}
	return t, nil
}

func (h *Handler) writeTable(w http.ResponseWriter, r *http.Request, q *request, objs []runtime.Object, rv, cont string) error {
	t, err := h.table(r, q, objs, rv, cont)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

// includeObject is a Table request's ?includeObject (Metadata by
// default, as kube-apiserver).
func includeObject(r *http.Request) (metav1.IncludeObjectPolicy, error) {
	include := metav1.IncludeObjectPolicy(r.URL.Query().Get("includeObject"))
	switch include {
	case "":
		return metav1.IncludeMetadata, nil
	case metav1.IncludeNone, metav1.IncludeMetadata, metav1.IncludeObject:
		return include, nil
	}
	return "", badRequest("includeObject: %q is not None, Metadata or Object", include)
}

// writeTableList sends a list as the kind's Table, each row from the
// cache at its object's revision (wireCache): only the cells that count
// time (ages) are made per request. Rows are encoded before the first
// byte is sent, then written piece by piece (see writeList).
func (h *Handler) writeTableList(w http.ResponseWriter, r *http.Request, q *request, items []item, rv, cont string, all bool) error {
	include, err := includeObject(r)
	if err != nil {
		return err
	}
	now := h.cfg.Now()
	t, err := q.kind.Table(nil, now)
	if err != nil {
		return err
	}
	t.Kind, t.APIVersion = "Table", "meta.k8s.io/v1"
	t.ResourceVersion, t.Continue = rv, cont
	t.Rows = []metav1.TableRow{}
	head, err := json.Marshal(t)
	if err != nil {
		return err
	}
	head = bytes.TrimSuffix(head, []byte("]}")) // "rows":[] is last: rows go between
	parts := make([][]byte, len(items))
	for i, it := range items {
		row, object, err := h.tableParts(q, it.obj, include)
		if err != nil {
			return err
		}
		buf := make([]byte, 0, 256+len(object))
		buf = append(buf, `{"cells":[`...)
		if buf, err = row.appendTo(buf, now); err != nil {
			return err
		}
		buf = append(buf, `],"object":`...)
		if object == nil {
			object = []byte("null")
		}
		parts[i] = append(append(buf, object...), '}')
	}
	if all {
		h.keepOnly(q, items)
	}
	writeParts(w, head, parts, []byte("]}\n"))
	return nil
}
