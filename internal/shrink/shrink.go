// Package shrink gives back the memory of Go maps and slices that emptied.
// A Go map never shrinks: delete frees the entries' values but keeps the
// table sized for the most keys it ever held, and a slice resliced to
// nothing keeps its array. After 100,000 pods came and went, the caches'
// maps alone kept tens of megabytes for a handful of objects. The fix is
// the usual one: rebuild the map (a copy sized for what is left) once it
// holds under a quarter of its peak, which costs O(1) amortized per delete.
package shrink

import "maps"

// MinPeak is the size below which nothing is rebuilt: a small map's table
// costs less than the copies.
const MinPeak = 1024

// Peak remembers the largest length a map or slice had when it was last
// looked at. The zero value is ready.
type Peak struct{ n int }

// Map returns m, or a copy of it sized to its length once the length is
// under a quarter of the peak: call it after deletes (m = shrink.Map(m,
// &peak)); the first delete after growth records the peak.
func Map[M ~map[K]V, K comparable, V any](m M, p *Peak) M {
	n := len(m)
	if n >= p.n {
		p.n = n
		return m
	}
	if p.n < MinPeak || n > p.n/4 {
		return m
	}
	p.n = n
	out := make(M, n)
	maps.Copy(out, m)
	return out
}

// Slice returns s, or a copy of it with a capacity of twice its length
// once its capacity is over four times its length (and at least MinPeak):
// call it after removing elements.
func Slice[S ~[]E, E any](s S) S {
	if cap(s) < MinPeak || len(s) > cap(s)/4 {
		return s
	}
	out := make(S, len(s), 2*len(s))
	copy(out, s)
	return out
}
