package controller_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/controller"
	"github.com/miniku/miniku/services/garbagecollector"
)

func runController(t *testing.T, conn *bus.Conn, cfg controller.Config) {
	t.Helper()
	cfg.Logger = bustest.Logger(t)
	c, err := controller.New(cfg, conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// runGC runs the garbage collector, which deletes the pods of a deleted
// replicaset (miniku up runs it beside the controller).
func runGC(t *testing.T, conn *bus.Conn) {
	t.Helper()
	gc, err := garbagecollector.New(garbagecollector.Config{Logger: bustest.Logger(t)}, conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = gc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// podPuts follows the pods bucket and calls fn for every put, with the
// time the store recorded it, until the test ends.
func podPuts(t *testing.T, conn *bus.Conn, fn func(e jetstream.KeyValueEntry)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := conn.Pods.KV().WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range w.Updates() {
			if e != nil && e.Operation() == jetstream.KeyValuePut {
				fn(e)
			}
		}
	}()
	t.Cleanup(func() { _ = w.Stop(); cancel(); <-done })
}

func testRS(name string, n int) *schemas.ReplicaSet {
	return &schemas.ReplicaSet{ObjectMeta: schemas.ObjectMeta{Name: name, UID: name + "-uid"}, DesiredCount: n,
		Selector: map[string]string{"app": name}, Template: schemas.PodTemplate{PodSpec: schemas.PodSpec{Image: "busybox", Command: []string{"sleep", "1d"}}}}
}

// One request for 100,000 pods, deleted once a few thousand exist: the
// controller stops creating within a second of the DELETE, with at most
// one sync's burst in flight (it used to go on for ~10 s, ~38k pods).
func TestReplicaSetDeleteStopsCreation(t *testing.T) {
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), nil)
	var mu sync.Mutex
	var creates []time.Time // server times of the pods' first puts
	podPuts(t, conn, func(e jetstream.KeyValueEntry) {
		mu.Lock()
		creates = append(creates, e.Created()) // nothing else writes pods here
		mu.Unlock()
	})
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(creates) }
	runController(t, conn, controller.Config{})
	runGC(t, conn)
	ctx := context.Background()
	if err := conn.ReplicaSets.Create(ctx, testRS("big", 100_000)); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 120*time.Second, func() error {
		if n := count(); n < 2000 {
			return fmt.Errorf("%d pods created", n)
		}
		return nil
	})
	// The controller writes the replicaset's status while it creates, so
	// a DELETE at the revision read may conflict: read again, as a client
	// holding a resourceVersion does.
	for attempt := 0; ; attempt++ {
		rs, err := conn.ReplicaSets.Get(ctx, "big")
		if err != nil {
			t.Fatal(err)
		}
		err = conn.ReplicaSets.Delete(ctx, "big", rs.ResourceVersion)
		if err == nil {
			break
		}
		if !errors.Is(err, bus.ErrConflict) || attempt > 50 {
			t.Fatal(err)
		}
	}
	deleted := time.Now()
	before := count()
	// Its pods are garbage-collected once the creates stop.
	bustest.Eventually(t, 120*time.Second, func() error {
		left, err := conn.Pods.List(ctx)
		if err != nil {
			return err
		}
		if len(left) > 0 {
			return fmt.Errorf("%d pods left, %d created after the delete", len(left), count()-before)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	var after int
	var last time.Time
	for _, c := range creates {
		if c.After(deleted) {
			after++
		}
		if c.After(last) {
			last = c
		}
	}
	t.Logf("%d pods created before the delete, %d after, the last %v after it", before, after, last.Sub(deleted).Round(time.Millisecond))
	if after > controller.DefaultBurstReplicas {
		t.Errorf("%d pods created after the DELETE returned, want at most one burst (%d)", after, controller.DefaultBurstReplicas)
	}
	if d := last.Sub(deleted); d > time.Second {
		t.Errorf("pods still created %v after the DELETE returned, want creation stopped within 1s", d)
	}
}

// A replicaset whose pods all fail at once (a kubelet reporting StartError
// for each) replaces them with growing delays instead of at full speed,
// and says so with a BackOff event.
func TestReplicaSetFailureBackoff(t *testing.T) {
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), nil)
	ctx := context.Background()
	var mu sync.Mutex
	created := map[string]time.Time{}
	var failErr error
	podPuts(t, conn, func(e jetstream.KeyValueEntry) {
		var p schemas.Pod
		if err := schemas.Unmarshal(e.Value(), &p); err != nil || p.Status != schemas.PodPending {
			return
		}
		mu.Lock()
		if _, seen := created[p.Name]; !seen {
			created[p.Name] = e.Created()
		}
		mu.Unlock()
		_, err := conn.Pods.Mutate(ctx, p.Name, func(cur *schemas.Pod) error {
			if cur.Status != schemas.PodPending {
				return bus.ErrNoChange
			}
			cur.Status, cur.Reason, cur.Message = schemas.PodFailed, "StartError", "exec: no such file"
			return nil
		})
		if err != nil && !errors.Is(err, bus.ErrNotFound) {
			mu.Lock()
			failErr = err
			mu.Unlock()
		}
	})
	const base = 200 * time.Millisecond
	runController(t, conn, controller.Config{FailureBackoff: controller.FailureBackoff{Base: base, Max: 10 * time.Second}})
	if err := conn.ReplicaSets.Create(ctx, testRS("bad", 2)); err != nil {
		t.Fatal(err)
	}
	// 2 pods, then at least 4 rounds of replacements: the first at once,
	// then after >= 200ms, 400ms, 800ms.
	const pods = 2 + 8
	bustest.Eventually(t, 60*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if failErr != nil {
			t.Fatal(failErr)
		}
		if len(created) < pods {
			return fmt.Errorf("%d pods created", len(created))
		}
		return nil
	})
	mu.Lock()
	var times []time.Time
	for _, c := range created {
		times = append(times, c)
	}
	mu.Unlock()
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	// Each round replaces one or both pods: the 8 replacements take at
	// least 4 rounds, the last three waiting 200+400+800ms after the first.
	if d, want := times[pods-1].Sub(times[2]), base+2*base+4*base; d < want {
		t.Errorf("8 replacements of failing pods in %v, want at least %v of backoff", d, want)
	}
	t.Logf("replacements at %v", func() (out []time.Duration) {
		for _, tm := range times[2:] {
			out = append(out, tm.Sub(times[2]).Round(time.Millisecond))
		}
		return out
	}())
	if got := reasons(t, conn, schemas.KindReplicaSet, "bad"); len(got) == 0 || got[0] != "Warning BackOff" {
		t.Errorf("replicaset events %q, want Warning BackOff", got)
	}
	// While backing off the failed pods stay, visible, in place of their
	// replacements: never more than the desired count.
	list, err := conn.Pods.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var live int
	for _, p := range list {
		if p.DeletionTimestamp == nil {
			live++
		}
	}
	if live > 2 {
		t.Errorf("%d pods not terminating, want at most 2", live)
	}
}
