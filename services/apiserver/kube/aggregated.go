package kube

import (
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	apidiscoveryv2beta1 "k8s.io/api/apidiscovery/v2beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Aggregated discovery (KEP-3352): one request to /api and one to /apis
// give a client every group, version and resource, where the legacy way
// costs a request per group/version. kubectl ≥ 1.26 and client-go ask
// for it in Accept and read the legacy documents when the response's
// Content-Type says it is not the aggregated one.

const discoveryGroup = "apidiscovery.k8s.io"

// aggregatedDoc is one encoded APIGroupDiscoveryList, served as is.
type aggregatedDoc struct {
	body        []byte
	contentType string
}

// discoveryDocs is every discovery document, built once from the kind
// registry (which init fills and nothing changes later): the legacy
// lists and, converted from them as kube-apiserver does, the aggregated
// ones, so the two views cannot disagree.
type discoveryDocs struct {
	groups []schema.GroupVersion // core first, then by group
	legacy map[schema.GroupVersion]*metav1.APIResourceList
	// aggregated by path ("api", "apis") and version ("v2", "v2beta1").
	aggregated map[string]map[string]aggregatedDoc
	// etag is per path, the quoted SHA-512 of the v2 JSON; the same for
	// both versions, as kube-apiserver's (Vary: Accept keeps caches apart).
	etag map[string]string
}

func buildDiscovery() (*discoveryDocs, error) {
	d := &discoveryDocs{groups: groupVersions(), legacy: map[schema.GroupVersion]*metav1.APIResourceList{},
		aggregated: map[string]map[string]aggregatedDoc{}, etag: map[string]string{}}
	var core, named []apidiscoveryv2.APIGroupDiscovery
	byGroup := map[string]int{}
	for _, gv := range d.groups {
		list, _ := resourceList(gv)
		d.legacy[gv] = list
		res, err := toResourceDiscovery(gv, list.APIResources)
		if err != nil {
			return nil, err
		}
		v := apidiscoveryv2.APIVersionDiscovery{Version: gv.Version, Resources: res,
			Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
		if gv.Group == "" {
			core = append(core, apidiscoveryv2.APIGroupDiscovery{Versions: []apidiscoveryv2.APIVersionDiscovery{v}})
			continue
		}
		i, ok := byGroup[gv.Group]
		if !ok {
			i = len(named)
			byGroup[gv.Group] = i
			named = append(named, apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: gv.Group}})
		}
		named[i].Versions = append(named[i].Versions, v)
	}
	for path, items := range map[string][]apidiscoveryv2.APIGroupDiscovery{"api": core, "apis": named} {
		if items == nil {
			items = []apidiscoveryv2.APIGroupDiscovery{}
		}
		docs, etag, err := encodeAggregated(items)
		if err != nil {
			return nil, fmt.Errorf("discovery /%s: %w", path, err)
		}
		d.aggregated[path], d.etag[path] = docs, etag
	}
	return d, nil
}

// toResourceDiscovery folds a legacy list's subresource entries
// ("pods/status") into their resource, with the response kind of each
// spelled out (a client drops a subresource without one).
func toResourceDiscovery(gv schema.GroupVersion, list []metav1.APIResource) ([]apidiscoveryv2.APIResourceDiscovery, error) {
	gvk := func(r metav1.APIResource) *metav1.GroupVersionKind {
		k := metav1.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}
		if k.Group == "" && k.Version == "" {
			k.Group, k.Version = gv.Group, gv.Version
		}
		return &k
	}
	scope := func(r metav1.APIResource) apidiscoveryv2.ResourceScope {
		if r.Namespaced {
			return apidiscoveryv2.ScopeNamespace
		}
		return apidiscoveryv2.ScopeCluster
	}
	var out []apidiscoveryv2.APIResourceDiscovery
	parent := map[string]int{}
	for _, r := range list {
		if strings.Contains(r.Name, "/") {
			continue
		}
		parent[r.Name] = len(out)
		out = append(out, apidiscoveryv2.APIResourceDiscovery{Resource: r.Name, ResponseKind: gvk(r),
			Scope: scope(r), SingularResource: r.SingularName, Verbs: r.Verbs,
			ShortNames: r.ShortNames, Categories: r.Categories})
	}
	for _, r := range list {
		name, sub, ok := strings.Cut(r.Name, "/")
		if !ok {
			continue
		}
		i, ok := parent[name]
		if !ok {
			return nil, fmt.Errorf("subresource %s without its resource in %s", r.Name, gv)
		}
		if out[i].Scope != scope(r) {
			return nil, fmt.Errorf("subresource %s: scope differs from its resource's", r.Name)
		}
		out[i].Subresources = append(out[i].Subresources, apidiscoveryv2.APISubresourceDiscovery{
			Subresource: sub, ResponseKind: gvk(r), Verbs: r.Verbs})
	}
	return out, nil
}

