package shrink

import (
	"fmt"
	"runtime"
	"testing"
)

// A map emptied one delete at a time is rebuilt under a quarter of its
// peak, keeps every remaining entry, and its old table can go.
func TestMapRebuildsBelowAQuarter(t *testing.T) {
	m := map[string]int{}
	for i := range 4 * MinPeak {
		m[fmt.Sprint(i)] = i
	}
	var p Peak
	rebuilds := 0
	for i := range 4 * MinPeak {
		delete(m, fmt.Sprint(i))
		before := fmt.Sprintf("%p", m)
		m = Map(m, &p)
		if fmt.Sprintf("%p", m) != before {
			rebuilds++
			if left := 4*MinPeak - i - 1; len(m) != left || left >= MinPeak {
				t.Fatalf("rebuilt with %d entries (%d left), want under a quarter of %d", len(m), left, 4*MinPeak)
			}
			for k := i + 1; k < 4*MinPeak; k++ {
				if m[fmt.Sprint(k)] != k {
					t.Fatalf("entry %d lost in the rebuild", k)
				}
			}
		}
	}
	// 4096 -> under 1024; the next quarter (under 256) is below MinPeak.
	if rebuilds != 1 {
		t.Fatalf("%d rebuilds, want 1", rebuilds)
	}
}

// The point of it: a map of 100,000 entries emptied keeps megabytes; rebuilt,
// almost nothing.
func TestMapGivesBackMemory(t *testing.T) {
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	fill := func() map[int][32]byte {
		m := map[int][32]byte{}
		for i := range 100000 {
			m[i] = [32]byte{}
		}
		return m
	}
	base := heap()
	kept := fill()
	for i := range 100000 {
		delete(kept, i)
	}
	plain := heap() - base
	var p Peak
	shrunk := fill()
	for i := range 100000 {
		delete(shrunk, i)
		shrunk = Map(shrunk, &p)
	}
	withShrink := heap() - base - plain
	runtime.KeepAlive(kept)
	runtime.KeepAlive(shrunk)
	if plain < 2<<20 || withShrink > plain/10 {
		t.Fatalf("emptied map keeps %d bytes, rebuilt one %d: want under a tenth", plain, withShrink)
	}
}

func TestSlice(t *testing.T) {
	s := make([]int, 10, 4*MinPeak)
	if got := Slice(s); cap(got) != 20 || len(got) != 10 {
		t.Fatalf("cap %d len %d, want 20 and 10", cap(got), len(got))
	}
	small := make([]int, 1, MinPeak-1)
	if got := Slice(small); cap(got) != MinPeak-1 {
		t.Fatalf("small slice copied: cap %d", cap(got))
	}
	half := make([]int, 2*MinPeak, 4*MinPeak)
	if got := Slice(half); cap(got) != 4*MinPeak {
		t.Fatalf("half-full slice copied: cap %d", cap(got))
	}
}
