package openapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/handler3"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/miniku/miniku/schemas/kinds"
	"github.com/miniku/miniku/services/apiserver/kube/openapi"
)

// served is the list of kinds, written out here so the test does
// not depend on which kinds schemas/kinds has registered yet.
func served() []openapi.Resource {
	all := []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
	v1 := func(kind, res string, namespaced bool, obj, list any, sub ...string) openapi.Resource {
		return openapi.Resource{GVK: corev1.SchemeGroupVersion.WithKind(kind), ListKind: kind + "List", Resource: res,
			Namespaced: namespaced, Verbs: all, Subresources: sub, Object: obj, List: list}
	}
	return []openapi.Resource{
		v1("Pod", "pods", true, &corev1.Pod{}, &corev1.PodList{}, "status", "binding", "eviction", "log", "exec"),
		v1("Node", "nodes", false, &corev1.Node{}, &corev1.NodeList{}, "status"),
		v1("Namespace", "namespaces", false, &corev1.Namespace{}, &corev1.NamespaceList{}, "status"),
		v1("Event", "events", true, &corev1.Event{}, &corev1.EventList{}),
		v1("ConfigMap", "configmaps", true, &corev1.ConfigMap{}, &corev1.ConfigMapList{}),
		v1("Secret", "secrets", true, &corev1.Secret{}, &corev1.SecretList{}),
		v1("ServiceAccount", "serviceaccounts", true, &corev1.ServiceAccount{}, &corev1.ServiceAccountList{}),
		{GVK: appsv1.SchemeGroupVersion.WithKind("ReplicaSet"), ListKind: "ReplicaSetList", Resource: "replicasets",
			Namespaced: true, Verbs: all, Subresources: []string{"status", "scale"}, Object: &appsv1.ReplicaSet{}, List: &appsv1.ReplicaSetList{}},
	}
}

