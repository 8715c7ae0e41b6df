package kube

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/miniku/miniku/bus"
)

func (h *Handler) serveResource(w http.ResponseWriter, r *http.Request, q *request) {
	err := checkAccept(r)
	if a, ok := h.cfg.Store.(Availability); ok && err == nil {
		// Refused up front, so the answer names the resource's own store
		// rather than the first one the request happened to touch.
		err = a.Available(q.info.Resource)
	}
	if err == nil {
		err = h.dispatch(w, r, q)
	}
	if err != nil {
		writeStatus(w, h.toStatus(r, q.gr(), q.name, err))
	}
}

func (h *Handler) dispatch(w http.ResponseWriter, r *http.Request, q *request) error {
	if q.info.Namespaced && q.namespace == "" && (q.name != "" || r.Method == http.MethodPost) {
		return notFoundPath(r) // a namespaced object is only reached through its namespace
	}
	if isWatch(r) && r.Method == http.MethodGet && q.sub == "" {
		return h.watch(w, r, q)
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
	defer cancel()
	if q.sub != "" {
		return h.serveSub(ctx, w, r, q)
	}
	m := r.Method
	switch {
	case q.name == "" && (m == http.MethodGet || m == http.MethodHead):
		return h.list(ctx, w, r, q)
	case q.name == "" && m == http.MethodPost:
		return h.create(ctx, w, r, q)
	case q.name == "" && m == http.MethodDelete:
		return h.deleteCollection(ctx, w, r, q)
	case q.name != "" && (m == http.MethodGet || m == http.MethodHead):
		return h.get(ctx, w, r, q)
	case q.name != "" && m == http.MethodPut:
		return h.update(ctx, w, r, q, false)
	case q.name != "" && m == http.MethodPatch:
		return h.patch(ctx, w, r, q, false)
	case q.name != "" && m == http.MethodDelete:
		return h.delete(ctx, w, r, q)
	}
	return apierrors.NewMethodNotSupported(q.gr(), m)
}

// checkNamespace answers 404 for a namespace that does not exist, as
// kube-apiserver does before looking at the object.
func (h *Handler) checkNamespace(ctx context.Context, q *request) error {
	if !q.info.Namespaced || q.namespace == "" {
		return nil
	}
	if _, err := h.cfg.Store.Get(ctx, "namespaces", q.namespace); err != nil {
		if errors.Is(err, bus.ErrNotFound) {
			return apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, q.namespace)
		}
		return err
	}
	return nil
}

// checkNamed checks the namespace of a request for the object name: it
// must exist, and in one MiniKu keeps nothing in the object is NotFound.
func (h *Handler) checkNamed(ctx context.Context, q *request, name string) error {
	if err := h.checkNamespace(ctx, q); err != nil {
		return err
	}
	if q.elsewhere() {
		return apierrors.NewNotFound(q.gr(), name)
	}
	return nil
}

// elsewhere says the request is for a namespace MiniKu keeps nothing in.
func (q *request) elsewhere() bool {
	return q.info.Namespaced && q.namespace != "" && q.namespace != DefaultNamespace
}

// toKube is the wire form of a stored object, apiVersion, kind and
// namespace set.
func (h *Handler) toKube(q *request, obj Object) (runtime.Object, error) {
	k, err := q.kind.ToKube(obj)
	if err != nil {
		return nil, fmt.Errorf("convert %s %s: %w", q.info.Kind, obj.GetMeta().Name, err)
	}
	setGVK(k, q.info.GVK())
	if q.info.Namespaced {
		if m, err := meta.Accessor(k); err == nil && m.GetNamespace() == "" {
			m.SetNamespace(DefaultNamespace)
		}
	}
	return k, nil
}

func (h *Handler) get(ctx context.Context, w http.ResponseWriter, r *http.Request, q *request) error {
	if err := h.checkNamed(ctx, q, q.name); err != nil {
		return err
	}
	obj, err := h.cfg.Store.Get(ctx, q.info.Resource, q.name)
	if err != nil {
		return err
	}
	k, err := h.toKube(q, obj)
	if err != nil {
		return err
	}
	if wantsTable(r) {
		return h.writeTable(w, r, q, []runtime.Object{k}, k.(metav1.Object).GetResourceVersion(), "")
	}
	writeJSON(w, http.StatusOK, k)
	return nil
}

// decodeFor reads the body of a create or update as the kind's wire type
// and checks its apiVersion, kind and namespace against the path.
func (h *Handler) decodeFor(w http.ResponseWriter, r *http.Request, q *request) (runtime.Object, metav1.Object, error) {
	data, ct, err := readBody(r)
	if err != nil {
		return nil, nil, err
	}
	k := q.kind.NewKube()
	if err := decodeObject(w, r, data, ct, k); err != nil {
		return nil, nil, err
	}
	return checkDecoded(q, k)
}

