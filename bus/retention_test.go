package bus_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
)

// An informer forgets what went once it is older than its retention: the
// history no longer replays those changes (a watch from before them reads
// the bucket instead) and the tombstones go, so a mass deletion's deleted
// objects are not kept by the history's ring, nor their names by the
// tombstones. A watch from after them is still served from the history.
func TestInformerRetention(t *testing.T) {
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	inf := bus.NewInformer(conn, conn.Pods, 300*time.Millisecond, bustest.Logger(t)).
		// Longer than 100 writes take on a loaded machine under -race: the
		// first checks run before anything expires.
		WithHistory(bus.DefaultHistory).WithRetention(5 * time.Second)
	done := make(chan struct{})
	go func() { defer close(done); _ = inf.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := inf.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	var start uint64
	for i := range 50 {
		p := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: fmt.Sprint("p", i)}, PodSpec: schemas.PodSpec{Image: "x"}}
		if err := conn.Pods.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		if start == 0 {
			start = p.ResourceVersion
		}
		if err := conn.Pods.Delete(ctx, p.Name, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := inf.WaitCurrent(ctx); err != nil {
		t.Fatal(err)
	}
	// Right after, the history replays them and the tombstones are there.
	_, _, feed, err := inf.WatchChanges(start, 200)
	if err != nil {
		t.Fatalf("watch from before the deletions, at once: %v", err)
	}
	feed.Close()
	if n := bus.Tombstones(inf); n != 50 {
		t.Fatalf("%d tombstones right after 50 deletions, want 50", n)
	}
	bustest.Eventually(t, 30*time.Second, func() error {
		if _, _, f, err := inf.WatchChanges(start, 200); !errors.Is(err, bus.ErrNoHistory) {
			if f != nil {
				f.Close()
			}
			return fmt.Errorf("watch from before the deletions: %v, want ErrNoHistory", err)
		}
		if n := bus.Tombstones(inf); n != 0 {
			return fmt.Errorf("%d tombstones left", n)
		}
		return nil
	})
	// A watch from now is served from the history, and sees a new change.
	rev := inf.Revision()
	_, _, feed, err = inf.WatchChanges(rev, 16)
	if err != nil {
		t.Fatalf("watch from the current revision after expiry: %v", err)
	}
	defer feed.Close()
	if err := conn.Pods.Create(ctx, &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "late"}, PodSpec: schemas.PodSpec{Image: "x"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-feed.C:
		if c.Name != "late" || c.Rev <= rev {
			t.Fatalf("change %s at %d, want late after %d", c.Name, c.Rev, rev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no change on a watch from after the expiry")
	}
}
