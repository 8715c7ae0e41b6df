package apiserver

import "sync/atomic"

// CountTokenCompares replaces the constant-time comparison with one that
// counts its calls, restoring it at cleanup.
func CountTokenCompares(t interface{ Cleanup(func()) }) *atomic.Int64 {
	n := new(atomic.Int64)
	orig := constantTimeCompare
	constantTimeCompare = func(a, b []byte) int { n.Add(1); return orig(a, b) }
	t.Cleanup(func() { constantTimeCompare = orig })
	return n
}
