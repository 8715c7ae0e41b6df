package kube

import (
	"fmt"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/yaml"

	"github.com/miniku/miniku/schemas/kinds"
	"github.com/miniku/miniku/services/apiserver/kube/openapi"
)

// fieldManagers hold one managedfields.FieldManager per resource and
// subresource: k8s.io/apimachinery's server-side apply (merge by the
// schemas' list types and map keys, field ownership, conflicts) over the
// kinds' wire types. The schemas are parsed on the first write, not at
// start: it costs a few MB the idle server does not need.
type fieldManagers struct {
	once   sync.Once
	err    error
	tc     managedfields.TypeConverter
	scheme *runtime.Scheme

	mu    sync.Mutex
	byKey map[string]*managedfields.FieldManager // "pods", "pods/status"
}

func (f *fieldManagers) init() {
	f.scheme = runtime.NewScheme()
	seen := map[schema.GroupVersion]bool{}
	for _, k := range kinds.All() {
		info := k.Info()
		f.scheme.AddKnownTypeWithName(info.GVK(), k.NewKube())
		f.scheme.AddKnownTypeWithName(info.GroupVersion.WithKind(info.ListKind), k.NewKubeList())
		if !seen[info.GroupVersion] {
			seen[info.GroupVersion] = true
			metav1.AddToGroupVersion(f.scheme, info.GroupVersion)
		}
	}
	f.tc, f.err = openapi.TypeConverter(openapi.FromKinds(kinds.All()))
	// Building the models leaves garbage many times what is kept.
	debug.FreeOSMemory()
}

// get is the field manager of q's resource and subresource.
func (f *fieldManagers) get(q *request) (*managedfields.FieldManager, error) {
	f.once.Do(f.init)
	if f.err != nil {
		return nil, f.err
	}
	key := q.info.Resource
	if q.sub != "" {
		key += "/" + q.sub
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if fm, ok := f.byKey[key]; ok {
		return fm, nil
	}
	gv := q.info.GroupVersion
	fm, err := managedfields.NewDefaultFieldManager(f.tc, runtime.UnsafeObjectConvertor(f.scheme), f.scheme, f.scheme,
		q.info.GVK(), gv, q.sub, resetFields(q.info, q.sub))
	if err != nil {
		return nil, fmt.Errorf("field manager for %s: %w", key, err)
	}
	if f.byKey == nil {
		f.byKey = map[string]*managedfields.FieldManager{}
	}
	f.byKey[key] = fm
	return fm, nil
}

// resetFields are the fields a write through (sub)resource does not
// change, so no manager gets them by it: status for the main resource of
// a kind with a status subresource, everything but status for that
// subresource (the strategies' GetResetFields on Kubernetes).
func resetFields(info *kinds.Info, sub string) map[fieldpath.APIVersion]fieldpath.Filter {
	status := fieldpath.NewSet(fieldpath.MakePathOrDie("status"))
	v := fieldpath.APIVersion(info.GroupVersion.String())
	switch {
	case sub == "status":
		return map[fieldpath.APIVersion]fieldpath.Filter{v: fieldpath.NewIncludeMatcherFilter(fieldpath.MakePrefixMatcherOrDie("status"))}
	case sub == "" && contains(info.Subresources, "status"):
		return map[fieldpath.APIVersion]fieldpath.Filter{v: fieldpath.NewExcludeSetFilter(status)}
	}
	return nil
}

// writeOptions are the query's fieldManager, force and dryRun, checked as
// kube-apiserver checks its CreateOptions, UpdateOptions and PatchOptions.
type writeOptions struct {
	manager string // as sent; empty: the user agent's
	force   bool
	dryRun  bool
}

// parseWriteOptions reads and checks the options of a write; pt is the
// patch type ("" for a create or update).
func parseWriteOptions(r *http.Request, pt types.PatchType) (writeOptions, error) {
	qv := r.URL.Query()
	o := writeOptions{manager: qv.Get("fieldManager")}
	dry := qv["dryRun"]
	fv := qv.Get("fieldValidation")
	var force *bool
	if s := qv.Get("force"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return o, badRequest("force: %q is not a boolean", s)
		}
		force, o.force = &b, b
	}
	var errs field.ErrorList
	kind := "PatchOptions"
	switch {
	case pt != "":
		errs = metavalidation.ValidatePatchOptions(&metav1.PatchOptions{DryRun: dry, Force: force, FieldManager: o.manager, FieldValidation: fv}, pt)
	case r.Method == http.MethodPost:
		kind = "CreateOptions"
		errs = metavalidation.ValidateCreateOptions(&metav1.CreateOptions{DryRun: dry, FieldManager: o.manager, FieldValidation: fv})
	default:
		kind = "UpdateOptions"
		errs = metavalidation.ValidateUpdateOptions(&metav1.UpdateOptions{DryRun: dry, FieldManager: o.manager, FieldValidation: fv})
	}
	if pt == "" && force != nil {
		errs = append(errs, field.Forbidden(field.NewPath("force"), "may not be specified for a create or an update"))
	}
	if len(errs) > 0 {
		return o, invalid(schema.GroupKind{Group: metav1.GroupName, Kind: kind}, "", errs)
	}
	o.dryRun = len(dry) > 0
	if o.manager == "" {
		// As kube-apiserver: the user agent up to its first slash
		// ("kubectl", "helm"), so a write without a manager still owns
		// what it set.
		o.manager = strings.Split(r.UserAgent(), "/")[0]
	}
	return o, nil
}

