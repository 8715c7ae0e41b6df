package apiserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
)

// A 503 tells the client when to come back (Retry-After), so that
// clients retry instead of giving up.
func TestRetryAfterOn503(t *testing.T) {
	e := mustEnv(t)
	e.ns.Shutdown()
	e.ns.WaitForShutdown()
	bustest.Eventually(t, 10*time.Second, func() error {
		r := e.do(http.MethodGet, "/healthz", "", "")
		if r.status != http.StatusServiceUnavailable {
			return fmt.Errorf("healthz %d with NATS down", r.status)
		}
		if got := r.header.Get("Retry-After"); got != "1" {
			t.Fatalf("503 with Retry-After %q, want 1", got)
		}
		return nil
	})
}

// A watch from a revision the store has not reached answers Kubernetes'
// "Too large resource version" (504, reason Timeout, cause
// ResourceVersionTooLarge, a retry hint) instead of a 200 that never
// delivers anything; an unparsable one is a 400.
func TestWatchFromFutureResourceVersion(t *testing.T) {
	for _, cached := range []bool{false, true} {
		e := newEnv(t, "", cached)
		e.json(http.MethodPost, "/pods", `{"name":"p","image":"busybox"}`, http.StatusCreated, nil)
		last := e.lastSeqs()["pods"]
		for _, rv := range []string{"18446744073709551615", fmt.Sprint(last + 1_000_000_000)} {
			r := e.do(http.MethodGet, "/pods?watch=true&resourceVersion="+rv, "", "")
			if r.status != http.StatusGatewayTimeout {
				t.Fatalf("watch from %s: status %d, want 504: %s", rv, r.status, r.body)
			}
			var body struct {
				Error   string `json:"error"`
				Reason  string `json:"reason"`
				Details struct {
					Causes []struct {
						Reason string `json:"reason"`
					} `json:"causes"`
					RetryAfterSeconds int `json:"retryAfterSeconds"`
				} `json:"details"`
			}
			if err := json.Unmarshal(r.body, &body); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(body.Error, "Too large resource version") || body.Reason != "Timeout" ||
				len(body.Details.Causes) != 1 || body.Details.Causes[0].Reason != "ResourceVersionTooLarge" || body.Details.RetryAfterSeconds != 1 {
				t.Errorf("watch from %s: body %s", rv, r.body)
			}
			if r.header.Get("Retry-After") != "1" {
				t.Errorf("watch from %s: Retry-After %q", rv, r.header.Get("Retry-After"))
			}
		}
		if r := e.do(http.MethodGet, "/pods?watch=true&resourceVersion=18446744073709551616", "", ""); r.status != http.StatusBadRequest {
			t.Errorf("unparsable resourceVersion: status %d, want 400", r.status)
		}
	}
}

// A watch resuming from below the bucket's compaction would miss the
// deletions compacted away: 410 Gone (list again), as in Kubernetes.
func TestWatchResumeBelowCompactionIsGone(t *testing.T) {
	e := mustEnv(t)
	e.json(http.MethodPost, "/pods", `{"name":"a","image":"busybox"}`, http.StatusCreated, nil)
	first := e.lastSeqs()["pods"]
	e.json(http.MethodDelete, "/pods/a?gracePeriodSeconds=0", "", http.StatusOK, nil)
	e.json(http.MethodPost, "/pods", `{"name":"b","image":"busybox"}`, http.StatusCreated, nil)
	last := e.lastSeqs()["pods"]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := e.conn.Pods.Compact(ctx, last)
	if err != nil || n != 1 {
		t.Fatalf("Compact = %d, %v; want the one delete marker removed", n, err)
	}
	r := e.do(http.MethodGet, fmt.Sprintf("/pods?watch=true&resourceVersion=%d", first), "", "")
	if r.status != http.StatusGone {
		t.Fatalf("resume from %d below compaction %d: status %d, want 410: %s", first, last, r.status, r.body)
	}
	// From the compacted revision on, nothing is missing: the watch runs.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	req, _ := http.NewRequestWithContext(ctx2, http.MethodGet, fmt.Sprintf("%s/pods?watch=true&resourceVersion=%d", e.url, last), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("resume from the compacted revision: status %d", resp.StatusCode)
	}
}

// A value that does not decode (written around the API) cannot be shown,
// but DELETE removes it instead of answering 500.
func TestDeleteUndecodableValue(t *testing.T) {
	e := mustEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.conn.Pods.KV().Put(ctx, "junk", []byte{0xc1, 0x00}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.conn.ReplicaSets.KV().Put(ctx, "junk", []byte("not msgpack")); err != nil {
		t.Fatal(err)
	}
	if r := e.do(http.MethodGet, "/pods/junk", "", ""); r.status != http.StatusInternalServerError {
		t.Fatalf("GET undecodable pod: %d", r.status)
	}
	var gone struct {
		Name            string `json:"name"`
		ResourceVersion uint64 `json:"resourceVersion"`
	}
	e.json(http.MethodDelete, "/pods/junk", "", http.StatusOK, &gone)
	if gone.Name != "junk" || gone.ResourceVersion == 0 {
		t.Errorf("DELETE answered %+v", gone)
	}
	e.json(http.MethodGet, "/pods/junk", "", http.StatusNotFound, nil)
	e.json(http.MethodDelete, "/pods/junk", "", http.StatusNotFound, nil)
	e.json(http.MethodDelete, "/replicasets/junk", "", http.StatusOK, nil)
	e.json(http.MethodGet, "/replicasets/junk", "", http.StatusNotFound, nil)
	// And the name can be used again.
	e.json(http.MethodPost, "/pods", `{"name":"junk","image":"busybox"}`, http.StatusCreated, nil)
}

// readyz returns /readyz's status and body.
func readyz(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url + "/readyz?verbose")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var _ = schemas.Pod{}

// /readyz is 200 "ok" while the store answers and 503 with a failed
// check line when it does not; /healthz stays the liveness probe.
func TestReadyz(t *testing.T) {
	e := mustEnv(t)
	if code, body := readyz(t, e.url); code != http.StatusOK || !strings.Contains(body, "[+]jetstream ok") || !strings.Contains(body, "readyz check passed") {
		t.Fatalf("readyz %d: %s", code, body)
	}
	e.ns.Shutdown()
	e.ns.WaitForShutdown()
	bustest.Eventually(t, 15*time.Second, func() error {
		code, body := readyz(t, e.url)
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "[-]") || !strings.Contains(body, "readyz check failed") {
			return fmt.Errorf("readyz %d with NATS down: %s", code, body)
		}
		return nil
	})
}
