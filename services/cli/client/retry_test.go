package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// unavailable answers status with Retry-After (if not "") to the first n
// requests, then 200 with {}.
func unavailable(t *testing.T, n int32, status int, retryAfter string) (*Client, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= n {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"error":"state store unavailable, retry later"}`))
			return
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, "tok", "")
	if err != nil {
		t.Fatal(err)
	}
	return c, &calls
}

// A burst of 503s with Retry-After, as during a store leader change, is
// waited out as the server asks; the request then succeeds.
func TestRetriesUnavailableHonouringRetryAfter(t *testing.T) {
	c, calls := unavailable(t, 2, http.StatusServiceUnavailable, "1")
	var retries []time.Duration
	c.OnRetry = func(err error, wait time.Duration) { retries = append(retries, wait) }
	start := time.Now()
	var out map[string]any
	if err := c.Do(context.Background(), "PUT", "/replicasets/web", map[string]int{"desiredCount": 3}, &out); err != nil {
		t.Fatalf("PUT after a burst of 503s: %v", err)
	}
	if got := calls.Load(); got != 3 {
		t.Errorf("%d requests, want 3", got)
	}
	if len(retries) != 2 || retries[0] != time.Second || retries[1] != time.Second {
		t.Errorf("waits %v, want the server's Retry-After (1s) twice", retries)
	}
	if el := time.Since(start); el < 2*time.Second {
		t.Errorf("done after %s: Retry-After 1s twice was not honoured", el)
	}
}

// 429 without Retry-After backs off on its own.
func TestRetriesTooManyRequestsWithBackoff(t *testing.T) {
	c, calls := unavailable(t, 3, http.StatusTooManyRequests, "")
	if err := c.Do(context.Background(), "GET", "/pods", nil, nil); err != nil {
		t.Fatalf("GET after 429s: %v", err)
	}
	if got := calls.Load(); got != 4 {
		t.Errorf("%d requests, want 4", got)
	}
}

// Retries stop at RetryFor, with the server's error; other errors are
// not retried at all.
func TestRetryGivesUp(t *testing.T) {
	c, calls := unavailable(t, 1000, http.StatusServiceUnavailable, "")
	c.RetryFor = 700 * time.Millisecond
	start := time.Now()
	err := c.Do(context.Background(), "GET", "/pods", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "state store unavailable") || !strings.Contains(err.Error(), "gave up") {
		t.Fatalf("error %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("gave up after %s, want about RetryFor (700ms)", el)
	}
	if calls.Load() < 2 {
		t.Errorf("%d requests: not retried", calls.Load())
	}

	c, calls = unavailable(t, 1000, http.StatusServiceUnavailable, "3600")
	if err := c.Do(context.Background(), "GET", "/pods", nil, nil); err == nil || calls.Load() != 1 {
		t.Errorf("a Retry-After past the deadline: %v after %d requests, want to give up at once", err, calls.Load())
	}

	c, calls = unavailable(t, 1000, http.StatusBadRequest, "1")
	if err := c.Do(context.Background(), "GET", "/pods", nil, nil); StatusOf(err) != http.StatusBadRequest || calls.Load() != 1 {
		t.Errorf("400: %v after %d requests, want no retry", err, calls.Load())
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, "3": 3 * time.Second, " 2 ": 2 * time.Second, "0": 0, "-1": 0, "soon": 0,
		now.Add(4 * time.Second).Format(http.TimeFormat): 4 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):      0,
	} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("Retry-After %q: %s, want %s", v, got, want)
		}
	}
}
