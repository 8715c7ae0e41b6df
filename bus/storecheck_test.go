package bus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
)

// storeWithPods returns a stopped server's store holding pods p0..p19.
func storeWithPods(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ns, c := startStore(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 20 {
		p := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: fmt.Sprint("p", i)}, PodSpec: schemas.PodSpec{Image: "busybox"}}
		if err := c.Pods.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	ns.Shutdown()
	ns.WaitForShutdown()
	return dir
}

// startStore starts a server on dir and connects to it; both end at
// cleanup.
func startStore(t *testing.T, dir string) (*server.Server, *bus.Conn) {
	t.Helper()
	log := bustest.Logger(t)
	ns, err := bus.StartServer(bus.ServerConfig{Addr: "127.0.0.1:0", StoreDir: dir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := bus.Connect(ctx, bus.Options{InProcess: ns, Name: t.Name(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return ns, c
}

// damage overwrites 28 bytes of key's record in the pods stream's block
// file, past its subject, so that its checksum fails: what a bad sector or
// a stray write does to a stopped store.
func damage(t *testing.T, dir, key string) {
	t.Helper()
	blks, err := filepath.Glob(filepath.Join(dir, "jetstream", "$G", "streams", "KV_pods", "msgs", "*.blk"))
	if err != nil || len(blks) == 0 {
		t.Fatalf("no block files: %v", err)
	}
	// The test's keys are p0..p19: pick one no other key starts with.
	subj := []byte("$KV.pods." + key)
	for _, blk := range blks {
		data, err := os.ReadFile(blk)
		if err != nil {
			t.Fatal(err)
		}
		at := bytes.LastIndex(data, subj) // the live record, the last written
		if at < 0 {
			continue
		}
		at += len(subj) + 4 // past the subject and the headers' length
		if at+28 > len(data) {
			t.Fatalf("record of %s too short", key)
		}
		copy(data[at:at+28], bytes.Repeat([]byte{0xab}, 28))
		if err := os.WriteFile(blk, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no record of %s in %v", key, blks)
}

// A store whose block file was damaged while stopped is reported at start,
// naming the bucket, its stream and the unreadable key, within seconds;
// its informers fail with that error instead of never syncing. A healthy
// store passes the check without waiting.
func TestCorruptStoreReportedAtStart(t *testing.T) {
	dir := storeWithPods(t)
	damage(t, dir, "p7")
	_, c := startStore(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	start := time.Now()
	err := c.CheckStore(ctx, 500*time.Millisecond)
	took := time.Since(start)
	var ce *bus.CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, bus.ErrStoreCorrupt) {
		t.Fatalf("check of a damaged store: %v", err)
	}
	if ce.Bucket != bus.BucketPods || ce.Stream != "KV_pods" || !slices.Equal(ce.Keys, []string{"p7"}) {
		t.Fatalf("reported %+v", ce)
	}
	if took > 10*time.Second {
		t.Fatalf("the check took %v", took)
	}
	t.Logf("reported in %v: %v", took.Round(time.Millisecond), err)

	inf := bus.NewInformer(c, c.Pods, time.Hour, bustest.Logger(t))
	bus.SetInitialStall(inf, 500*time.Millisecond)
	runErr := make(chan error, 1)
	go func() { runErr <- inf.Run(ctx) }()
	select {
	case err := <-runErr:
		if !errors.As(err, &ce) || !slices.Equal(ce.Keys, []string{"p7"}) {
			t.Fatalf("informer over a damaged bucket ended with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("informer over a damaged bucket neither synced nor failed in 15 s")
	}
	select {
	case <-inf.Synced():
		t.Fatal("informer synced over a damaged bucket")
	default:
	}
}

func TestHealthyStorePassesCheck(t *testing.T) {
	dir := storeWithPods(t)
	_, c := startStore(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	// A quiet period longer than the test's bound: passing must not wait.
	if err := c.CheckStore(ctx, time.Minute); err != nil {
		t.Fatalf("check of a healthy store: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the check of a healthy store took %v", took)
	}
	inf := bus.NewInformer(c, c.Pods, time.Hour, bustest.Logger(t))
	done := make(chan error, 1)
	rctx, rcancel := context.WithCancel(ctx)
	go func() { done <- inf.Run(rctx) }()
	defer func() { rcancel(); <-done }()
	if err := inf.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(inf.List()); n != 20 {
		t.Fatalf("%d pods after a restart, want 20", n)
	}
}

// A block file cut short while stopped loses the bucket's last writes;
// the server says nothing (it marks them deleted). The check names the
// bucket and the revisions lost, and the store is otherwise usable.
func TestTruncatedStoreReportsLostWrites(t *testing.T) {
	dir := storeWithPods(t)
	blk := filepath.Join(dir, "jetstream", "$G", "streams", "KV_pods", "msgs", "1.blk")
	fi, err := os.Stat(blk)
	if err != nil {
		t.Fatal(err)
	}
	// Into the last record (p19, revision 20) only.
	if err := os.Truncate(blk, fi.Size()-10); err != nil {
		t.Fatal(err)
	}
	_, c := startStore(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = c.CheckStore(ctx, 500*time.Millisecond)
	var lw *bus.LostWritesError
	if !errors.As(err, &lw) || !bus.OnlyLostWrites(err) || !errors.Is(err, bus.ErrStoreCorrupt) {
		t.Fatalf("check of a truncated store: %v", err)
	}
	if lw.Bucket != bus.BucketPods || lw.From != 20 || lw.To != 20 {
		t.Fatalf("reported %+v", lw)
	}
	t.Log(err)
	if _, err := c.Pods.Get(ctx, "p18"); err != nil {
		t.Fatalf("p18, written before the lost tail: %v", err)
	}
	// A new write makes the tail whole again: the next start is quiet.
	p := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "p19"}, PodSpec: schemas.PodSpec{Image: "busybox"}}
	if err := c.Pods.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckStore(ctx, 500*time.Millisecond); err != nil {
		t.Fatalf("check after a new write: %v", err)
	}
}

// A bucket whose last write was a delete loses that marker to
// compaction, which records the revision first: a healthy compacted
// bucket never looks like one that lost its tail.
func TestCompactedBucketPassesCheck(t *testing.T) {
	dir := storeWithPods(t)
	ns, c := startStore(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, name := range []string{"p3", "p4"} {
		if err := c.Pods.Delete(ctx, name, 0); err != nil {
			t.Fatal(err)
		}
	}
	last, _, err := c.Pods.Revisions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	removed, err := c.Pods.Compact(ctx, last)
	if err != nil || removed != 2 {
		t.Fatalf("compact to %d: removed %d, %v (want both markers)", last, removed, err)
	}
	if err := c.CheckStore(ctx, 500*time.Millisecond); err != nil {
		t.Fatalf("check after compaction: %v", err)
	}
	// A write after the compaction, then cut off on disk, is reported.
	p := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "late"}, PodSpec: schemas.PodSpec{Image: "busybox"}}
	if err := c.Pods.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	lateRev := p.ResourceVersion
	c.Close()
	ns.Shutdown()
	ns.WaitForShutdown()
	blks, err := filepath.Glob(filepath.Join(dir, "jetstream", "$G", "streams", "KV_pods", "msgs", "*.blk"))
	if err != nil || len(blks) == 0 {
		t.Fatalf("no block files: %v", err)
	}
	slices.Sort(blks) // one digit here: the last is the newest
	fi, err := os.Stat(blks[len(blks)-1])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(blks[len(blks)-1], fi.Size()-10); err != nil {
		t.Fatal(err)
	}
	_, c = startStore(t, dir)
	err = c.CheckStore(ctx, 500*time.Millisecond)
	var lw *bus.LostWritesError
	if !errors.As(err, &lw) || lw.From != lateRev || lw.To != lateRev {
		t.Fatalf("check of a compacted bucket whose last write was cut off (revision %d): %v", lateRev, err)
	}
}
