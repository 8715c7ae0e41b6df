package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/miniku/miniku/bus"
)

// serveSub serves <resource>/<name>/<sub>: status (the object, writes
// change only its status), scale (autoscaling/v1 Scale over spec.replicas),
// binding and eviction (pods).
func (h *Handler) serveSub(ctx context.Context, w http.ResponseWriter, r *http.Request, q *request) error {
	m := r.Method
	switch {
	case q.sub == "status" && (m == http.MethodGet || m == http.MethodHead):
		return h.get(ctx, w, r, q)
	case q.sub == "status" && m == http.MethodPut:
		return h.update(ctx, w, r, q, true)
	case q.sub == "status" && m == http.MethodPatch:
		return h.patch(ctx, w, r, q, true)
	case q.sub == "scale" && (m == http.MethodGet || m == http.MethodHead):
		return h.getScale(ctx, w, q)
	case q.sub == "scale" && (m == http.MethodPut || m == http.MethodPatch):
		return h.putScale(ctx, w, r, q)
	case q.sub == "binding" && m == http.MethodPost:
		return h.bind(ctx, w, r, q)
	case q.sub == "eviction" && m == http.MethodPost:
		return h.evict(ctx, w, r, q)
	}
	if q.sub == "log" || q.sub == "exec" {
		// The stream handlers find the pod by name alone: in any namespace
		// but the one MiniKu keeps pods in, the pod is NotFound, as
		// kube-apiserver answers when its lookup there finds nothing.
		if q.elsewhere() {
			return apierrors.NewNotFound(q.gr(), q.name)
		}
	}
	if h.cfg.Streams != nil && (q.sub == "log" || q.sub == "exec") {
		if s, ok := h.cfg.Streams[q.sub]; ok {
			s.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), nameKey{}, q.name)))
			return nil
		}
	}
	if q.sub == "log" || q.sub == "exec" {
		return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusNotImplemented,
			Reason: metav1.StatusReasonMethodNotAllowed, Message: fmt.Sprintf("pods/%s is not served on the Kubernetes API by MiniKu yet: use miniku %s", q.sub, map[string]string{"log": "logs", "exec": "exec"}[q.sub])}}
	}
	return apierrors.NewMethodNotSupported(q.gr(), m)
}

// nameKey carries the object name to a stream handler.
type nameKey struct{}

// NameFrom is the object name of a request handed to a Config.Streams
// handler.
func NameFrom(ctx context.Context) string {
	s, _ := ctx.Value(nameKey{}).(string)
	return s
}

// scaleOf is the Scale of a wire object with spec.replicas,
// status.replicas and spec.selector.
func (h *Handler) scaleOf(q *request, obj Object) (*autoscalingv1.Scale, error) {
	k, err := h.toKube(q, obj)
	if err != nil {
		return nil, err
	}
	m, err := toMap(k)
	if err != nil {
		return nil, err
	}
	spec, _ := m["spec"].(map[string]any)
	status, _ := m["status"].(map[string]any)
	num := func(v any) int32 { f, _ := v.(float64); return int32(f) }
	sc := &autoscalingv1.Scale{
		TypeMeta:   metav1.TypeMeta{Kind: "Scale", APIVersion: "autoscaling/v1"},
		ObjectMeta: metav1.ObjectMeta{Name: obj.GetMeta().Name, Namespace: DefaultNamespace, UID: types.UID(obj.GetMeta().UID), ResourceVersion: strconv.FormatUint(obj.GetMeta().ResourceVersion, 10), CreationTimestamp: metav1.NewTime(obj.GetMeta().CreatedAt)},
		Spec:       autoscalingv1.ScaleSpec{Replicas: num(spec["replicas"])},
		Status:     autoscalingv1.ScaleStatus{Replicas: num(status["replicas"])},
	}
	if sel, ok := spec["selector"].(map[string]any); ok {
		var ls metav1.LabelSelector
		if err := fromMapAny(sel, &ls); err == nil {
			if s, err := metav1.LabelSelectorAsSelector(&ls); err == nil {
				sc.Status.Selector = s.String()
			}
		}
	}
	return sc, nil
}

func (h *Handler) getScale(ctx context.Context, w http.ResponseWriter, q *request) error {
	if err := h.checkNamed(ctx, q, q.name); err != nil {
		return err
	}
	obj, err := h.cfg.Store.Get(ctx, q.info.Resource, q.name)
	if err != nil {
		return err
	}
	sc, err := h.scaleOf(q, obj)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sc)
	return nil
}

