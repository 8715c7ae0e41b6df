package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultRetryFor is how long a request answered "unavailable, retry
// later" is retried when the command sets no timeout of its own: longer
// than a store leader change (about 5 s) or a restart of the store.
const DefaultRetryFor = time.Minute

// Backoff between retries when the server sends no Retry-After: doubling
// from retryBase to retryMax, with jitter so that many clients cut off
// together do not come back together.
const (
	retryBase = 200 * time.Millisecond
	retryMax  = 5 * time.Second
)

// Retryable reports whether err is a refusal the server expects to lift
// by itself: 429 (too many requests) and 503 (the store is unavailable,
// e.g. during a leader change). Both promise the request had no effect
// or is safe to repeat: every write is compare-and-swap, so a repeated
// create answers 409 and a repeated update with a stale revision too.
func Retryable(err error) bool {
	s := StatusOf(err)
	return s == http.StatusTooManyRequests || s == http.StatusServiceUnavailable
}

// send sends the request, again while the server answers 429 or 503,
// waiting as its Retry-After says (else backing off) until RetryFor has
// passed or ctx ends.
func (c *Client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	budget := c.RetryFor
	if budget == 0 {
		budget = DefaultRetryFor
	}
	deadline := time.Now().Add(budget)
	for attempt := 0; ; attempt++ {
		resp, err := c.sendOnce(ctx, method, path, in)
		if err == nil || !Retryable(err) || budget < 0 {
			return resp, err
		}
		wait := retryWait(err, attempt)
		if time.Now().Add(wait).After(deadline) {
			return nil, fmt.Errorf("%w (gave up retrying after %s)", err, budget.Round(time.Second))
		}
		if c.OnRetry != nil {
			c.OnRetry(err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// retryWait is the server's Retry-After when it sent one, else the
// attempt's backoff.
func retryWait(err error, attempt int) time.Duration {
	var ae *APIError
	if errors.As(err, &ae) && ae.RetryAfter > 0 {
		return ae.RetryAfter
	}
	d := retryBase << min(attempt, 8)
	d = min(d, retryMax)
	// Full jitter over the upper half: never less than half the backoff.
	return d/2 + rand.N(d/2+1)
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date
// (RFC 9110 10.2.3). Anything else, or a time already past, is 0.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
