package apiserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/services/apiserver"
)

// After a mass of pods is created, listed and deleted through the API, the
// process's heap comes back near where it was: the caches (informer with
// history, the apiserver's JSON cache) give back what the objects took,
// instead of keeping maps sized for the peak. Real NATS, real HTTP; the
// delete markers are compacted as the Compactor does after its delay, so
// what is left is the process's own.
func TestMemoryReturnsAfterMassDeletion(t *testing.T) {
	// 20,000 pods (under a minute on a loaded 2-core machine); under the
	// race detector, which slows each request several times, 5,000: the
	// old code failed the bounds with either.
	n := 20000
	if testing.Short() || raceEnabled {
		n = 5000
	}
	ns := bustest.Server(t, "", "")
	// Warnings only: a line per pod would stay in the test's log buffer,
	// on the heap being measured.
	log := slog.New(slog.NewTextHandler(tbWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	conn := bustest.Conn(t, ns.ClientURL(), log)
	cfg := apiserver.Config{Addr: "127.0.0.1:0", Logger: log}
	// The caches as miniku up makes them, with a retention short enough
	// for a test: what went is forgotten 0.5 s later instead of 75 s.
	const retention = 500 * time.Millisecond
	cfg.Pods = bus.NewInformer(conn, conn.Pods, 3*time.Second, log).WithHistory(bus.DefaultHistory).WithRetention(retention)
	cfg.ReplicaSets = bus.NewInformer(conn, conn.ReplicaSets, 3*time.Second, log).WithHistory(bus.DefaultHistory).WithRetention(retention)
	cfg.Nodes = bus.NewInformer(conn, conn.Nodes, 3*time.Second, log).WithHistory(bus.DefaultHistory).WithRetention(retention)
	runCtx, stopCaches := context.WithCancel(context.Background())
	var cachesWG sync.WaitGroup
	for _, run := range []func(context.Context) error{cfg.Pods.Run, cfg.ReplicaSets.Run, cfg.Nodes.Run} {
		cachesWG.Go(func() { _ = run(runCtx) })
	}
	t.Cleanup(func() { stopCaches(); cachesWG.Wait() })
	for _, synced := range []func(context.Context) error{cfg.Pods.WaitSynced, cfg.ReplicaSets.WaitSynced, cfg.Nodes.WaitSynced} {
		if err := synced(runCtx); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := apiserver.New(cfg, conn)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	client := ts.Client()
	t.Cleanup(client.CloseIdleConnections)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	call := func(method, path, body string, want int) error {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, ts.URL+path, rd)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			return fmt.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, data)
		}
		return nil
	}
	// each runs fn for pods 0..count-1 on 32 connections.
	each := func(count int, fn func(i int) error) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, 1)
		next := make(chan int)
		for range 32 {
			wg.Go(func() {
				for i := range next {
					if err := fn(i); err != nil {
						select {
						case errs <- err:
						default:
						}
					}
				}
			})
		}
		for i := range count {
			next <- i
		}
		close(next)
		wg.Wait()
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
	}
	create := func(i int) error {
		return call("POST", "/pods", fmt.Sprintf(`{"name":"mass-%d","image":"busybox","command":["sleep","3600"],"labels":{"app":"mass","i":"%d"}}`, i, i), http.StatusCreated)
	}
	remove := func(i int) error { return call("DELETE", fmt.Sprintf("/pods/mass-%d", i), "", http.StatusOK) }
	// list lists the pods once (a list reads the cache once it holds every
	// write made before it) and checks their number.
	list := func(want int) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/pods", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var pods []json.RawMessage
		if err := json.NewDecoder(resp.Body).Decode(&pods); err != nil {
			t.Fatal(err)
		}
		if len(pods) != want {
			t.Fatalf("%d pods listed, want %d", len(pods), want)
		}
	}
	compact := func() {
		t.Helper()
		rev, _, err := conn.Pods.Revisions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Pods.Compact(ctx, rev); err != nil {
			t.Fatal(err)
		}
	}

	// A round of a few pods first, so that what is measured as before
	// holds every pool, connection buffer and lazily made structure.
	each(200, create)
	list(200)
	each(200, remove)
	list(0)
	compact()
	time.Sleep(2 * retention)
	before := heapInuse()

	phase := time.Now()
	each(n, create)
	list(n) // fills the JSON cache
	peak := heapInuse()
	t.Logf("%d pods created and listed in %s", n, time.Since(phase).Round(time.Millisecond))
	phase = time.Now()
	each(n, remove)
	list(0)
	compact()
	t.Logf("and deleted in %s", time.Since(phase).Round(time.Millisecond))
	// What went is forgotten after the retention, at a resync tick (0.1 s).
	time.Sleep(2 * retention)
	after := heapInuse()

	mb := func(b uint64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }
	t.Logf("heap in use: before %s, with %d pods %s, after deleting them %s (%.2f× before; %.0f%% of what the pods took kept)",
		mb(before), n, mb(peak), mb(after), float64(after)/float64(before), 100*(float64(after)-float64(before))/float64(peak-before))
	if peak < before+uint64(n)*1000 {
		t.Fatalf("with %d pods the heap grew by %s only: not a measurement of their memory", n, mb(peak-before))
	}
	// Before the fix, the maps of the peak, the history's last 8,192
	// changes (deleted pods) and the tombstones kept 5.3× the heap before
	// with 20,000 pods (54% of what the pods took), 2.4× with 5,000 (62%);
	// now 1.2-1.6× (8-12%): spans that a few live objects keep.
	const bound, keptBound = 2.0, 0.25
	kept := (float64(after) - float64(before)) / float64(peak-before)
	if float64(after) > bound*float64(before) || kept > keptBound {
		t.Fatalf("heap in use after deleting %d pods is %s, %.2f× the %s before (bound %.1f×), %.0f%% of the %s the pods took (bound %.0f%%)",
			n, mb(after), float64(after)/float64(before), mb(before), bound, 100*kept, mb(peak-before), 100*keptBound)
	}
}

// heapInuse is the heap in use after a full collection: what is live, plus
// the spans that live objects keep.
func heapInuse() uint64 {
	runtime.GC()
	runtime.GC() // sync.Pools are emptied over two collections
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