func (h *Handler) putScale(ctx context.Context, w http.ResponseWriter, r *http.Request, q *request) error {
	if err := h.checkNamed(ctx, q, q.name); err != nil {
		return err
	}
	data, ct, err := readBody(r)
	if err != nil {
		return err
	}
	var pt types.PatchType
	if r.Method == http.MethodPatch {
		pt = types.PatchType(ct)
	}
	opts, err := parseWriteOptions(r, pt)
	if err != nil {
		return err
	}
	old, err := h.cfg.Store.Get(ctx, q.info.Resource, q.name)
	if err != nil {
		return err
	}
	var sc autoscalingv1.Scale
	if r.Method == http.MethodPatch {
		// kubectl scale patches the Scale: apply it to the current one.
		cur, err := h.scaleOf(q, old)
		if err != nil {
			return err
		}
		curJSON, err := json.Marshal(cur)
		if err != nil {
			return err
		}
		if data, err = applyPatch(ct, curJSON, data, &autoscalingv1.Scale{}); err != nil {
			return err
		}
		ct = "application/json"
	}
	if err := decodeObject(w, r, data, ct, &sc); err != nil {
		return err
	}
	k, err := h.toKube(q, old)
	if err != nil {
		return err
	}
	m, err := toMap(k)
	if err != nil {
		return err
	}
	spec, _ := m["spec"].(map[string]any)
	if spec == nil {
		spec = map[string]any{}
		m["spec"] = spec
	}
	spec["replicas"] = sc.Spec.Replicas
	md := m["metadata"].(map[string]any)
	md["resourceVersion"] = sc.ResourceVersion
	nk := q.kind.NewKube()
	if err := fromMap(m, nk); err != nil {
		return err
	}
	if _, _, err := checkDecoded(q, nk); err != nil {
		return err
	}
	q2 := *q
	q2.sub = ""
	out, err := h.write(ctx, &q2, old, nk, opts, false)
	if err != nil {
		return err
	}
	_ = out
	cur, err := h.cfg.Store.Get(ctx, q.info.Resource, q.name)
	if err != nil {
		return err
	}
	res, err := h.scaleOf(q, cur)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// bind sets a pod's spec.nodeName from a v1 Binding, as the scheduler's
// bind does on Kubernetes; a bound pod is refused with 409.
func (h *Handler) bind(ctx context.Context, w http.ResponseWriter, r *http.Request, q *request) error {
	if err := h.checkNamespace(ctx, q); err != nil {
		return err
	}
	data, ct, err := readBody(r)
	if err != nil {
		return err
	}
	var b corev1.Binding
	if err := decodeObject(w, r, data, ct, &b); err != nil {
		return err
	}
	if b.Target.Name == "" {
		return badRequest("binding: target.name (the node) is required")
	}
	if q.info.Resource != "pods" {
		return apierrors.NewMethodNotSupported(q.gr(), "binding")
	}
	if b.Target.Kind != "" && b.Target.Kind != "Node" {
		return badRequest("binding: target.kind must be Node, got %q", b.Target.Kind)
	}
	if _, err := h.cfg.Store.Bind(ctx, q.name, b.Target.Name); err != nil {
		if errors.Is(err, bus.ErrConflict) {
			return apierrors.NewConflict(schema.GroupResource{Resource: "pods/binding"}, q.name, err)
		}
		return err
	}
	writeJSON(w, http.StatusCreated, success())
	return nil
}

// evict deletes a pod through policy/v1 Eviction (kubectl drain). MiniKu
// has no PodDisruptionBudgets yet, so every eviction is allowed.
func (h *Handler) evict(ctx context.Context, w http.ResponseWriter, r *http.Request, q *request) error {
	data, ct, err := readBody(r)
	if err != nil {
		return err
	}
	var ev policyv1.Eviction
	if err := decodeObject(w, r, data, ct, &ev); err != nil {
		return err
	}
	if ev.Name != "" && ev.Name != q.name {
		return badRequest("the eviction names %s, the URL %s", ev.Name, q.name)
	}
	opts := ev.DeleteOptions
	if opts == nil {
		opts = &metav1.DeleteOptions{}
	}
	q2 := *q
	q2.sub = ""
	if _, err := h.deleteOne(ctx, r, &q2, q.name, opts); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, success())
	return nil
}

func success() *metav1.Status {
	return &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess, Code: http.StatusCreated}
}

var _ runtime.Object = (*autoscalingv1.Scale)(nil)