// trackUpdate records a create's or an update's field ownership in k's
// managedFields (an Update entry of the writer's manager), as
// kube-apiserver does on every write that is not an apply; live is the
// stored object's wire form (nil: a create).
func (h *Handler) trackUpdate(q *request, opts writeOptions, live, k runtime.Object) (runtime.Object, error) {
	fm, err := h.managers.get(q)
	if err != nil {
		return nil, err
	}
	if live == nil {
		live = q.kind.NewKube()
		setGVK(live, q.info.GVK())
	}
	return fm.UpdateNoErrors(live, k, opts.manager), nil
}

// decodeApply reads an apply patch: YAML (or JSON), the object as its
// manager wants it, partial.
func decodeApply(q *request, data []byte, ct string) (*unstructured.Unstructured, error) {
	if ct == "application/apply-patch+cbor" {
		return nil, unsupportedMedia("server-side apply in CBOR is not served by MiniKu: send application/apply-patch+yaml")
	}
	u := &unstructured.Unstructured{Object: map[string]any{}}
	if err := yaml.Unmarshal(data, &u.Object); err != nil {
		return nil, badRequest("error decoding YAML: %v", err)
	}
	if u.Object == nil {
		return nil, badRequest("the apply patch is empty")
	}
	if gvk := u.GroupVersionKind(); gvk.Kind != q.info.Kind {
		return nil, badRequest("the apply patch is a %s, not a %s", gvk, q.info.GVK())
	}
	if n := u.GetName(); n != "" && n != q.name {
		return nil, badRequest("the name of the object (%s) does not match the name on the URL (%s)", n, q.name)
	}
	if ns := u.GetNamespace(); q.info.Namespaced && ns != "" && ns != q.namespace {
		return nil, badRequest("the namespace of the provided object (%s) does not match the namespace sent on the request (%s)", ns, q.namespace)
	}
	return u, nil
}

// applyTo merges an apply patch into live (an empty object with the
// request's name for a create) for manager: conflicts with another
// manager's fields are the 409 Kubernetes sends (unless force), naming
// each field and its manager. The result is the kind's wire type, its
// namespace cleared as checkDecoded leaves it.
func (h *Handler) applyTo(q *request, live runtime.Object, patch *unstructured.Unstructured, opts writeOptions) (runtime.Object, error) {
	fm, err := h.managers.get(q)
	if err != nil {
		return nil, err
	}
	out, err := fm.Apply(live, patch, opts.manager, opts.force)
	if err != nil {
		if _, ok := err.(apierrors.APIStatus); ok {
			return nil, err
		}
		// A field the schemas do not have, a value of the wrong type:
		// the manifest's fault.
		return nil, badRequest("%v", err)
	}
	k := q.kind.NewKube()
	switch o := out.(type) {
	case *unstructured.Unstructured:
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, k); err != nil {
			return nil, badRequest("the applied object: %v", err)
		}
	default:
		if err := h.managers.scheme.Convert(out, k, nil); err != nil {
			return nil, fmt.Errorf("apply: result %T: %w", out, err)
		}
	}
	setGVK(k, q.info.GVK())
	k, _, err = checkDecoded(q, k)
	return k, err
}

// emptyFor is the object an apply creates from: the kind's wire type
// with the request's name and namespace.
func emptyFor(q *request) (runtime.Object, error) {
	k := q.kind.NewKube()
	setGVK(k, q.info.GVK())
	m, err := objectMeta(k)
	if err != nil {
		return nil, err
	}
	m.SetName(q.name)
	if q.info.Namespaced {
		m.SetNamespace(q.namespace)
	}
	return k, nil
}
