package bus_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
)

// Pods created and deleted leave a delete marker each; the compactor
// removes the markers older than its delay, so the bucket's message count
// comes back to the live count instead of growing without bound, and a
// name deleted and created again keeps its new value.
func TestCompactionPurgesDeleteMarkers(t *testing.T) {
	ns := bustest.Server(t, "", "")
	c := bustest.Conn(t, ns.ClientURL(), bustest.Logger(t))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const churn, live = 10000, 6
	for i := range churn {
		p := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: fmt.Sprintf("churn-%d", i)}}
		if err := c.Pods.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		if err := c.Pods.Delete(ctx, p.Name, p.ResourceVersion); err != nil {
			t.Fatal(err)
		}
	}
	for i := range live {
		if err := c.Pods.Create(ctx, &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: fmt.Sprintf("live-%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	// churn-0 again: its old marker goes, its new value must stay.
	if err := c.Pods.Create(ctx, &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "churn-0"}}); err != nil {
		t.Fatal(err)
	}
	if n := msgs(t, c); n < churn {
		t.Fatalf("%d messages before compaction, want the %d markers too", n, churn)
	}
	comp := bus.NewCompactor(c, 500*time.Millisecond, bustest.Logger(t))
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- comp.Run(cctx) }()
	t.Cleanup(func() { stop(); <-done })
	bustest.Eventually(t, 2*time.Minute, func() error {
		if n := msgs(t, c); n > live+1+10 {
			return fmt.Errorf("%d messages for %d live pods", n, live+1)
		}
		return nil
	})
	if _, err := c.Pods.Get(ctx, "churn-0"); err != nil {
		t.Fatalf("re-created pod lost by compaction: %v", err)
	}
	last, compacted, err := c.Pods.Revisions(ctx)
	if err != nil || compacted == 0 || compacted > last {
		t.Fatalf("Revisions = %d, %d, %v; want a compacted revision up to the last", last, compacted, err)
	}
	// A reconnecting component re-creates the bucket: the compaction is
	// remembered (watches below it must still be refused).
	c2 := bustest.Conn(t, ns.ClientURL(), bustest.Logger(t))
	if _, again, err := c2.Pods.Revisions(ctx); err != nil || again < compacted {
		t.Fatalf("after re-creating the bucket: compacted %d, %v; want at least %d", again, err, compacted)
	}
	list, err := c.Pods.List(ctx)
	if err != nil || len(list) != live+1 {
		t.Fatalf("List = %d pods, %v; want %d", len(list), err, live+1)
	}
}

func msgs(t *testing.T, c *bus.Conn) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.Pods.KV().Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		t.Fatal(errors.New("not a bucket status"))
	}
	return bs.StreamInfo().State.Msgs
}
