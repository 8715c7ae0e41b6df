package kube

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestParseResource(t *testing.T) {
	core := schema.GroupVersion{Version: "v1"}
	apps := schema.GroupVersion{Group: "apps", Version: "v1"}
	for _, tc := range []struct {
		gv                 schema.GroupVersion
		path               string
		ok                 bool
		res, ns, name, sub string
	}{
		{core, "pods", true, "pods", "", "", ""},
		{core, "namespaces/default/pods", true, "pods", "default", "", ""},
		{core, "namespaces/default/pods/a", true, "pods", "default", "a", ""},
		{core, "namespaces/default/pods/a/status", true, "pods", "default", "a", "status"},
		{core, "namespaces/default/pods/a/bogus", false, "", "", "", ""},
		{core, "namespaces/default", true, "namespaces", "", "default", ""},
		{core, "namespaces/default/status", true, "namespaces", "", "default", "status"},
		{core, "nodes/n1", true, "nodes", "", "n1", ""},
		{core, "replicasets", false, "", "", "", ""}, // apps, not core
		{apps, "namespaces/default/replicasets/r/scale", true, "replicasets", "default", "r", "scale"},
		{core, "widgets", false, "", "", "", ""},
		{core, "pods/a/b/c", false, "", "", "", ""},
	} {
		q, ok := parseResource(tc.gv, strings.Split(tc.path, "/"))
		if ok != tc.ok {
			t.Errorf("%s %s: ok %v, want %v", tc.gv, tc.path, ok, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		if q.info.Resource != tc.res || q.namespace != tc.ns || q.name != tc.name || q.sub != tc.sub {
			t.Errorf("%s %s: %s ns=%q name=%q sub=%q", tc.gv, tc.path, q.info.Resource, q.namespace, q.name, q.sub)
		}
	}
}

func TestContinueToken(t *testing.T) {
	tok := continueToken{Rev: 42, After: "pod-7"}.String()
	got, err := parseContinue(tok)
	if err != nil || got.Rev != 42 || got.After != "pod-7" {
		t.Errorf("round trip: %+v, %v", got, err)
	}
	for _, bad := range []string{"", "x", "e30", "!!!"} {
		if _, err := parseContinue(bad); err == nil {
			t.Errorf("parseContinue(%q) accepted", bad)
		}
	}
}

func TestApplyPatch(t *testing.T) {
	cur := []byte(`{"metadata":{"name":"p","labels":{"a":"1"}},"spec":{"containers":[{"name":"c","image":"x"},{"name":"d","image":"y"}]}}`)
	for _, tc := range []struct {
		ct, patch, want string
	}{
		{"application/merge-patch+json", `{"metadata":{"labels":{"b":"2"}}}`, `"labels":{"a":"1","b":"2"}`},
		{"application/json-patch+json", `[{"op":"remove","path":"/metadata/labels/a"}]`, `"labels":{}`},
		// Strategic: containers merge by name instead of being replaced.
		{"application/strategic-merge-patch+json", `{"spec":{"containers":[{"name":"d","image":"z"}]}}`, `{"image":"x","name":"c"},{"image":"z","name":"d"}`},
	} {
		out, err := applyPatch(tc.ct, cur, []byte(tc.patch), &corev1.Pod{})
		if err != nil {
			t.Errorf("%s: %v", tc.ct, err)
			continue
		}
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: %s does not contain %s", tc.ct, out, tc.want)
		}
	}
	for _, tc := range []struct{ ct, patch string }{
		{"application/json-patch+json", `{"not":"a list"}`},
		{"application/merge-patch+json", `[1,`},
		{"application/strategic-merge-patch+json", `{{`},
		{"text/plain", `{}`},
	} {
		if _, err := applyPatch(tc.ct, cur, []byte(tc.patch), &corev1.Pod{}); err == nil {
			t.Errorf("%s %s: accepted", tc.ct, tc.patch)
		}
	}
	if !patchNamesRV("application/merge-patch+json", []byte(`{"metadata":{"resourceVersion":"3"}}`)) ||
		patchNamesRV("application/merge-patch+json", []byte(`{"metadata":{"labels":{}}}`)) ||
		!patchNamesRV("application/json-patch+json", []byte(`[{"op":"replace","path":"/metadata/resourceVersion","value":"3"}]`)) {
		t.Error("patchNamesRV")
	}
}

func TestNegotiation(t *testing.T) {
	req := func(accept string) *http.Request {
		r := httptest.NewRequest("GET", "/api/v1/pods", nil)
		r.Header.Set("Accept", accept)
		return r
	}
	if !wantsTable(req("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")) {
		t.Error("kubectl get's Accept is not a Table request")
	}
	if wantsTable(req("application/json")) || wantsTable(req("application/json,application/json;as=Table;v=v1;g=meta.k8s.io")) {
		t.Error("plain JSON taken for a Table")
	}
	if checkAccept(req("application/vnd.kubernetes.protobuf")) == nil {
		t.Error("protobuf-only accepted")
	}
	for _, ok := range []string{"", "*/*", "application/json", "application/vnd.kubernetes.protobuf, */*"} {
		if err := checkAccept(req(ok)); err != nil {
			t.Errorf("Accept %q refused: %v", ok, err)
		}
	}
	for p, want := range map[string]bool{"/api": true, "/api/v1/pods": true, "/apis": true, "/version": true,
		"/openapi/v3": true, "/pods": false, "/apix": false, "/versions": false} {
		if IsPath(p) != want {
			t.Errorf("IsPath(%q) = %v", p, !want)
		}
	}
}

func TestDiscoveryLists(t *testing.T) {
	l, ok := resourceList(schema.GroupVersion{Version: "v1"})
	if !ok {
		t.Fatal("no core list")
	}
	data, _ := json.Marshal(l)
	for _, want := range []string{`"name":"pods"`, `"name":"pods/status"`, `"name":"pods/eviction"`, `"singularName":"pod"`, `"shortNames":["po"]`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("/api/v1 lacks %s", want)
		}
	}
	if _, ok := resourceList(schema.GroupVersion{Group: "nope", Version: "v1"}); ok {
		t.Error("a list for an unserved group")
	}
}
