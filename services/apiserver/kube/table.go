package kube

import (
	"encoding/json"
	"net/http"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// table is objs as the kind's metav1.Table, each row's object trimmed to
// what ?includeObject asks for (Metadata by default, as kube-apiserver).
func (h *Handler) table(r *http.Request, q *request, objs []runtime.Object, rv, cont string) (*metav1.Table, error) {
	include := metav1.IncludeObjectPolicy(r.URL.Query().Get("includeObject"))
	switch include {
	case "":
		include = metav1.IncludeMetadata
	case metav1.IncludeNone, metav1.IncludeMetadata, metav1.IncludeObject:
	default:
		return nil, badRequest("includeObject: %q is not None, Metadata or Object", include)
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
		var out any
		switch include {
		case metav1.IncludeNone:
			row.Object = runtime.RawExtension{}
			continue
		case metav1.IncludeMetadata:
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
			out = pm
		default:
			out = obj
		}
		data, err := json.Marshal(out)
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
