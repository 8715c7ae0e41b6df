package queue

import (
	"context"
	"errors"
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
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var calls atomic.Int32
	ran := make(chan struct{}, 10)
	go func() {
		defer close(done)
		q.Run(ctx, 2, func(context.Context, string) error { calls.Add(1); ran <- struct{}{}; return nil })
	}()
	defer func() { cancel(); <-done }()

	q.AddAfter("k", time.Hour)
	q.AddAfter("k", 20*time.Millisecond)
	for range 100 {
		q.AddAfter("k", 30*time.Millisecond)
	}
	q.mu.Lock()
	timers := len(q.delayed)
	q.mu.Unlock()
	if timers != 1 {
		t.Fatalf("%d keys delayed, want 1", timers)
	}
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("the 20 ms delayed add waited behind the 1 h one")
	}
	time.Sleep(100 * time.Millisecond) // any stray timer would have fired
	if n := calls.Load(); n != 1 {
		t.Fatalf("key ran %d times, want 1", n)
	}
}
