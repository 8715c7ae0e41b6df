package kube

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	apidiscoveryv2beta1 "k8s.io/api/apidiscovery/v2beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"

	"github.com/miniku/miniku/schemas/kinds"
)

const (
	acceptV2     = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
	acceptV2beta = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
)

func discoveryGet(t *testing.T, h http.Handler, path, accept, inm string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest("GET", path, nil)
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	if inm != "" {
		r.Header.Set("If-None-Match", inm)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// aggregated fetches /api and /apis as the aggregated document of
// version v and returns them as client-go's discovery client sees them.
func aggregated(t *testing.T, h http.Handler, accept, v string) map[schema.GroupVersion]*metav1.APIResourceList {
	t.Helper()
	var all apidiscoveryv2.APIGroupDiscoveryList
	for _, path := range []string{"/api", "/apis"} {
		w := discoveryGet(t, h, path, accept, "")
		if w.Code != 200 {
			t.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
		}
		want := "application/json;g=apidiscovery.k8s.io;v=" + v + ";as=APIGroupDiscoveryList"
		if ct := w.Header().Get("Content-Type"); ct != want {
			t.Fatalf("GET %s (Accept %s): Content-Type %q, want %q", path, accept, ct, want)
		}
		isV2, err := discovery.ContentTypeIsGVK(w.Header().Get("Content-Type"), apidiscoveryv2.SchemeGroupVersion.WithKind("APIGroupDiscoveryList"))
		if v == "v2" && (err != nil || !isV2) {
			t.Errorf("client-go does not take %s's Content-Type for v2: %v", path, err)
		}
		if w.Header().Get("ETag") == "" || w.Header().Get("Vary") != "Accept" {
			t.Errorf("GET %s: ETag %q Vary %q", path, w.Header().Get("ETag"), w.Header().Get("Vary"))
		}
		var list apidiscoveryv2.APIGroupDiscoveryList
		if v == "v2beta1" {
			var beta apidiscoveryv2beta1.APIGroupDiscoveryList
			if err := json.Unmarshal(w.Body.Bytes(), &beta); err != nil {
				t.Fatal(err)
			}
			if beta.APIVersion != "apidiscovery.k8s.io/v2beta1" || beta.Kind != "APIGroupDiscoveryList" {
				t.Errorf("GET %s v2beta1: %s %s", path, beta.APIVersion, beta.Kind)
			}
			data, _ := json.Marshal(beta)
			if err := json.Unmarshal(data, &list); err != nil {
				t.Fatal(err)
			}
		} else if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil {
			t.Fatal(err)
		} else if list.APIVersion != "apidiscovery.k8s.io/v2" || list.Kind != "APIGroupDiscoveryList" {
			t.Errorf("GET %s v2: %s %s", path, list.APIVersion, list.Kind)
		}
		for _, g := range list.Items {
			if (path == "/api") != (g.Name == "") {
				t.Errorf("GET %s lists group %q", path, g.Name)
			}
		}
		all.Items = append(all.Items, list.Items...)
	}
	_, byGV, failed := discovery.SplitGroupsAndResources(all)
	if len(failed) > 0 {
		t.Errorf("stale group versions: %v", failed)
	}
	return byGV
}

// legacy fetches the per-group/version documents.
func legacy(t *testing.T, h http.Handler) map[schema.GroupVersion]*metav1.APIResourceList {
	t.Helper()
	out := map[schema.GroupVersion]*metav1.APIResourceList{}
	var groups metav1.APIGroupList
	w := discoveryGet(t, h, "/apis", "application/json", "")
	if ct := w.Header().Get("Content-Type"); w.Code != 200 || ct != "application/json" {
		t.Fatalf("legacy /apis: %d %q", w.Code, ct)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &groups); err != nil || groups.Kind != "APIGroupList" {
		t.Fatalf("legacy /apis: %v %s", err, w.Body)
	}
	paths := []string{"/api/v1"}
	for _, g := range groups.Groups {
		for _, v := range g.Versions {
			paths = append(paths, "/apis/"+v.GroupVersion)
		}
	}
	for _, p := range paths {
		var l metav1.APIResourceList
		w := discoveryGet(t, h, p, "", "")
		if err := json.Unmarshal(w.Body.Bytes(), &l); err != nil || w.Code != 200 {
			t.Fatalf("legacy %s: %d %v", p, w.Code, err)
		}
		gv, _ := schema.ParseGroupVersion(l.GroupVersion)
		out[gv] = &l
	}
	return out
}

// norm is an entry as both documents must agree on: kube-apiserver's
// legacy lists leave group and version empty for the list's own, and give
// subresources no singular name (client-go fills the parent's).
func norm(gv schema.GroupVersion, r metav1.APIResource) metav1.APIResource {
	if r.Group == "" && r.Version == "" {
		r.Group, r.Version = gv.Group, gv.Version
	}
	if strings.Contains(r.Name, "/") {
		r.SingularName = ""
	}
	r.Verbs = slices.Sorted(slices.Values(r.Verbs))
	if len(r.ShortNames) == 0 {
		r.ShortNames = nil
	}
	if len(r.Categories) == 0 {
		r.Categories = nil
	}
	return r
}

func TestAggregatedDiscoveryMatchesLegacy(t *testing.T) {
	h := New(Config{})
	leg := legacy(t, h)
	for _, tc := range []struct{ accept, v string }{
		{acceptV2 + ",application/json", "v2"},                                 // client-go 0.37
		{acceptV2 + "," + acceptV2beta + ",application/json", "v2"},            // kubectl 1.30–1.33
		{acceptV2 + ";profile=nopeer," + acceptV2 + ",application/json", "v2"}, // NoPeerDiscovery
		{"application/vnd.kubernetes.protobuf;" + acceptV2[len("application/json;"):] + "," + acceptV2beta + ",application/json", "v2beta1"},
	} {
		agg := aggregated(t, h, tc.accept, tc.v)
		if len(agg) != len(leg) {
			t.Errorf("%s: %d group versions, legacy %d", tc.accept, len(agg), len(leg))
		}
		for gv, l := range leg {
			a, ok := agg[gv]
			if !ok {
				t.Errorf("%s: %s missing", tc.accept, gv)
				continue
			}
			want := map[string]metav1.APIResource{}
			for _, r := range l.APIResources {
				want[r.Name] = norm(gv, r)
			}
			got := map[string]metav1.APIResource{}
			for _, r := range a.APIResources {
				got[r.Name] = norm(gv, r)
			}
			for name, w := range want {
				g, ok := got[name]
				if !ok {
					t.Errorf("%s: %s/%s missing from the aggregated document", tc.accept, gv, name)
					continue
				}
				wj, _ := json.Marshal(w)
				gj, _ := json.Marshal(g)
				if string(wj) != string(gj) {
					t.Errorf("%s: %s/%s:\naggregated %s\nlegacy     %s", tc.accept, gv, name, gj, wj)
				}
			}
			for name := range got {
				if _, ok := want[name]; !ok {
					t.Errorf("%s: %s/%s only in the aggregated document", tc.accept, gv, name)
				}
			}
		}
		// Every declared kind and subresource is there.
		for _, k := range kinds.All() {
			in := k.Info()
			l := agg[in.GroupVersion]
			names := map[string]bool{}
			if l != nil {
				for _, r := range l.APIResources {
					names[r.Name] = true
				}
			}
			for _, n := range append([]string{in.Resource}, prefixed(in.Resource, in.Subresources)...) {
				if !names[n] {
					t.Errorf("%s: %s %s not in the aggregated document", tc.accept, in.GroupVersion, n)
				}
			}
		}
	}
}

func prefixed(res string, subs []string) []string {
	var out []string
	for _, s := range subs {
		out = append(out, res+"/"+s)
	}
	return out
}

func TestAggregatedDiscoveryETag(t *testing.T) {
	h := New(Config{})
	for _, path := range []string{"/api", "/apis"} {
		w := discoveryGet(t, h, path, acceptV2, "")
		etag := w.Header().Get("ETag")
		if w.Code != 200 || len(etag) < 3 || etag[0] != '"' {
			t.Fatalf("GET %s: %d ETag %q", path, w.Code, etag)
		}
		if again := discoveryGet(t, New(Config{}), path, acceptV2, ""); again.Header().Get("ETag") != etag || again.Body.String() != w.Body.String() {
			t.Errorf("GET %s: a second server's document differs (ETag %q vs %q)", path, again.Header().Get("ETag"), etag)
		}
		nm := discoveryGet(t, h, path, acceptV2, etag)
		if nm.Code != http.StatusNotModified || nm.Body.Len() != 0 || nm.Header().Get("ETag") != etag {
			t.Errorf("GET %s If-None-Match %s: %d, body %d bytes, ETag %q; want 304", path, etag, nm.Code, nm.Body.Len(), nm.Header().Get("ETag"))
		}
		if nm := discoveryGet(t, h, path, acceptV2, `"other", `+etag); nm.Code != http.StatusNotModified {
			t.Errorf("GET %s If-None-Match a list holding the tag: %d, want 304", path, nm.Code)
		}
		if ok := discoveryGet(t, h, path, acceptV2, `"stale"`); ok.Code != 200 || ok.Body.Len() == 0 {
			t.Errorf("GET %s If-None-Match a stale tag: %d, want 200 with the document", path, ok.Code)
		}
		// The legacy document is not the aggregated one's tag.
		if leg := discoveryGet(t, h, path, "application/json", etag); leg.Code != 200 || leg.Header().Get("ETag") != "" {
			t.Errorf("GET %s legacy with If-None-Match: %d ETag %q", path, leg.Code, leg.Header().Get("ETag"))
		}
	}
	if discoveryGet(t, h, "/api", acceptV2, "").Header().Get("ETag") == discoveryGet(t, h, "/apis", acceptV2, "").Header().Get("ETag") {
		t.Error("/api and /apis share an ETag")
	}
}

func TestAggregatedNegotiation(t *testing.T) {
	for accept, want := range map[string]string{
		"":                                   "",
		"application/json":                   "",
		"*/*":                                "",
		acceptV2:                             "v2",
		acceptV2beta:                         "v2beta1",
		acceptV2 + ";profile=nopeer":         "v2",
		"application/json," + acceptV2:       "", // JSON first: legacy, as kube-apiserver
		"application/json;q=0.5," + acceptV2: "v2",
		acceptV2 + ";q=0.1," + acceptV2beta:  "v2beta1",
		"application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList": "",
		"application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList,application/json":   "",
		"application/json;as=Table;v=v1;g=meta.k8s.io," + acceptV2:                                "v2",
	} {
		if got := aggregatedVersion(accept); got != want {
			t.Errorf("aggregatedVersion(%q) = %q, want %q", accept, got, want)
		}
	}
}
