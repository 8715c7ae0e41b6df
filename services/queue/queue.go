// Package queue is the work queue every reconcile loop uses: keys are
// deduplicated while waiting, a key is never processed by two workers at
// once, and a key added while it is being processed runs again afterwards,
// so the last change is never missed. Failed keys are retried with backoff.
package queue

import (
	"context"
	"sync"
	"time"
)

// Queue holds object names to reconcile.
type Queue struct {
	mu         sync.Mutex
	cond       *sync.Cond
	order      []string
	dirty      map[string]bool
	processing map[string]bool
	failures   map[string]int
	// delayed is, per key, the earliest time a pending AddAfter adds it:
	// a later AddAfter of the key due no sooner needs no timer of its own,
	// so a burst of delayed adds costs one timer.
	delayed map[string]time.Time
	closed  bool
	wg      sync.WaitGroup // timers of AddAfter
	stop    chan struct{}
}

// New returns an empty queue.
func New() *Queue {
	q := &Queue{
		dirty:      map[string]bool{},
		processing: map[string]bool{},
		failures:   map[string]int{},
		delayed:    map[string]time.Time{},
		stop:       make(chan struct{}),
	}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Add schedules key for processing.
func (q *Queue) Add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.dirty[key] {
		return
	}
	q.dirty[key] = true
	if !q.processing[key] {
		q.order = append(q.order, key)
		q.cond.Signal()
	}
}

// AddAfter schedules key after d. Delayed adds of one key coalesce: the
// key is added once at the earliest time asked for.
func (q *Queue) AddAfter(key string, d time.Duration) {
	if d <= 0 {
		q.Add(key)
		return
	}
	due := time.Now().Add(d)
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	if at, ok := q.delayed[key]; ok && !at.After(due) {
		q.mu.Unlock()
		return
	}
	q.delayed[key] = due
	q.wg.Add(1)
	q.mu.Unlock()
	go func() {
		defer q.wg.Done()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			// A timer superseded by an earlier-due one of the key adds
			// nothing: that one added the key already, or will.
			q.mu.Lock()
			mine := q.delayed[key].Equal(due)
			if mine {
				delete(q.delayed, key)
			}
			q.mu.Unlock()
			if mine {
				q.Add(key)
			}
		case <-q.stop:
		}
	}()
}

// Len is the number of keys waiting.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.order)
}

func (q *Queue) get() (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.order) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return "", false
	}
	key := q.order[0]
	q.order[0] = ""
	q.order = q.order[1:]
	delete(q.dirty, key)
	q.processing[key] = true
	return key, true
}

func (q *Queue) done(key string, err error) time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.processing, key)
	var retry time.Duration
	if err != nil {
		n := q.failures[key]
		q.failures[key] = n + 1
		retry = min(10*time.Millisecond<<min(n, 12), 30*time.Second)
	} else {
		delete(q.failures, key)
	}
	if q.dirty[key] && !q.closed {
		q.order = append(q.order, key)
		q.cond.Signal()
	}
	return retry
}

// Run processes keys with n workers until ctx ends. fn returning an error
// retries the key with exponential backoff (10 ms doubling to 30 s).
func (q *Queue) Run(ctx context.Context, n int, fn func(ctx context.Context, key string) error) {
	var wg sync.WaitGroup
	for range max(n, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				key, ok := q.get()
				if !ok {
					return
				}
				err := fn(ctx, key)
				if retry := q.done(key, err); err != nil && ctx.Err() == nil {
					q.AddAfter(key, retry)
				}
			}
		}()
	}
	<-ctx.Done()
	q.mu.Lock()
	q.closed = true
	close(q.stop)
	q.cond.Broadcast()
	q.mu.Unlock()
	wg.Wait()
	q.wg.Wait()
}