func checkDecoded(q *request, k runtime.Object) (runtime.Object, metav1.Object, error) {
	gvk := k.GetObjectKind().GroupVersionKind()
	if (gvk.Kind != "" && gvk.Kind != q.info.Kind) || (gvk.Version != "" && gvk.GroupVersion() != q.info.GroupVersion) {
		return nil, nil, badRequest("the body is a %s, not a %s", gvk, q.info.GVK())
	}
	m, err := objectMeta(k)
	if err != nil {
		return nil, nil, err
	}
	if q.info.Namespaced {
		if ns := m.GetNamespace(); ns != "" && ns != q.namespace {
			return nil, nil, badRequest("the namespace of the provided object (%s) does not match the namespace sent on the request (%s)", ns, q.namespace)
		}
	} else if m.GetNamespace() != "" {
		return nil, nil, badRequest("%s is not namespaced: metadata.namespace must be empty", q.info.Kind)
	}
	// The stored types keep no namespace: objects live in default.
	m.SetNamespace("")
	return k, m, nil
}

func dryRun(r *http.Request) (bool, error) {
	for _, v := range r.URL.Query()["dryRun"] {
		if v != "All" {
			return false, badRequest("dryRun: only All is supported, got %q", v)
		}
		return true, nil
	}
	return false, nil
}

