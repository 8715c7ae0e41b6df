package bus_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
)

// campaigner counts the leadership terms of one process.
type campaigner struct {
	name    string
	leading atomic.Bool
	terms   atomic.Int32
	stopped chan struct{} // closed when lead's ctx ends for the first time
	once    sync.Once
}

func (c *campaigner) lead(ctx context.Context) error {
	c.terms.Add(1)
	c.leading.Store(true)
	<-ctx.Done()
	c.leading.Store(false)
	c.once.Do(func() { close(c.stopped) })
	return nil
}

func campaign(t *testing.T, conn *bus.Conn, name string) (*campaigner, context.CancelFunc) {
	return campaignFor(t, conn, "scheduler", name)
}

func campaignFor(t *testing.T, conn *bus.Conn, lease, name string) (*campaigner, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l, err := conn.NewLease(ctx, bus.LeaseConfig{Name: lease, Holder: name, TTL: time.Second, Logger: bustest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	c := &campaigner{name: name, stopped: make(chan struct{})}
	done := make(chan struct{})
	go func() { defer close(done); _ = l.Run(ctx, c.lead) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return c, stop
}

// Only one campaigner leads at a time; a clean stop hands over at once, a
// holder that can no longer renew (its connection is gone, as after kill -9)
// stops leading by itself and a standby takes over after the TTL.
func TestLeaseSingleLeaderAndTakeover(t *testing.T) {
	ns := bustest.Server(t, "", "")
	connA := bustest.Conn(t, ns.ClientURL(), nil)
	connB := bustest.Conn(t, ns.ClientURL(), nil)
	connC := bustest.Conn(t, ns.ClientURL(), nil)

	a, stopA := campaign(t, connA, "a")
	bustest.Eventually(t, 10*time.Second, func() error {
		if !a.leading.Load() {
			return errors.New("a does not lead")
		}
		return nil
	})
	b, _ := campaign(t, connB, "b")
	// b must stay standby for several TTLs while a renews.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if b.leading.Load() {
			t.Fatal("b leads while a holds the lease")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopA()
	bustest.Eventually(t, 10*time.Second, func() error {
		if !b.leading.Load() {
			return errors.New("b did not take over after a released")
		}
		return nil
	})

	c, _ := campaign(t, connC, "c")
	// Cut b off: it cannot renew, must stop leading, and c takes over.
	connB.Close()
	select {
	case <-b.stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("b kept leading without renewing its lease")
	}
	bustest.Eventually(t, 10*time.Second, func() error {
		if !c.leading.Load() {
			return errors.New("c did not take over from b")
		}
		return nil
	})
	if a.terms.Load() != 1 || b.terms.Load() != 1 || c.terms.Load() != 1 {
		t.Fatalf("terms a=%d b=%d c=%d, want 1 each", a.terms.Load(), b.terms.Load(), c.terms.Load())
	}
}

// A holder restarted before its lease expired (kill -9 of `miniku up`) takes
// it back at once rather than waiting for the TTL.
func TestLeaseReclaimedBySameHolder(t *testing.T) {
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), nil)
	ctx := context.Background()
	if _, err := conn.NewLease(ctx, bus.LeaseConfig{Name: "x", Holder: "up", TTL: time.Second}); err != nil {
		t.Fatal(err)
	}
	kv, err := conn.NATS().JetStream()
	if err != nil {
		t.Fatal(err)
	}
	store, err := kv.KeyValue(bus.BucketLeases)
	if err != nil {
		t.Fatal(err)
	}
	// The crashed process's lease, as it left it (without a TTL here, so
	// only reclaiming can end it).
	if _, err := store.Create("x", []byte("up")); err != nil {
		t.Fatal(err)
	}
	other, _ := campaignFor(t, conn, "x", "someone-else")
	same, _ := campaignFor(t, conn, "x", "up")
	bustest.Eventually(t, 10*time.Second, func() error {
		if !same.leading.Load() {
			return errors.New("restarted holder did not reclaim its lease")
		}
		return nil
	})
	if other.leading.Load() {
		t.Fatal("another holder took a lease that never expired")
	}
}
