package queue

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestDedupAndRerunWhileProcessing(t *testing.T) {
	q := New()
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	runs := map[string]int{}
	inFlight := map[string]bool{}
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.Run(ctx, 4, func(_ context.Context, key string) error {
			mu.Lock()
			if inFlight[key] {
				t.Errorf("%s processed twice at once", key)
			}
			inFlight[key] = true
			runs[key]++
			n := runs[key]
			mu.Unlock()
			if n == 1 {
				started <- struct{}{}
				<-release
			}
			mu.Lock()
			inFlight[key] = false
			mu.Unlock()
			return nil
		})
	}()
	q.Add("a")
	<-started
	// While "a" runs, three adds collapse into exactly one more run.
	q.Add("a")
	q.Add("a")
	q.Add("a")
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := runs["a"]
		mu.Unlock()
		if n == 2 && q.Len() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("runs = %d, want 2", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if runs["a"] != 2 {
		t.Fatalf("runs = %d, want exactly 2", runs["a"])
	}
}

func TestRetryOnError(t *testing.T) {
	q := New()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int32
	ok := make(chan struct{})
	go q.Run(ctx, 1, func(context.Context, string) error {
		if calls.Add(1) < 3 {
			return errors.New("transient")
		}
		close(ok)
		return nil
	})
	q.Add("k")
	select {
	case <-ok:
	case <-time.After(5 * time.Second):
		t.Fatalf("not retried: %d calls", calls.Load())
	}
}

// Delayed adds of one key coalesce into one timer at the earliest time
// asked for: a later, longer delay does not postpone a sooner one, and a
// burst of them runs the key once.
func TestAddAfterCoalesces(t *testing.T) {
	q := New()
	q.AddAfter("k", 300*time.Millisecond)
	q.AddAfter("k", 10*time.Millisecond)
	for range 100 {
		q.AddAfter("k", 30*time.Millisecond)
	}
	q.mu.Lock()
	timers := len(q.delayed)
	q.mu.Unlock()
	if timers != 1 {
		t.Fatalf("%d keys delayed, want 1", timers)
	}
	// The 10 ms add comes first, without waiting for the 300 ms one.
	deadline := time.Now().Add(5 * time.Second)
	for q.Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the 10 ms delayed add waited behind the 300 ms one")
		}
		runtime.Gosched()
	}
	key, _ := q.get()
	q.done(key, nil)
	// Every timer has fired by now: the superseded 300 ms one added
	// nothing more.
	q.wg.Wait()
	if n := q.Len(); n != 0 {
		t.Fatalf("%d keys queued after the coalesced add ran, want 0", n)
	}
}

// Delayed adds of many keys share one goroutine (a goroutine and a timer
// per key cost 100,000 goroutines with 100,000 unschedulable pods), come
// in due order, and leave no goroutine once all are added.
func TestAddAfterManyKeysOneGoroutine(t *testing.T) {
	q := New()
	before := runtime.NumGoroutine()
	const n = 10000
	for i := range n {
		// Later keys first, so the heap reorders them.
		q.AddAfter(fmt.Sprint(i), time.Duration(n-i)*20*time.Microsecond+50*time.Millisecond)
	}
	if g := runtime.NumGoroutine() - before; g > 1 {
		t.Fatalf("%d goroutines for %d delayed keys, want 1", g, n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for q.Len() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d delayed keys added", q.Len(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for range n {
		key, _ := q.get()
		q.done(key, nil)
	}
	// Due order, with delays far apart enough for a slow machine.
	for i, d := range []time.Duration{90, 30, 60} {
		q.AddAfter(fmt.Sprint("o", i), d*time.Millisecond)
	}
	for _, want := range []string{"o1", "o2", "o0"} {
		if key, _ := q.get(); key != want {
			t.Fatalf("delayed key out = %s, want %s (due order)", key, want)
		}
		q.done(want, nil)
	}
	q.wg.Wait() // the timing goroutine ends with nothing left to wait for
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.waiting) != 0 || len(q.delayed) != 0 || q.timing {
		t.Fatalf("after all came due: %d waiting, %d delayed, timing %v", len(q.waiting), len(q.delayed), q.timing)
	}
}