func (h *Handler) create(ctx context.Context, w http.ResponseWriter, r *http.Request, q *request) error {
	if err := h.checkNamespace(ctx, q); err != nil {
		return err
	}
	opts, err := parseWriteOptions(r, "")
	if err != nil {
		return err
	}
	k, m, err := h.decodeFor(w, r, q)
	if err != nil {
		return err
	}
	if q.elsewhere() {
		return apierrors.NewForbidden(q.gr(), m.GetName(), fmt.Errorf("MiniKu keeps %s only in namespace %q yet, not in %q", q.info.Resource, DefaultNamespace, q.namespace))
	}
	if m.GetName() == "" && m.GetGenerateName() != "" {
		m.SetName(m.GetGenerateName() + randSuffix())
	}
	if m.GetName() == "" {
		return invalid(q.info.GVK().GroupKind(), "", field.ErrorList{field.Required(field.NewPath("metadata", "name"), "name or generateName is required")})
	}
	if k, err = h.trackUpdate(q, opts, nil, k); err != nil {
		return err
	}
	out, err := h.createObject(ctx, q, k, opts)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// createObject stores the wire object k through the kind's rules
// (conversion, PrepareForCreate, Validate) and returns it as stored.
func (h *Handler) createObject(ctx context.Context, q *request, k runtime.Object, opts writeOptions) (runtime.Object, error) {
	m, err := objectMeta(k)
	if err != nil {
		return nil, err
	}
	m.SetResourceVersion("")
	stored, errs := q.kind.FromKube(k)
	if len(errs) > 0 {
		return nil, invalid(q.info.GVK().GroupKind(), m.GetName(), errs)
	}
	obj, ok := stored.(Object)
	if !ok {
		return nil, fmt.Errorf("kind %s: stored type %T has no metadata", q.info.Kind, stored)
	}
	q.kind.PrepareForCreate(stored, h.cfg.Now().UTC())
	if errs := q.kind.Validate(stored); len(errs) > 0 {
		return nil, invalid(q.info.GVK().GroupKind(), m.GetName(), errs)
	}
	if !opts.dryRun {
		if err := h.cfg.Store.Create(ctx, q.info.Resource, obj); err != nil {
			if errors.Is(err, bus.ErrAlreadyExists) {
				return nil, apierrors.NewAlreadyExists(q.gr(), obj.GetMeta().Name)
			}
			return nil, err
		}
	}
	return h.toKube(q, obj)
}

// randSuffix is kube-apiserver's generateName suffix: five characters
// from an alphabet without vowels and look-alikes.
func randSuffix() string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func (h *Handler) update(ctx context.Context, w http.ResponseWriter, r *http.Request, q *request, _ bool) error {
	if err := h.checkNamed(ctx, q, q.name); err != nil {
		return err
	}
	opts, err := parseWriteOptions(r, "")
	if err != nil {
		return err
	}
	k, m, err := h.decodeFor(w, r, q)
	if err != nil {
		return err
	}
	if m.GetName() != q.name {
		return badRequest("the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), q.name)
	}
	old, err := h.cfg.Store.Get(ctx, q.info.Resource, q.name)
	if err != nil {
		return err
	}
	if q.sub == "status" {
		if k, err = h.withStatusOf(q, old, k); err != nil {
			return err
		}
	}
	out, err := h.write(ctx, q, old, k, opts, false)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// withStatusOf is old with the status of k: what a status subresource
// write changes.
func (h *Handler) withStatusOf(q *request, old Object, k runtime.Object) (runtime.Object, error) {
	ok, err := h.toKube(q, old)
	if err != nil {
		return nil, err
	}
	om, err := toMap(ok)
	if err != nil {
		return nil, err
	}
	nm, err := toMap(k)
	if err != nil {
		return nil, err
	}
	om["status"] = nm["status"]
	if md, ok := nm["metadata"].(map[string]any); ok {
		if rv, ok := md["resourceVersion"]; ok {
			om["metadata"].(map[string]any)["resourceVersion"] = rv
		}
	}
	out := q.kind.NewKube()
	if err := fromMap(om, out); err != nil {
		return nil, err
	}
	_, _, err = checkDecoded(q, out)
	return out, err
}

// write replaces old by k through the kind's rules, compare-and-swap on
// the resourceVersion k carries (old's when it carries none, as
// kube-apiserver allows an unconditional update). Unless k is the result
// of an apply (which tracked its own), the writer's manager gets an
// Update entry in managedFields for what it changed.
func (h *Handler) write(ctx context.Context, q *request, old Object, k runtime.Object, opts writeOptions, applied bool) (runtime.Object, error) {
	if !applied {
		live, err := h.toKube(q, old)
		if err != nil {
			return nil, err
		}
		if k, err = h.trackUpdate(q, opts, live, k); err != nil {
			return nil, err
		}
	}
	m, err := objectMeta(k)
	if err != nil {
		return nil, err
	}
	gk := q.info.GVK().GroupKind()
	oldRev := old.GetMeta().ResourceVersion
	rev := oldRev
	if s := m.GetResourceVersion(); s != "" {
		if rev, err = strconv.ParseUint(s, 10, 64); err != nil || rev == 0 {
			return nil, invalid(gk, q.name, field.ErrorList{field.Invalid(field.NewPath("metadata", "resourceVersion"), s, "must be the resourceVersion read")})
		}
		if rev != oldRev {
			return nil, conflict(q, rev, oldRev)
		}
	}
	m.SetResourceVersion("")
	stored, errs := q.kind.FromKube(k)
	if len(errs) > 0 {
		return nil, invalid(gk, q.name, errs)
	}
	obj, ok := stored.(Object)
	if !ok {
		return nil, fmt.Errorf("kind %s: stored type %T has no metadata", q.info.Kind, stored)
	}
	// The kind's rules, the same every other writer's registry runs
	// (bus/registry): the main resource must not change what only old may
	// carry; a status write keeps only the status.
	prepare, validate := q.kind.PrepareForUpdate, q.kind.ValidateUpdate
	if q.sub == "status" {
		prepare, validate = q.kind.PrepareForStatusUpdate, q.kind.ValidateStatusUpdate
	}
	prepare(stored, old)
	if errs := validate(stored, old); len(errs) > 0 {
		return nil, invalid(gk, q.name, errs)
	}
	obj.GetMeta().ResourceVersion = oldRev
	if unchanged(obj, old) {
		// As kube-apiserver's storage: a write that changes nothing is
		// not written (a re-apply of the same manifest keeps its
		// resourceVersion and wakes no watcher).
		return h.toKube(q, old)
	}
	if !opts.dryRun {
		if err := h.cfg.Store.Update(ctx, q.info.Resource, obj); err != nil {
			if errors.Is(err, bus.ErrConflict) {
				return nil, conflict(q, oldRev, 0)
			}
			return nil, err
		}
	}
	return h.toKube(q, obj)
}

// unchanged says whether the stored object obj is old as it is stored.
func unchanged(obj, old Object) bool {
	a, err := json.Marshal(obj)
	if err != nil {
		return false
	}
	b, err := json.Marshal(old)
	return err == nil && bytes.Equal(a, b)
}

func conflict(q *request, sent, current uint64) error {
	msg := "the object has been modified; please apply your changes to the latest version and try again"
	if current != 0 {
		msg = fmt.Sprintf("%s (resourceVersion %d sent, %d stored)", msg, sent, current)
	}
	return apierrors.NewConflict(q.gr(), q.name, errors.New(msg))
}

// deleteOptions are the body's DeleteOptions with the query's on top.
func deleteOptions(r *http.Request) (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	data, ct, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if len(data) > 0 {
		if err := decodeObject(discardHeaders{}, r, data, ct, opts); err != nil {
			return nil, err
		}
	}
	qv := r.URL.Query()
	if v := qv.Get("gracePeriodSeconds"); v != "" {
		g, err := strconv.ParseInt(v, 10, 64)
		if err != nil || g < 0 {
			return nil, badRequest("gracePeriodSeconds: %q is not a non-negative integer", v)
		}
		opts.GracePeriodSeconds = &g
	}
	if v := qv.Get("propagationPolicy"); v != "" {
		p := metav1.DeletionPropagation(v)
		opts.PropagationPolicy = &p
	}
	if opts.PropagationPolicy != nil {
		switch *opts.PropagationPolicy {
		case metav1.DeletePropagationBackground, metav1.DeletePropagationForeground, metav1.DeletePropagationOrphan:
		default:
			return nil, badRequest("propagationPolicy: %q is not Background, Foreground or Orphan", *opts.PropagationPolicy)
		}
	}
	if opts.GracePeriodSeconds != nil && *opts.GracePeriodSeconds < 0 {
		return nil, badRequest("gracePeriodSeconds: must not be negative")
	}
	return opts, nil
}

// discardHeaders takes the warnings of a body nobody gets back.
type discardHeaders struct{}

func (discardHeaders) Header() http.Header       { return http.Header{} }
func (discardHeaders) Write([]byte) (int, error) { return 0, nil }
func (discardHeaders) WriteHeader(int)           {}

func (h *Handler) delete(ctx context.Context, w http.ResponseWriter, r *http.Request, q *request) error {
	opts, err := deleteOptions(r)
	if err != nil {
		return err
	}
	out, err := h.deleteOne(ctx, r, q, q.name, opts)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *Handler) deleteOne(ctx context.Context, r *http.Request, q *request, name string, opts *metav1.DeleteOptions) (runtime.Object, error) {
	if err := h.checkNamed(ctx, q, name); err != nil {
		return nil, err
	}
	cur, err := h.cfg.Store.Get(ctx, q.info.Resource, name)
	if err != nil {
		return nil, err
	}
	var want uint64
	if p := opts.Preconditions; p != nil {
		if p.UID != nil && string(*p.UID) != cur.GetMeta().UID {
			return nil, apierrors.NewConflict(q.gr(), name, fmt.Errorf("precondition failed: UID in precondition: %s, UID in object meta: %s", *p.UID, cur.GetMeta().UID))
		}
		if p.ResourceVersion != nil {
			if want, err = strconv.ParseUint(*p.ResourceVersion, 10, 64); err != nil || want == 0 {
				return nil, badRequest("preconditions.resourceVersion: %q is not a resourceVersion", *p.ResourceVersion)
			}
			if want != cur.GetMeta().ResourceVersion {
				return nil, apierrors.NewConflict(q.gr(), name, fmt.Errorf("precondition failed: ResourceVersion in precondition: %d, ResourceVersion in object meta: %d", want, cur.GetMeta().ResourceVersion))
			}
		}
	}
	dry, err := dryRun(r)
	if err != nil {
		return nil, err
	}
	if dry {
		return h.toKube(q, cur)
	}
	var policy metav1.DeletionPropagation
	if opts.PropagationPolicy != nil {
		policy = *opts.PropagationPolicy
	} else if opts.OrphanDependents != nil { //nolint:staticcheck // still sent by old clients
		policy = metav1.DeletePropagationBackground
		if *opts.OrphanDependents { //nolint:staticcheck // still sent by old clients
			policy = metav1.DeletePropagationOrphan
		}
	}
	gone, err := h.cfg.Store.Delete(ctx, q.info.Resource, name, want, opts.GracePeriodSeconds, policy)
	if err != nil {
		if errors.Is(err, bus.ErrConflict) {
			return nil, conflict(q, want, 0)
		}
		return nil, err
	}
	if gone == nil {
		gone = cur
	}
	return h.toKube(q, gone)
}

func (h *Handler) deleteCollection(ctx context.Context, w http.ResponseWriter, r *http.Request, q *request) error {
	opts, err := deleteOptions(r)
	if err != nil {
		return err
	}
	items, _, err := h.selected(ctx, r, q)
	if err != nil {
		return err
	}
	out := make([]runtime.Object, 0, len(items))
	for _, it := range items {
		name := it.obj.GetMeta().Name
		k, err := h.deleteOne(ctx, r, q, name, opts)
		if apierrors.IsNotFound(err) {
			continue // gone meanwhile
		}
		if err != nil {
			return err
		}
		out = append(out, k)
	}
	list := q.kind.NewKubeList()
	if err := meta.SetList(list, out); err != nil {
		return err
	}
	setGVK(list, q.info.GroupVersion.WithKind(q.info.ListKind))
	writeJSON(w, http.StatusOK, list)
	return nil
}

// timeNow is for tests that need the handler's clock.
var _ = time.Now
