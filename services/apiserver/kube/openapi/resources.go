package openapi

import (
	"fmt"
	"strings"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/util"

	"github.com/miniku/miniku/schemas/kinds"
)

// Resource is one served resource, as the documents describe it: its
// kind, its paths and the verbs that have operations on them.
type Resource struct {
	GVK        schema.GroupVersionKind
	ListKind   string
	Resource   string // plural, lower case: "pods"
	Namespaced bool
	// Verbs are Kubernetes' verbs (get list watch create update patch delete
	// deletecollection); only these get operations.
	Verbs []string
	// Subresources by name: status, scale, binding, eviction, log, exec,
	// attach, portforward, finalize.
	Subresources []string
	// Object and List are zero values of the k8s.io/api types (&corev1.Pod{},
	// &corev1.PodList{}): their OpenAPI model names pick the schemas.
	Object, List any
}

// FromKinds describes every declared kind, so that a kind added to
// schemas/kinds gets its paths with nothing written here.
func FromKinds(ks []kinds.Kind) []Resource {
	out := make([]Resource, 0, len(ks))
	for _, k := range ks {
		info := k.Info()
		out = append(out, Resource{
			GVK:          info.GVK(),
			ListKind:     info.ListKind,
			Resource:     info.Resource,
			Namespaced:   info.Namespaced,
			Verbs:        info.Verbs,
			Subresources: info.Subresources,
			Object:       k.NewKube(),
			List:         k.NewKubeList(),
		})
	}
	return out
}

// subresource says what a subresource's operations carry. Their bodies are
// other kinds (Scale, Binding, Eviction) or, for log and exec, plain text.
type subresource struct {
	body    any // nil: the parent kind
	gvk     schema.GroupVersionKind
	methods []string // HTTP methods, with the action each one is
	actions []string
}

var (
	scaleGVK    = autoscalingv1.SchemeGroupVersion.WithKind("Scale")
	bindingGVK  = corev1.SchemeGroupVersion.WithKind("Binding")
	evictionGVK = policyv1.SchemeGroupVersion.WithKind("Eviction")
)

func subresourceOf(name string, parent Resource) (subresource, error) {
	switch name {
	case "status":
		return subresource{gvk: parent.GVK, methods: []string{"GET", "PUT", "PATCH"}, actions: []string{"get", "put", "patch"}}, nil
	case "scale":
		return subresource{body: &autoscalingv1.Scale{}, gvk: scaleGVK, methods: []string{"GET", "PUT", "PATCH"}, actions: []string{"get", "put", "patch"}}, nil
	case "binding":
		return subresource{body: &corev1.Binding{}, gvk: bindingGVK, methods: []string{"POST"}, actions: []string{"post"}}, nil
	case "eviction":
		return subresource{body: &policyv1.Eviction{}, gvk: evictionGVK, methods: []string{"POST"}, actions: []string{"post"}}, nil
	case "log":
		return subresource{body: "", methods: []string{"GET"}, actions: []string{"get"}}, nil
	case "exec", "attach", "portforward":
		return subresource{body: "", methods: []string{"GET", "POST"}, actions: []string{"connect", "connect"}}, nil
	case "finalize": // namespaces: the finalizers the namespace controller clears
		return subresource{gvk: parent.GVK, methods: []string{"PUT"}, actions: []string{"put"}}, nil
	}
	return subresource{}, fmt.Errorf("openapi: %s/%s: unknown subresource %q", parent.GVK.GroupVersion(), parent.Resource, name)
}

// groupPath is the path a group version is served under, without the
// leading slash, as the /openapi/v3 discovery names it: "api/v1",
// "apis/apps/v1".
func groupPath(gv schema.GroupVersion) string {
	if gv.Group == "" {
		return "api/" + gv.Version
	}
	return "apis/" + gv.Group + "/" + gv.Version
}

// modelName is the name kube-openapi files a type's schema under
// ("io.k8s.api.core.v1.Pod").
func modelName(v any) string { return util.GetCanonicalTypeName(v) }

// operationPrefix is the group part of kube-apiserver's operation ids
// ("CoreV1", "AppsV1"), kept identical so that generated clients and
// tools that key on them see the same names.
func operationPrefix(gv schema.GroupVersion) string {
	g := gv.Group
	if g == "" {
		g = "core"
	}
	g = strings.Split(g, ".")[0]
	return upperFirst(g) + upperFirst(gv.Version)
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// tag is kube-apiserver's tag of a group version's operations ("core_v1").
func tag(gv schema.GroupVersion) string {
	g := gv.Group
	if g == "" {
		g = "core"
	}
	return strings.ReplaceAll(strings.Split(g, ".")[0], "-", "_") + "_" + gv.Version
}
