package apiserver

import (
	"sync/atomic"
	"time"
)

// SetRequestTimeout lets tests of store outages finish quickly.
func SetRequestTimeout(s *Server, d time.Duration) { s.timeout = d }

// SetClock pins the time the server stamps on createdAt.
func SetClock(s *Server, now func() time.Time) { s.now = now }

// CountTokenCompares replaces the constant-time comparison with one that
// counts its calls, restoring it at cleanup.
func CountTokenCompares(t interface{ Cleanup(func()) }) *atomic.Int64 {
	n := new(atomic.Int64)
	orig := constantTimeCompare
	constantTimeCompare = func(a, b []byte) int { n.Add(1); return orig(a, b) }
	t.Cleanup(func() { constantTimeCompare = orig })
	return n
}