func newServer(t *testing.T, fieldValidation bool) *httptest.Server {
	t.Helper()
	h, err := openapi.New(openapi.Config{Resources: served(), FieldValidation: fieldValidation, Version: "v1.33.0"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url, accept string) []byte {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return b
}

// hasGVK reports whether extensions carry x-kubernetes-group-version-kind
// naming gvk, decoded the way kubectl does (a JSON round trip).
func hasGVK(t *testing.T, ext spec.Extensions, gvk schema.GroupVersionKind) bool {
	t.Helper()
	var list []map[string]string
	if err := ext.GetObject("x-kubernetes-group-version-kind", &list); err != nil {
		return false
	}
	for _, g := range list {
		if g["group"] == gvk.Group && g["version"] == gvk.Version && g["kind"] == gvk.Kind {
			return true
		}
	}
	return false
}

// schemaByGVK finds a kind's schema as kubectl explain does: by the
// extension, not by name.
func schemaByGVK(t *testing.T, schemas map[string]*spec.Schema, gvk schema.GroupVersionKind) (string, *spec.Schema) {
	t.Helper()
	for name, s := range schemas {
		if hasGVK(t, s.Extensions, gvk) {
			return name, s
		}
	}
	t.Fatalf("no schema has x-kubernetes-group-version-kind %v", gvk)
	return "", nil
}

func refName(ref spec.Ref) string {
	s := ref.String()
	return s[strings.LastIndex(s, "/")+1:]
}

// resolve follows a property to its schema; v3 wraps a $ref carrying a
// description in allOf, as kube-apiserver's documents do.
func resolve(t *testing.T, s spec.Schema) string {
	t.Helper()
	if r := refName(s.Ref); r != "" {
		return r
	}
	if len(s.AllOf) == 1 {
		return refName(s.AllOf[0].Ref)
	}
	t.Fatalf("schema %+v refers to nothing", s)
	return ""
}

func TestV3PodSchemaHasContainersWithDescription(t *testing.T) {
	srv := newServer(t, false)
	var disc handler3.OpenAPIV3Discovery
	if err := json.Unmarshal(get(t, srv.URL+"/openapi/v3", ""), &disc); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"api/v1", "apis/apps/v1"} {
		if _, ok := disc.Paths[want]; !ok {
			t.Fatalf("/openapi/v3 lists %v, want %s among them", disc.Paths, want)
		}
	}
	url := disc.Paths["api/v1"].ServerRelativeURL
	if !strings.HasPrefix(url, "/openapi/v3/api/v1?hash=") {
		t.Fatalf("serverRelativeURL %q: want /openapi/v3/api/v1?hash=...", url)
	}
	var doc spec3.OpenAPI
	if err := json.Unmarshal(get(t, srv.URL+url, "application/json"), &doc); err != nil {
		t.Fatal(err)
	}
	schemas := doc.Components.Schemas
	name, pod := schemaByGVK(t, schemas, corev1.SchemeGroupVersion.WithKind("Pod"))
	if name != "io.k8s.api.core.v1.Pod" {
		t.Errorf("Pod schema named %q", name)
	}
	if pod.Description == "" {
		t.Error("Pod schema has no description")
	}
	podSpec := schemas[resolve(t, pod.Properties["spec"])]
	if podSpec == nil {
		t.Fatal("Pod.spec resolves to no schema")
	}
	containers, ok := podSpec.Properties["containers"]
	if !ok {
		t.Fatalf("PodSpec has no containers; it has %d properties", len(podSpec.Properties))
	}
	if !strings.Contains(containers.Description, "List of containers belonging to the pod") {
		t.Errorf("containers description %q", containers.Description)
	}
	if containers.Extensions["x-kubernetes-patch-merge-key"] != "name" || containers.Extensions["x-kubernetes-patch-strategy"] != "merge" {
		t.Errorf("containers extensions %v: want patch-merge-key name, strategy merge", containers.Extensions)
	}
	if containers.Extensions["x-kubernetes-list-type"] != "map" {
		t.Errorf("containers list-type %v, want map", containers.Extensions["x-kubernetes-list-type"])
	}
	if !contains(podSpec.Required, "containers") {
		t.Errorf("PodSpec required %v: want containers", podSpec.Required)
	}
	if _, ok := schemas["io.k8s.api.apps.v1.ReplicaSet"]; ok {
		t.Error("api/v1 document holds apps/v1 ReplicaSet")
	}

	// The paths: the pod's PATCH carries its GVK (kubectl looks it up there).
	item := doc.Paths.Paths["/api/v1/namespaces/{namespace}/pods/{name}"]
	if item == nil || item.Patch == nil {
		t.Fatalf("no PATCH /api/v1/namespaces/{namespace}/pods/{name}; paths: %d", len(doc.Paths.Paths))
	}
	if !hasGVKObject(t, item.Patch.Extensions, corev1.SchemeGroupVersion.WithKind("Pod")) {
		t.Errorf("pod PATCH extensions %v", item.Patch.Extensions)
	}
	if item.Patch.OperationId != "patchCoreV1NamespacedPod" {
		t.Errorf("operation id %q", item.Patch.OperationId)
	}
	if hasParam(item.Patch.Parameters, "fieldValidation") {
		t.Error("fieldValidation advertised while Config.FieldValidation is false")
	}

	var apps spec3.OpenAPI
	if err := json.Unmarshal(get(t, srv.URL+disc.Paths["apis/apps/v1"].ServerRelativeURL, "application/json"), &apps); err != nil {
		t.Fatal(err)
	}
	schemaByGVK(t, apps.Components.Schemas, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))
	schemaByGVK(t, apps.Components.Schemas, schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"})
	if apps.Paths.Paths["/apis/apps/v1/namespaces/{namespace}/replicasets/{name}/scale"] == nil {
		t.Error("no replicasets/scale path")
	}
}

func TestV3AdvertisesFieldValidationWhenServerDoesIt(t *testing.T) {
	srv := newServer(t, true)
	var doc spec3.OpenAPI
	if err := json.Unmarshal(get(t, srv.URL+"/openapi/v3/api/v1", "application/json"), &doc); err != nil {
		t.Fatal(err)
	}
	item := doc.Paths.Paths["/api/v1/namespaces/{namespace}/pods/{name}"]
	if item == nil || item.Patch == nil || !hasParam(item.Patch.Parameters, "fieldValidation") {
		t.Fatal("pod PATCH has no fieldValidation parameter")
	}
}

func hasGVKObject(t *testing.T, ext spec.Extensions, gvk schema.GroupVersionKind) bool {
	t.Helper()
	var g map[string]string
	if err := ext.GetObject("x-kubernetes-group-version-kind", &g); err != nil {
		return false
	}
	return g["group"] == gvk.Group && g["version"] == gvk.Version && g["kind"] == gvk.Kind
}

func hasParam(ps []*spec3.Parameter, name string) bool {
	for _, p := range ps {
		if p.Name == name && p.In == "query" {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestV2JSONAndProtobuf(t *testing.T) {
	srv := newServer(t, false)
	var sw spec.Swagger
	if err := json.Unmarshal(get(t, srv.URL+"/openapi/v2", "application/json"), &sw); err != nil {
		t.Fatal(err)
	}
	pod, ok := sw.Definitions["io.k8s.api.core.v1.Pod"]
	if !ok {
		t.Fatalf("no io.k8s.api.core.v1.Pod among %d definitions", len(sw.Definitions))
	}
	if !hasGVK(t, pod.Extensions, corev1.SchemeGroupVersion.WithKind("Pod")) {
		t.Errorf("Pod extensions %v", pod.Extensions)
	}
	podSpec := sw.Definitions[refName(pod.Properties["spec"].Ref)]
	if !strings.Contains(podSpec.Properties["containers"].Description, "List of containers") {
		t.Errorf("v2 PodSpec.containers description %q", podSpec.Properties["containers"].Description)
	}
	if sw.Paths.Paths["/apis/apps/v1/namespaces/{namespace}/replicasets"].Post == nil {
		t.Error("v2 has no POST replicasets")
	}

	// kubectl's v2 client asks for protobuf; decode it as kubectl does.
	b := get(t, srv.URL+"/openapi/v2", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
	var doc openapi_v2.Document
	if err := proto.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, d := range doc.GetDefinitions().GetAdditionalProperties() {
		if d.GetName() != "io.k8s.api.core.v1.Pod" {
			continue
		}
		found = true
		var gvkExt bool
		for _, e := range d.GetValue().GetVendorExtension() {
			if e.GetName() == "x-kubernetes-group-version-kind" && strings.Contains(e.GetValue().GetYaml(), "kind: Pod") {
				gvkExt = true
			}
		}
		if !gvkExt {
			t.Errorf("protobuf Pod has no GVK extension: %v", d.GetValue().GetVendorExtension())
		}
		if d.GetValue().GetProperties() == nil {
			t.Error("protobuf Pod has no properties")
		}
	}
	if !found {
		t.Error("protobuf document has no io.k8s.api.core.v1.Pod")
	}
}

func TestNewRefusesBadResources(t *testing.T) {
	good := served()[0]
	for name, mut := range map[string]func(r *openapi.Resource){
		"unknown verb":        func(r *openapi.Resource) { r.Verbs = []string{"frobnicate"} },
		"unknown subresource": func(r *openapi.Resource) { r.Subresources = []string{"attach-ish"} },
		"not a k8s.io/api":    func(r *openapi.Resource) { r.Object = &struct{}{} },
		"no list kind":        func(r *openapi.Resource) { r.ListKind = "" },
	} {
		r := good
		mut(&r)
		if _, err := openapi.New(openapi.Config{Resources: []openapi.Resource{r}}); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
	if _, err := openapi.New(openapi.Config{}); err == nil {
		t.Error("New accepted no resources")
	}
}

// Every kind schemas/kinds declares gets documents: a new verb or
// subresource this package does not know fails here, not at the first
// kubectl explain.
func TestDeclaredKinds(t *testing.T) {
	rs := openapi.FromKinds(kinds.All())
	if len(rs) == 0 {
		t.Fatal("no kinds declared")
	}
	h, err := openapi.New(openapi.Config{Resources: rs, FieldValidation: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	var disc handler3.OpenAPIV3Discovery
	if err := json.Unmarshal(get(t, srv.URL+"/openapi/v3", ""), &disc); err != nil {
		t.Fatal(err)
	}
	docs := map[string]*spec3.OpenAPI{}
	for path, gv := range disc.Paths {
		var doc spec3.OpenAPI
		if err := json.Unmarshal(get(t, srv.URL+gv.ServerRelativeURL, "application/json"), &doc); err != nil {
			t.Fatal(err)
		}
		docs[path] = &doc
	}
	for _, r := range rs {
		gv := r.GVK.GroupVersion()
		path := "apis/" + gv.String()
		if gv.Group == "" {
			path = "api/" + gv.Version
		}
		doc := docs[path]
		if doc == nil {
			t.Errorf("%s: no /openapi/v3/%s", r.Resource, path)
			continue
		}
		schemaByGVK(t, doc.Components.Schemas, r.GVK)
	}
	get(t, srv.URL+"/openapi/v2", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
}
