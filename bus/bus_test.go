package bus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
)

func TestBucketCAS(t *testing.T) {
	ns := bustest.Server(t, "", "")
	c := bustest.Conn(t, ns.ClientURL(), nil)
	ctx := context.Background()

	rs := &schemas.ReplicaSet{ObjectMeta: schemas.ObjectMeta{Name: "web"}, DesiredCount: 1}
	if err := c.ReplicaSets.Create(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if rs.ResourceVersion == 0 {
		t.Fatal("create did not set resourceVersion")
	}
	if err := c.ReplicaSets.Create(ctx, &schemas.ReplicaSet{ObjectMeta: schemas.ObjectMeta{Name: "web"}}); !errors.Is(err, bus.ErrAlreadyExists) {
		t.Fatalf("duplicate create: got %v, want ErrAlreadyExists", err)
	}
	stale := *rs
	rs.DesiredCount = 2
	if err := c.ReplicaSets.Update(ctx, rs); err != nil {
		t.Fatal(err)
	}
	stale.DesiredCount = 9
	if err := c.ReplicaSets.Update(ctx, &stale); !errors.Is(err, bus.ErrConflict) {
		t.Fatalf("stale update: got %v, want ErrConflict", err)
	}
	if err := c.ReplicaSets.Delete(ctx, "web", stale.ResourceVersion); !errors.Is(err, bus.ErrConflict) {
		t.Fatalf("stale delete: got %v, want ErrConflict", err)
	}
	got, err := c.ReplicaSets.Get(ctx, "web")
	if err != nil || got.DesiredCount != 2 || got.ResourceVersion != rs.ResourceVersion {
		t.Fatalf("get: %+v %v", got, err)
	}
	if err := c.ReplicaSets.Delete(ctx, "web", got.ResourceVersion); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReplicaSets.Get(ctx, "web"); !errors.Is(err, bus.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	// A deleted name can be created again.
	if err := c.ReplicaSets.Create(ctx, &schemas.ReplicaSet{ObjectMeta: schemas.ObjectMeta{Name: "web"}}); err != nil {
		t.Fatalf("re-create: %v", err)
	}
}

// Concurrent read-modify-write through Mutate must not lose an increment:
// the lost update that made the original MiniKu's tests flaky.
func TestMutateNoLostUpdate(t *testing.T) {
	ns := bustest.Server(t, "", "")
	c := bustest.Conn(t, ns.ClientURL(), nil)
	ctx := context.Background()
	if err := c.ReplicaSets.Create(ctx, &schemas.ReplicaSet{ObjectMeta: schemas.ObjectMeta{Name: "n"}}); err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := c.ReplicaSets.Mutate(ctx, "n", func(rs *schemas.ReplicaSet) error {
					rs.DesiredCount++
					return nil
				}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, err := c.ReplicaSets.Get(ctx, "n")
	if err != nil {
		t.Fatal(err)
	}
	if got.DesiredCount != writers*each {
		t.Fatalf("desiredCount = %d, want %d", got.DesiredCount, writers*each)
	}
}

// MutateFrom writes from a current copy in one step, and from a stale copy,
// or one fn declines, it re-reads: a stale cache never overwrites a newer
// write nor makes a decision on old data stick.
func TestMutateFrom(t *testing.T) {
	ns := bustest.Server(t, "", "")
	c := bustest.Conn(t, ns.ClientURL(), nil)
	ctx := context.Background()
	rs := &schemas.ReplicaSet{ObjectMeta: schemas.ObjectMeta{Name: "n"}, DesiredCount: 1}
	if err := c.ReplicaSets.Create(ctx, rs); err != nil {
		t.Fatal(err)
	}
	runs := 0
	inc := func(r *schemas.ReplicaSet) error { runs++; r.CurrentCount++; return nil }
	got, err := c.ReplicaSets.MutateFrom(ctx, rs, inc)
	if err != nil || got.CurrentCount != 1 || runs != 1 {
		t.Fatalf("from a current copy: %+v, %v, fn ran %d times; want currentCount 1 in one run", got, err, runs)
	}
	if rs.CurrentCount != 0 {
		t.Fatal("MutateFrom modified the cached copy")
	}
	// rs is now stale: someone else's write (currentCount 1) must survive.
	runs = 0
	got, err = c.ReplicaSets.MutateFrom(ctx, rs, inc)
	if err != nil || got.CurrentCount != 2 || runs != 2 {
		t.Fatalf("from a stale copy: %+v, %v, fn ran %d times; want currentCount 2 after a re-read", got, err, runs)
	}
	// fn declining the stale copy is not trusted either.
	got, err = c.ReplicaSets.MutateFrom(ctx, rs, func(r *schemas.ReplicaSet) error {
		if r.CurrentCount == 0 {
			return bus.ErrNoChange
		}
		r.DesiredCount = 5
		return nil
	})
	if err != nil || got.DesiredCount != 5 || got.CurrentCount != 2 {
		t.Fatalf("declined stale copy: %+v, %v; want desiredCount 5 written on the fresh read", got, err)
	}
}

func TestList(t *testing.T) {
	ns := bustest.Server(t, "", "")
	c := bustest.Conn(t, ns.ClientURL(), nil)
	ctx := context.Background()
	if l, err := c.Pods.List(ctx); err != nil || len(l) != 0 {
		t.Fatalf("empty list: %v %v", l, err)
	}
	for i := range 50 {
		if err := c.Pods.Create(ctx, &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: fmt.Sprintf("p%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Pods.Delete(ctx, "p7", 0); err != nil {
		t.Fatal(err)
	}
	l, err := c.Pods.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 49 {
		t.Fatalf("list has %d pods, want 49", len(l))
	}
	for _, p := range l {
		if p.ResourceVersion == 0 || p.Name == "p7" {
			t.Fatalf("bad listed pod %+v", p)
		}
	}
}

// The informer must follow changes, and after a NATS restart must re-watch
// promptly and notice what changed while it was disconnected, deletions
// included.
func TestInformerSurvivesServerRestart(t *testing.T) {
	dir := t.TempDir()
	ns := bustest.Server(t, "", dir)
	addr := ns.Addr().String()
	c := bustest.Conn(t, ns.ClientURL(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	inf := bus.NewInformer(c, c.Pods, time.Hour, bustest.Logger(t))
	var mu sync.Mutex
	notified := map[string]int{}
	inf.AddEventHandler(bus.KeyHandler[schemas.Pod](func(name string) { mu.Lock(); notified[name]++; mu.Unlock() }))
	// Event handlers and indexes follow the re-watch too.
	inf.AddIndex(bus.PodsByNode, bus.PodNode)
	m := newMirror()
	inf.AddEventHandler(m)
	done := make(chan struct{})
	go func() { defer close(done); _ = inf.Run(ctx) }()
	defer func() { cancel(); <-done }()

	if err := c.Pods.Create(ctx, &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "a"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Pods.Create(ctx, &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "b"}}); err != nil {
		t.Fatal(err)
	}
	if err := inf.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 5*time.Second, func() error {
		if _, ok := inf.Get("b"); !ok {
			return errors.New("b not cached")
		}
		return nil
	})

	// Restart the server on the same port and store; change state from a
	// second client as soon as it is back.
	ns.Shutdown()
	ns.WaitForShutdown()
	ns2 := bustest.Server(t, addr, dir)
	c2 := bustest.Conn(t, ns2.ClientURL(), nil)
	if err := c2.Pods.Delete(ctx, "a", 0); err != nil {
		t.Fatal(err)
	}
	if err := c2.Pods.Create(ctx, &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "c"}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	bustest.Eventually(t, 5*time.Second, func() error {
		if _, ok := inf.Get("a"); ok {
			return errors.New("a still cached after delete")
		}
		if _, ok := inf.Get("c"); !ok {
			return errors.New("c not cached")
		}
		return nil
	})
	t.Logf("informer caught up %v after the server came back", time.Since(start))
	mu.Lock()
	defer mu.Unlock()
	if notified["a"] == 0 || notified["c"] == 0 {
		t.Fatalf("handlers not told: %v", notified)
	}
	if err := m.check(inf); err != nil {
		t.Fatal(err)
	}
}

func TestEventsDropMalformed(t *testing.T) {
	ns := bustest.Server(t, "", "")
	c := bustest.Conn(t, ns.ClientURL(), nil)
	got := make(chan schemas.Event, 4)
	sub, err := c.Subscribe("pod.>", func(_ string, ev schemas.Event) { got <- ev })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := c.NATS().Publish("pod.created", []byte{0xc1, 0xff, 0x00}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(bus.SubjPodCreated, schemas.Event{Type: "created", Kind: schemas.KindPod, Name: "x"}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-got:
		if ev.Name != "x" {
			t.Fatalf("got %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	select {
	case ev := <-got:
		t.Fatalf("malformed message delivered as %+v", ev)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestEmitStoresAndPublishes(t *testing.T) {
	ns := bustest.Server(t, "", "")
	c := bustest.Conn(t, ns.ClientURL(), nil)
	sub, err := c.NATS().SubscribeSync("event.>")
	if err != nil {
		t.Fatal(err)
	}
	c.Emit(schemas.ObjectEvent{Reason: "Scheduled", Kind: schemas.KindPod, Name: "web-1", Message: "assigned to node-1"})
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "event.pod.web-1" {
		t.Fatalf("subject %s", msg.Subject)
	}
	var ev schemas.ObjectEvent
	if err := schemas.Unmarshal(msg.Data, &ev); err != nil || ev.Reason != "Scheduled" || ev.Type != schemas.EventNormal {
		t.Fatalf("%+v %v", ev, err)
	}
	bustest.Eventually(t, 5*time.Second, func() error {
		info, err := c.EventsStream().Info(context.Background())
		if err != nil {
			return err
		}
		if info.State.Msgs != 1 {
			return fmt.Errorf("%d events stored", info.State.Msgs)
		}
		return nil
	})
}

// ListConsistent reads its own writes and everyone else's made before it:
// a writer on another connection creates and deletes pods, and every list
// right after a write must already show it, though the informer's watch
// may not have delivered it when the list was asked for.
func TestInformerListConsistent(t *testing.T) {
	ns := bustest.Server(t, "", "")
	reader := bustest.Conn(t, ns.ClientURL(), nil)
	writer := bustest.Conn(t, ns.ClientURL(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	inf := bus.NewInformer(reader, reader.Pods, time.Hour, bustest.Logger(t))
	done := make(chan struct{})
	go func() { defer close(done); _ = inf.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := inf.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	live := map[string]bool{}
	for i := range 200 {
		name := fmt.Sprintf("p%d", i%20)
		if live[name] {
			if err := writer.Pods.Delete(ctx, name, 0); err != nil {
				t.Fatal(err)
			}
			delete(live, name)
		} else {
			if err := writer.Pods.Create(ctx, &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: name}}); err != nil {
				t.Fatal(err)
			}
			live[name] = true
		}
		lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
		list, err := inf.ListConsistent(lctx)
		lcancel()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, p := range list {
			got[p.Name] = true
		}
		if len(got) != len(live) {
			t.Fatalf("write %d: list has %v, the bucket %v", i, got, live)
		}
		for n := range live {
			if !got[n] {
				t.Fatalf("write %d: list has %v, the bucket %v", i, got, live)
			}
		}
	}
	if inf.Revision() == 0 {
		t.Fatal("informer revision still 0 after 200 writes")
	}
}

// A handler removed hears nothing more; one joining a running informer
// hears every key already cached, then later changes.
func TestInformerJoinAndRemove(t *testing.T) {
	ns := bustest.Server(t, "", "")
	c := bustest.Conn(t, ns.ClientURL(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	inf := bus.NewInformer(c, c.Pods, time.Hour, bustest.Logger(t))
	done := make(chan struct{})
	go func() { defer close(done); _ = inf.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := c.Pods.Create(ctx, &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "before"}}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	heard := map[string]int{}
	remove, err := inf.JoinEventHandler(ctx, bus.KeyHandler[schemas.Pod](func(name string) { mu.Lock(); heard[name]++; mu.Unlock() }))
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if heard["before"] == 0 {
		t.Fatal("joining did not announce a key written before the join")
	}
	mu.Unlock()
	if err := c.Pods.Create(ctx, &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "during"}}); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if heard["during"] == 0 {
			return errors.New("a later change was not announced")
		}
		return nil
	})
	remove()
	// A witness registered after the removed handler: handlers are called
	// in order, so once the witness hears "after", the removed one would
	// have heard it already.
	witnessed := make(chan struct{})
	var once sync.Once
	defer inf.AddEventHandler(bus.KeyHandler[schemas.Pod](func(name string) {
		if name == "after" {
			once.Do(func() { close(witnessed) })
		}
	}))()
	if err := c.Pods.Create(ctx, &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "after"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-witnessed:
	case <-time.After(5 * time.Second):
		t.Fatal("the witness handler never heard the change")
	}
	mu.Lock()
	defer mu.Unlock()
	if heard["after"] != 0 {
		t.Fatal("a removed handler was still called")
	}
}

// The periodic resync re-announces every key once a period, a slice at a
// time: thirty slices for a 1.5 s period (the whole cache at once was a
// CPU spike every 30 s with 150,000 pods), each key in exactly one, none
// holding much more than its share; and a running resync reaches them all.
func TestInformerResyncIsSpread(t *testing.T) {
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	const keys = 300
	for i := range keys {
		if err := conn.Pods.Create(ctx, &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: fmt.Sprintf("p%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	for period, want := range map[time.Duration]int{1500 * time.Millisecond: 30, 30 * time.Second: 30, 20 * time.Millisecond: 2} {
		if got := bus.ResyncTicks(bus.NewInformer(conn, conn.Pods, period, bustest.Logger(t))); got != want {
			t.Errorf("resync period %v: %d slices, want %d", period, got, want)
		}
	}
	// An informer whose own resync is an hour away, announced slice by
	// slice by hand.
	inf := bus.NewInformer(conn, conn.Pods, time.Hour, bustest.Logger(t))
	fast := bus.NewInformer(conn, conn.Pods, 300*time.Millisecond, bustest.Logger(t))
	var wg sync.WaitGroup
	for _, i := range []*bus.Informer[schemas.Pod, *schemas.Pod]{inf, fast} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = i.Run(ctx) }()
	}
	defer func() { cancel(); wg.Wait() }()
	for _, i := range []*bus.Informer[schemas.Pod, *schemas.Pod]{inf, fast} {
		if err := i.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[string]int{}
	remove := inf.AddEventHandler(resyncs(func(name string) { mu.Lock(); seen[name]++; mu.Unlock() }))
	for k := range 30 {
		before := len(seen)
		bus.NotifySlice(inf, k, 30)
		if n := len(seen) - before; n > keys/10 {
			t.Errorf("slice %d announced %d of %d keys", k, n, keys)
		}
	}
	remove()
	for name, n := range seen {
		if n != 1 {
			t.Errorf("%s announced %d times over the slices", name, n)
		}
	}
	if len(seen) != keys {
		t.Errorf("%d of %d keys announced over the slices", len(seen), keys)
	}

	fastSeen := map[string]bool{}
	defer fast.AddEventHandler(resyncs(func(name string) { mu.Lock(); fastSeen[name] = true; mu.Unlock() }))()
	bustest.Eventually(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(fastSeen) != keys {
			return fmt.Errorf("%d of %d keys announced by a running resync", len(fastSeen), keys)
		}
		return nil
	})
}

// resyncs calls fn with the key of every object a resync hands over (old
// and new the same object).
func resyncs(fn func(name string)) bus.Handler[*schemas.Pod] {
	return bus.HandlerFuncs[*schemas.Pod]{Update: func(old, p *schemas.Pod) {
		if old == p {
			fn(p.Name)
		}
	}}
}

// An informer with a history serves watches: a snapshot and the changes
// after it, a replay of the changes after a recent revision (each with the
// version it replaced), ErrNoHistory for revisions it no longer or not yet
// has, and a feed that falls too far behind is dropped.
func TestInformerHistory(t *testing.T) {
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	inf := bus.NewInformer(conn, conn.Pods, time.Hour, bustest.Logger(t)).WithHistory(4)
	done := make(chan struct{})
	go func() { defer close(done); _ = inf.Run(ctx) }()
	defer func() { cancel(); <-done }()
	pod := func(name, image string) *schemas.Pod {
		return &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: name}, PodSpec: schemas.PodSpec{Image: image}}
	}
	a := pod("a", "v1")
	if err := conn.Pods.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	// Synced alone is not enough: the first snapshot may predate a's
	// write, which then arrives as a change.
	if err := inf.WaitRevision(ctx, a.ResourceVersion); err != nil {
		t.Fatal(err)
	}
	snap, rev, feed, err := inf.WatchChanges(0, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Close()
	if len(snap) != 1 || snap[0].Name != "a" || rev != snap[0].ResourceVersion {
		t.Fatalf("snapshot %v at %d", snap, rev)
	}
	// Each write reaches the cache before the next: with one version kept
	// per key, b's creation would be gone from the stream once b is
	// deleted, and a watch that had not read it yet never sees it (it
	// sees a@3 then b's deletion: TestInformerHistoryInOrderUnderChurn).
	b := pod("b", "v1")
	if err := conn.Pods.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := inf.WaitRevision(ctx, b.ResourceVersion); err != nil {
		t.Fatal(err)
	}
	a2, err := conn.Pods.Mutate(ctx, "a", func(p *schemas.Pod) error { p.Image = "v2"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := inf.WaitRevision(ctx, a2.ResourceVersion); err != nil {
		t.Fatal(err)
	}
	if err := conn.Pods.Delete(ctx, "b", 0); err != nil {
		t.Fatal(err)
	}
	next := func(f *bus.Feed[*schemas.Pod]) bus.Change[*schemas.Pod] {
		t.Helper()
		select {
		case c, ok := <-f.C:
			if !ok {
				t.Fatal("feed closed")
			}
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("no change within 10 s")
		}
		return bus.Change[*schemas.Pod]{}
	}
	describe := func(c bus.Change[*schemas.Pod]) string {
		s := fmt.Sprintf("%d %s", c.Rev, c.Name)
		for _, p := range []*schemas.Pod{c.Prev, c.Obj} {
			if p == nil {
				s += " -"
			} else {
				s += " " + p.Image
			}
		}
		return s
	}
	want := []string{
		fmt.Sprintf("%d b - v1", b.ResourceVersion),
		fmt.Sprintf("%d a v1 v2", a2.ResourceVersion),
		fmt.Sprintf("%d b v1 -", a2.ResourceVersion+1),
	}
	for _, w := range want {
		if got := describe(next(feed)); got != w {
			t.Fatalf("change %q, want %q", got, w)
		}
	}
	// A resume after the first of them replays the other two.
	_, _, replay, err := inf.WatchChanges(b.ResourceVersion, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer replay.Close()
	for _, w := range want[1:] {
		if got := describe(next(replay)); got != w {
			t.Fatalf("replayed %q, want %q", got, w)
		}
	}
	// From the future, or from before what 4 changes remember: no.
	if _, _, _, err := inf.WatchChanges(a2.ResourceVersion+100, 16); !errors.Is(err, bus.ErrNoHistory) {
		t.Fatalf("a revision not reached yet: %v", err)
	}
	for i := range 4 {
		if err := conn.Pods.Create(ctx, pod(fmt.Sprintf("c%d", i), "v1")); err != nil {
			t.Fatal(err)
		}
	}
	bustest.Eventually(t, 10*time.Second, func() error {
		if _, _, _, err := inf.WatchChanges(b.ResourceVersion, 16); !errors.Is(err, bus.ErrNoHistory) {
			return fmt.Errorf("a revision 4 changes ago: %v", err)
		}
		return nil
	})
	// A feed with room for one change, never read, is dropped at the
	// second: its channel closes after the one it holds.
	cur, err := conn.Pods.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := inf.WaitRevision(ctx, cur); err != nil {
		t.Fatal(err)
	}
	_, _, slow, err := inf.WatchChanges(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for _, n := range []string{"d0", "d1"} {
		p := pod(n, "v1")
		if err := conn.Pods.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		last = p.ResourceVersion
	}
	if err := inf.WaitRevision(ctx, last); err != nil {
		t.Fatal(err)
	}
	if c := next(slow); c.Name != "d0" {
		t.Fatalf("slow feed's change: %s", describe(c))
	}
	select {
	case c, ok := <-slow.C:
		if ok {
			t.Fatalf("slow feed not dropped: %s", describe(c))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("slow feed neither dropped nor fed")
	}
	slow.Close() // closing a dropped feed is harmless
}

// Under churn the history is the bucket's surviving changes in revision
// order, each with the version the cache held before it: a key's version
// the bucket dropped (it keeps one per key) before the watch read it is
// simply not there, and a deletion of a key the watch never saw has no
// Prev. Replaying from a revision gives the same changes as the live feed.
func TestInformerHistoryInOrderUnderChurn(t *testing.T) {
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	inf := bus.NewInformer(conn, conn.Pods, time.Hour, bustest.Logger(t)).WithHistory(bus.DefaultHistory)
	done := make(chan struct{})
	go func() { defer close(done); _ = inf.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := inf.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	snap, start, feed, err := inf.WatchChanges(0, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Close()
	if len(snap) != 0 {
		t.Fatalf("snapshot of an empty bucket: %d objects", len(snap))
	}
	// Create, update, delete five keys in turn, as fast as the bucket
	// takes it: the watch often lags by a few writes.
	const keys, rounds = 5, 60
	var last uint64
	for r := range rounds {
		for k := range keys {
			name := fmt.Sprintf("k%d", k)
			var err error
			switch r % 3 {
			case 0:
				p := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: name}, PodSpec: schemas.PodSpec{Image: fmt.Sprint("v", r)}}
				err = conn.Pods.Create(ctx, p)
				last = p.ResourceVersion
			case 1:
				var p *schemas.Pod
				p, err = conn.Pods.Mutate(ctx, name, func(p *schemas.Pod) error { p.Image = fmt.Sprint("v", r); return nil })
				if err == nil {
					last = p.ResourceVersion
				}
			case 2:
				err = conn.Pods.Delete(ctx, name, 0)
				last++
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := inf.WaitRevision(ctx, last); err != nil {
		t.Fatal(err)
	}
	state := map[string]*schemas.Pod{}
	var changes []bus.Change[*schemas.Pod]
	prevRev := start
	for prevRev < last {
		var c bus.Change[*schemas.Pod]
		select {
		case ch, ok := <-feed.C:
			if !ok {
				t.Fatal("feed closed")
			}
			c = ch
		case <-time.After(10 * time.Second):
			t.Fatalf("no change after revision %d of %d", prevRev, last)
		}
		if c.Rev <= prevRev {
			t.Fatalf("change at %d after one at %d", c.Rev, prevRev)
		}
		if c.Prev != state[c.Name] {
			t.Fatalf("change of %s at %d replaced %v, the cache held %v", c.Name, c.Rev, c.Prev, state[c.Name])
		}
		if c.Obj != nil && c.Obj.ResourceVersion != c.Rev {
			t.Fatalf("change at %d carries version %d", c.Rev, c.Obj.ResourceVersion)
		}
		if c.Obj == nil {
			delete(state, c.Name)
		} else {
			state[c.Name] = c.Obj
		}
		changes = append(changes, c)
		prevRev = c.Rev
	}
	t.Logf("%d writes, %d changes in the history (the rest dropped by the bucket before the watch read them)", last-start, len(changes))
	if len(state) != 0 {
		t.Fatalf("every key was deleted last, the feed leaves %d", len(state))
	}
	// A resume from the middle replays the same changes.
	mid := changes[len(changes)/2].Rev
	_, _, replay, err := inf.WatchChanges(mid, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer replay.Close()
	for _, want := range changes[len(changes)/2+1:] {
		got := <-replay.C
		if got.Rev != want.Rev || got.Name != want.Name || got.Obj != want.Obj || got.Prev != want.Prev {
			t.Fatalf("replayed %d %s, fed %d %s", got.Rev, got.Name, want.Rev, want.Name)
		}
	}
}
