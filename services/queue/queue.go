// Package queue is the work queue every reconcile loop uses: keys are
// deduplicated while waiting, a key is never processed by two workers at
// once, and a key added while it is being processed runs again afterwards,
// so the last change is never missed. Failed keys are retried with backoff.
package queue

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"github.com/miniku/miniku/internal/shrink"
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
	// a later AddAfter of the key due no sooner changes nothing, so a
	// burst of delayed adds costs one entry.
	delayed map[string]time.Time
	// waiting orders the delayed adds by due time (an entry superseded by
	// an earlier one of its key is skipped when it comes up), for one
	// goroutine, timing, that runs while it is not empty. A goroutine and a
	// timer per delayed key, as before, meant ~80,000 goroutines at once
	// with 100,000 unschedulable pods: their descriptors (~480 bytes
	// each), which Go never frees, were 39 MB of the heap left once every
	// pod was deleted, and their stacks hundreds of MB of RSS until the
	// scavenger got to them.
	waiting waitHeap
	timing  bool
	wake    chan struct{}
	closed  bool
	wg      sync.WaitGroup // the timing goroutine
	stop    chan struct{}
	// peaks of the maps, which are rebuilt once they emptied (shrink).
	dirtyPeak, processingPeak, failuresPeak, delayedPeak shrink.Peak
}

// waitHeap is a min-heap of delayed adds by due time (container/heap).
type waitHeap []waitEntry

type waitEntry struct {
	due time.Time
	key string
}

func (h waitHeap) Len() int           { return len(h) }
func (h waitHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h waitHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *waitHeap) Push(x any)        { *h = append(*h, x.(waitEntry)) }
func (h *waitHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = waitEntry{}
	*h = shrink.Slice(old[:len(old)-1])
	return e
}

// New returns an empty queue.
func New() *Queue {
	q := &Queue{
		dirty:      map[string]bool{},
		processing: map[string]bool{},
		failures:   map[string]int{},
		delayed:    map[string]time.Time{},
		wake:       make(chan struct{}, 1),
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
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if at, ok := q.delayed[key]; ok && !at.After(due) {
		return
	}
	q.delayed[key] = due
	heap.Push(&q.waiting, waitEntry{due: due, key: key})
	switch {
	case !q.timing:
		q.timing = true
		q.wg.Add(1)
		go q.timeLoop()
	case q.waiting[0].key == key && q.waiting[0].due.Equal(due):
		// A new earliest entry: the loop sleeps until a later one.
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// timeLoop adds the delayed keys as they come due, until none is waiting
// or the queue closes.
func (q *Queue) timeLoop() {
	defer q.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	var ready []string
	for {
		q.mu.Lock()
		now := time.Now()
		for len(q.waiting) > 0 && !q.waiting[0].due.After(now) {
			e := heap.Pop(&q.waiting).(waitEntry)
			// An entry superseded by an earlier-due one of its key adds
			// nothing: that one added the key already, or will.
			if q.delayed[e.key].Equal(e.due) {
				delete(q.delayed, e.key)
				ready = append(ready, e.key)
			}
		}
		q.delayed = shrink.Map(q.delayed, &q.delayedPeak)
		if len(q.waiting) == 0 || q.closed {
			q.timing = false
			q.mu.Unlock()
			for _, key := range ready {
				q.Add(key)
			}
			return
		}
		next := q.waiting[0].due.Sub(now)
		q.mu.Unlock()
		for _, key := range ready {
			q.Add(key)
		}
		clear(ready)
		ready = ready[:0]
		t.Reset(next)
		select {
		case <-t.C:
		case <-q.wake:
		case <-q.stop:
			q.mu.Lock()
			q.timing = false
			q.mu.Unlock()
			return
		}
	}
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
	if len(q.order) == 0 {
		// The array of a burst's keys goes with it, instead of being
		// reused, a shorter slice at a time, for the next keys.
		q.order = nil
	}
	delete(q.dirty, key)
	q.dirty = shrink.Map(q.dirty, &q.dirtyPeak)
	q.processing[key] = true
	return key, true
}

func (q *Queue) done(key string, err error) time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.processing, key)
	q.processing = shrink.Map(q.processing, &q.processingPeak)
	var retry time.Duration
	if err != nil {
		n := q.failures[key]
		q.failures[key] = n + 1
		retry = min(10*time.Millisecond<<min(n, 12), 30*time.Second)
	} else if _, ok := q.failures[key]; ok {
		delete(q.failures, key)
		q.failures = shrink.Map(q.failures, &q.failuresPeak)
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
