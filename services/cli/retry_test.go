package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/miniku/miniku/schemas"
)

// `miniku scale` rides out a store leader change: the apiserver answers
// 503 with Retry-After to its first writes, then takes the scale.
func TestScaleRidesOutUnavailableStore(t *testing.T) {
	var mu sync.Mutex
	rs := schemas.ReplicaSet{ObjectMeta: schemas.ObjectMeta{Name: "web", ResourceVersion: 7}, DesiredCount: 1}
	unavailable := 2
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != "/replicasets/web" {
			http.NotFound(w, r)
			return
		}
		switch r.Method {
		case "GET":
			_ = json.NewEncoder(w).Encode(rs)
		case "PUT":
			if unavailable > 0 {
				unavailable--
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte(`{"error":"state store unavailable, retry later"}`))
				return
			}
			var in schemas.ReplicaSet
			_ = json.NewDecoder(r.Body).Decode(&in)
			rs.DesiredCount = in.DesiredCount
			rs.ResourceVersion++
			_ = json.NewEncoder(w).Encode(rs)
		}
	}))
	t.Cleanup(srv.Close)
	var stdout, stderr bytes.Buffer
	if err := cmdScale(context.Background(), []string{"rs/web", "--replicas", "3", "--server", srv.URL, "--token", "x"}, &stdout, &stderr); err != nil {
		t.Fatalf("scale: %v (stderr %q)", err, stderr.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if rs.DesiredCount != 3 || unavailable != 0 {
		t.Errorf("desiredCount %d, %d 503s left", rs.DesiredCount, unavailable)
	}
	if !strings.Contains(stderr.String(), "retrying in 1s") {
		t.Errorf("stderr %q does not say it retries", stderr.String())
	}
}
