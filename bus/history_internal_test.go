package bus

import (
	"fmt"
	"testing"
	"time"

	"github.com/miniku/miniku/schemas"
)

// The history's ring holds what it has been given, not its size: an idle
// informer keeps no slots, a full one wraps at its size, and once retention
// has dropped most changes the ring gives its slots back. Replays stay in
// revision order across every resize.
func TestHistoryRingGrowsAndShrinks(t *testing.T) {
	i := (&Informer[schemas.Pod, *schemas.Pod]{}).WithHistory(1000)
	h := i.hist
	i.startHistoryLocked(0)
	if len(h.ring) != 0 {
		t.Fatalf("a history with no changes holds %d slots", len(h.ring))
	}
	record := func(from, to uint64) {
		for r := from; r <= to; r++ {
			i.rev = r
			i.recordLocked(r, fmt.Sprintf("p%d", r%50), &schemas.Pod{}, true)
		}
	}
	replayed := func(from uint64) []uint64 {
		t.Helper()
		_, _, feed, err := i.WatchChanges(from, 0)
		if err != nil {
			t.Fatalf("watch from %d: %v", from, err)
		}
		defer feed.Close()
		var revs []uint64
		for len(feed.C) > 0 {
			revs = append(revs, (<-feed.C).Rev)
		}
		return revs
	}
	inOrder := func(revs []uint64, first, last uint64) {
		t.Helper()
		if uint64(len(revs)) != last-first+1 {
			t.Fatalf("replayed %d changes, want %d..%d", len(revs), first, last)
		}
		for k, r := range revs {
			if r != first+uint64(k) {
				t.Fatalf("replay[%d] = %d, want %d", k, r, first+uint64(k))
			}
		}
	}

	record(1, 100)
	if n := len(h.ring); n < 100 || n > 200 {
		t.Fatalf("100 changes in %d slots", n)
	}
	inOrder(replayed(10), 11, 100)

	record(101, 2500)
	if len(h.ring) != 1000 || h.len != 1000 {
		t.Fatalf("past its size: %d slots, %d changes; want 1000 and 1000", len(h.ring), h.len)
	}
	inOrder(replayed(1600), 1601, 2500)
	if _, _, _, err := i.WatchChanges(1000, 0); err == nil {
		t.Fatal("a watch from before the ring's floor was served")
	}

	// Retention: every change before the first mark's time goes.
	t0 := time.Now()
	i.expireHistoryLocked(t0, t0) // mark at 2500
	record(2501, 2510)
	i.expireHistoryLocked(t0.Add(time.Minute), t0.Add(time.Second))
	if h.len != 10 {
		t.Fatalf("%d changes kept after retention, want 10", h.len)
	}
	if len(h.ring) > 4*minRing {
		t.Fatalf("%d slots kept for 10 changes", len(h.ring))
	}
	inOrder(replayed(2500), 2501, 2510)
	record(2511, 3000)
	inOrder(replayed(2600), 2601, 3000)
}
