package apiserver_test

import (
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
)

// pathCounter counts the requests a client sends, by path.
type pathCounter struct {
	mu    sync.Mutex
	paths []string
	next  http.RoundTripper
}

func (c *pathCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.paths = append(c.paths, r.URL.Path)
	c.mu.Unlock()
	return c.next.RoundTrip(r)
}

func (c *pathCounter) seen() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.paths)
}

// TestKubeAggregatedDiscoveryClientGo: client-go's discovery client gets
// every group and resource from /api and /apis alone (the aggregated
// documents), and what it gets is what the legacy per-group documents say.
func TestKubeAggregatedDiscoveryClientGo(t *testing.T) {
	e := startKube(t)
	counter := &pathCounter{}
	cfg := rest.CopyConfig(e.config)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { counter.next = rt; return counter }
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, aggLists, err := dc.ServerGroupsAndResources()
	if err != nil {
		t.Fatal(err)
	}
	if got := counter.seen(); !slices.Equal(got, []string{"/api", "/apis"}) {
		t.Errorf("client-go discovery asked %v; want only /api and /apis (the aggregated documents)", got)
	}

	legacyDC, err := discovery.NewDiscoveryClientForConfig(e.config)
	if err != nil {
		t.Fatal(err)
	}
	legacyDC.UseLegacyDiscovery = true
	_, legLists, err := legacyDC.ServerGroupsAndResources()
	if err != nil {
		t.Fatal(err)
	}
	flat := func(lists []*metav1.APIResourceList) []string {
		var out []string
		for _, l := range lists {
			for _, r := range l.APIResources {
				sing := r.SingularName
				if strings.Contains(r.Name, "/") {
					sing = "" // client-go fills a subresource's from its parent
				}
				out = append(out, strings.Join([]string{l.GroupVersion, r.Name, sing, r.Kind,
					strings.Join(slices.Sorted(slices.Values(r.Verbs)), ","), strings.Join(r.ShortNames, ","),
					strings.Join(r.Categories, ","), map[bool]string{true: "ns", false: "cluster"}[r.Namespaced]}, " "))
			}
		}
		sort.Strings(out)
		return out
	}
	agg, leg := flat(aggLists), flat(legLists)
	if !slices.Equal(agg, leg) {
		t.Errorf("aggregated and legacy discovery differ:\naggregated %q\nlegacy     %q", agg, leg)
	}
	if len(leg) < 10 || !slices.ContainsFunc(leg, func(s string) bool { return strings.HasPrefix(s, "apps/v1 replicasets/scale ") }) {
		t.Errorf("legacy discovery looks short: %q", leg)
	}
}