// encodeAggregated encodes the list as v2 and as v2beta1 (the same
// fields; clients before 1.30 ask for it).
func encodeAggregated(items []apidiscoveryv2.APIGroupDiscovery) (map[string]aggregatedDoc, string, error) {
	v2 := &apidiscoveryv2.APIGroupDiscoveryList{
		TypeMeta: metav1.TypeMeta{Kind: "APIGroupDiscoveryList", APIVersion: apidiscoveryv2.SchemeGroupVersion.String()},
		Items:    items}
	b2, err := json.Marshal(v2)
	if err != nil {
		return nil, "", err
	}
	beta := &apidiscoveryv2beta1.APIGroupDiscoveryList{}
	if err := json.Unmarshal(b2, beta); err != nil {
		return nil, "", err
	}
	beta.APIVersion = apidiscoveryv2beta1.SchemeGroupVersion.String()
	bb, err := json.Marshal(beta)
	if err != nil {
		return nil, "", err
	}
	ct := func(v string) string {
		return "application/json;g=" + discoveryGroup + ";v=" + v + ";as=APIGroupDiscoveryList"
	}
	docs := map[string]aggregatedDoc{
		"v2":      {body: append(b2, '\n'), contentType: ct("v2")},
		"v2beta1": {body: append(bb, '\n'), contentType: ct("v2beta1")},
	}
	return docs, strconv.Quote(fmt.Sprintf("%X", sha512.Sum512(b2))), nil
}

// aggregatedVersion is the aggregated discovery version Accept asks for
// ("v2", "v2beta1"), or "" for the legacy document. As kube-apiserver's
// negotiation, the clause of highest q (the first among equals) that
// MiniKu can serve decides: plain JSON means legacy, and a clause for
// something else (protobuf, another as=) is passed over.
func aggregatedVersion(accept string) string {
	type clause struct {
		q       float64
		version string
	}
	var cs []clause
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "application/json", "application/*", "*/*":
		default:
			continue
		}
		q := 1.0
		if s, ok := params["q"]; ok {
			if q, err = strconv.ParseFloat(s, 64); err != nil || q <= 0 {
				continue
			}
		}
		g, v, as := params["g"], params["v"], params["as"]
		switch {
		case g == "" && v == "" && as == "":
			cs = append(cs, clause{q, ""})
		case mt == "application/json" && g == discoveryGroup && as == "APIGroupDiscoveryList" && (v == "v2" || v == "v2beta1"):
			cs = append(cs, clause{q, v})
		}
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].q > cs[j].q })
	if len(cs) == 0 {
		return ""
	}
	return cs[0].version
}

// serveDiscovery serves /api or /apis: the aggregated document when
// Accept asks for it (304 when If-None-Match holds its ETag), else legacy.
func (h *Handler) serveDiscovery(w http.ResponseWriter, r *http.Request, path string) {
	hd := w.Header()
	hd.Set("Vary", "Accept")
	v := aggregatedVersion(r.Header.Get("Accept"))
	if v == "" {
		if path == "api" {
			h.serveAPIVersions(w, r)
		} else {
			h.serveAPIGroups(w)
		}
		return
	}
	doc := h.disc.aggregated[path][v]
	etag := h.disc.etag[path]
	hd.Set("ETag", etag)
	hd.Set("Cache-Control", "public")
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd.Set("Content-Type", doc.contentType)
	hd.Set("Content-Length", strconv.Itoa(len(doc.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(doc.body)
	}
}

// etagMatches is If-None-Match's weak comparison against one strong tag:
// a list of tags, or "*".
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}
