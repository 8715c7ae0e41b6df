package kube

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/miniku/miniku/schemas"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// cachePods are pods whose rows have every kind of cell: counted ages
// ("3 (10m ago)" restarts), fixed strings and numbers.
func cachePods(t0 time.Time) []item {
	var out []item
	for i := range 5 {
		p := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: fmt.Sprintf("p%d", i), UID: fmt.Sprintf("u%d", i),
			ResourceVersion: uint64(10 + i), CreatedAt: t0.Add(time.Duration(i) * time.Minute), Labels: map[string]string{"app": "x"}},
			PodSpec: schemas.PodSpec{Image: "busybox", Command: []string{"sleep", "1"}}}
		if i > 0 {
			p.NodeName, p.Status = "node-1", schemas.PodRunning
		}
		if i == 2 {
			fin, code := t0.Add(10*time.Minute), 1
			p.RestartCount, p.ExitCode, p.FinishedAt = 3, &code, &fin
		}
		out = append(out, item{obj: p})
	}
	return out
}

// tableFrom is the Table as the uncached path (h.table) builds it, the
// reference the cached rows must equal.
func tableFrom(t *testing.T, h *Handler, q *request, items []item, query string) any {
	t.Helper()
	objs := make([]runtime.Object, len(items))
	for i, it := range items {
		k, err := h.toKube(q, it.obj)
		if err != nil {
			t.Fatal(err)
		}
		objs[i] = k
	}
	tab, err := h.table(httptest.NewRequest("GET", "/api/v1/namespaces/default/pods"+query, nil), q, objs, "7", "")
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(tab)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func cachedTable(t *testing.T, h *Handler, q *request, items []item, query string, all bool) any {
	t.Helper()
	w := httptest.NewRecorder()
	if err := h.writeTableList(w, httptest.NewRequest("GET", "/api/v1/namespaces/default/pods"+query, nil), q, items, "7", "", all); err != nil {
		t.Fatal(err)
	}
	if cl := w.Header().Get("Content-Length"); cl != fmt.Sprint(w.Body.Len()) {
		t.Errorf("Content-Length %s, body %d bytes", cl, w.Body.Len())
	}
	var v any
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("table body: %v\n%s", err, w.Body.String())
	}
	return v
}

// Rows served from the cache are the rows the kind's Table makes, for
// each includeObject; as time passes their ages move on (only the
// objects are cached, not the time); a new revision gets a new row; and
// a full list forgets the objects it no longer has.
func TestCachedTableMatchesTable(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := t0.Add(time.Hour)
	h := New(Config{Now: func() time.Time { return now }})
	q, ok := parseResource(schema.GroupVersion{Version: "v1"}, strings.Split("namespaces/default/pods", "/"))
	if !ok {
		t.Fatal("pods not parsed")
	}
	items := cachePods(t0)
	for round := range 2 { // the second from the cache
		for _, query := range []string{"", "?includeObject=None", "?includeObject=Metadata", "?includeObject=Object"} {
			if got, want := cachedTable(t, h, q, items, query, false), tableFrom(t, h, q, items, query); !reflect.DeepEqual(got, want) {
				t.Errorf("round %d %q:\n got %v\nwant %v", round, query, got, want)
			}
		}
	}
	cells := func(v any, row int) []any {
		return v.(map[string]any)["rows"].([]any)[row].(map[string]any)["cells"].([]any)
	}
	before := cells(cachedTable(t, h, q, items, "", false), 2)
	now = now.Add(5 * time.Hour)
	after := cells(cachedTable(t, h, q, items, "", false), 2)
	if before[4] == after[4] || before[3] == after[3] {
		t.Errorf("ages did not move on: age %v then %v, restarts %v then %v", before[4], after[4], before[3], after[3])
	}
	if want := cells(tableFrom(t, h, q, items, ""), 2); !reflect.DeepEqual(after, want) {
		t.Errorf("after 5 h: %v, want %v", after, want)
	}

	p := *items[0].obj.(*schemas.Pod)
	p.ResourceVersion, p.NodeName, p.Status = 99, "node-2", schemas.PodRunning
	items[0] = item{obj: &p}
	if got := cells(cachedTable(t, h, q, items, "", false), 0); got[2] != "Running" || got[6] != "node-2" {
		t.Errorf("row of a new revision: %v", got)
	}

	c := h.wire("pods")
	if n := len(c.m); n != len(items) {
		t.Fatalf("cache holds %d objects, want %d", n, len(items))
	}
	cachedTable(t, h, q, items[:2], "", true)
	if n := len(c.m); n != 2 {
		t.Errorf("after a full list of 2: cache holds %d objects", n)
	}
	h.Forget("pods", "p1")
	if _, ok := c.m["p1"]; ok || len(c.m) != 1 {
		t.Errorf("after Forget: %d objects", len(c.m))
	}
}
