package bus

import (
	"errors"
	"sync"
	"time"

	"github.com/miniku/miniku/internal/shrink"
)

// An informer with history (WithHistory) is a watch cache, as Kubernetes'
// apiserver keeps one: it remembers the bucket's recent changes, in
// revision order, with the version each replaced, so that watches are
// served from memory instead of a JetStream consumer each (every HTTP watch
// cost the server a delivery and the apiserver a decode per write).

// DefaultHistory is how many changes a watch cache remembers, for at most
// its retention (DefaultRetention): a watch can resume from there without
// reading the bucket.
const DefaultHistory = 8192

// Change is one write to the bucket, as the informer's watch delivered it.
// A history holds changes in strictly increasing revision order, but not
// necessarily every revision: a bucket keeps one version per key, so a
// version overwritten or deleted before the watch read it is gone (a KV
// watcher resuming there would not see it either). Prev is the version the
// cache held, hence nil for the deletion of a key the watch never saw.
type Change[P any] struct {
	Rev  uint64
	Name string
	// Obj is the new version; nil: deleted.
	Obj P
	// Prev is the version it replaced; nil: the key did not exist.
	Prev P
}

// ErrNoHistory means a watch cannot be served from the informer's
// history: it keeps none, is between watches (after a reconnect), or the
// revision asked for is older than what it remembers or newer than what it
// has seen. Read the bucket instead.
var ErrNoHistory = errors.New("no history for that revision")

// Feed delivers changes to one watcher. C is closed when the informer drops
// the feed: the watcher fell more than its buffer behind, or the informer
// restarted its watch (a reconnect); Close ends it from the watcher's side.
type Feed[P any] struct {
	C    <-chan Change[P]
	c    chan Change[P]
	once sync.Once
	drop func(*Feed[P])
}

// Close stops the feed; C is closed.
func (f *Feed[P]) Close() { f.drop(f) }

type history[P any] struct {
	size int
	// valid: the ring holds every change after floor, up to the
	// informer's revision. False between a watch restart and its snapshot.
	valid bool
	floor uint64
	// watched is each key's latest version as the watch delivered it
	// (never an Observe'd one): the state at the informer's revision.
	watched     map[string]P
	watchedPeak shrink.Peak
	// ring holds the changes, oldest at start; it grows as changes come,
	// up to size, and shrinks when retention empties it, so an idle or a
	// drained informer does not hold size slots (~700 KB at 8192).
	ring       []Change[P]
	start, len int
	feeds      map[*Feed[P]]struct{}
	// marks are the informer's revision at each resync tick, oldest first:
	// every change up to a mark's rev happened before its time, which is
	// how changes past the retention are found without a time each.
	marks []revMark
}

type revMark struct {
	rev uint64
	at  time.Time
}

// WithHistory makes the informer remember its last size changes for
// WatchChanges. Call it before Run.
func (i *Informer[T, P]) WithHistory(size int) *Informer[T, P] {
	i.hist = &history[P]{size: size, watched: map[string]P{}, feeds: map[*Feed[P]]struct{}{}}
	return i
}

// HasHistory says whether the informer keeps a history (WithHistory).
func (i *Informer[T, P]) HasHistory() bool { return i.hist != nil }

// WatchChanges starts a feed of the changes after revision from. With from
// 0 it also returns every current object and the revision they reflect,
// and the feed starts after that revision. buffer is how many changes the
// watcher may fall behind before the feed is dropped.
func (i *Informer[T, P]) WatchChanges(from uint64, buffer int) (snapshot []P, rev uint64, feed *Feed[P], err error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	h := i.hist
	if h == nil || !h.valid || (from != 0 && (from < h.floor || from > i.rev)) {
		return nil, 0, nil, ErrNoHistory
	}
	var replay []Change[P]
	if from == 0 {
		snapshot = make([]P, 0, len(h.watched))
		for _, o := range h.watched {
			snapshot = append(snapshot, o)
		}
	} else {
		for k := range h.len {
			if c := h.ring[(h.start+k)%len(h.ring)]; c.Rev > from {
				replay = append(replay, c)
			}
		}
	}
	c := make(chan Change[P], buffer+len(replay))
	for _, ch := range replay {
		c <- ch
	}
	feed = &Feed[P]{C: c, c: c}
	feed.drop = func(f *Feed[P]) {
		i.mu.Lock()
		defer i.mu.Unlock()
		i.dropFeedLocked(f)
	}
	h.feeds[feed] = struct{}{}
	return snapshot, i.rev, feed, nil
}

func (i *Informer[T, P]) dropFeedLocked(f *Feed[P]) {
	if _, ok := i.hist.feeds[f]; !ok {
		return
	}
	delete(i.hist.feeds, f)
	f.once.Do(func() { close(f.c) })
}

// recordLocked notes a change the watch delivered: name is now obj (nil:
// deleted) at rev. inOrder says it came past the snapshot, in revision
// order, so it is a change of the history; snapshot entries only update
// the state.
func (i *Informer[T, P]) recordLocked(rev uint64, name string, obj P, inOrder bool) {
	h := i.hist
	if h == nil {
		return
	}
	prev := h.watched[name]
	if obj == nil {
		delete(h.watched, name)
		h.watched = shrink.Map(h.watched, &h.watchedPeak)
	} else {
		h.watched[name] = obj
	}
	if !inOrder || !h.valid {
		return
	}
	c := Change[P]{Rev: rev, Name: name, Obj: obj, Prev: prev}
	if h.len == len(h.ring) && h.len < h.size {
		h.resize(min(max(2*h.len, minRing), h.size))
	}
	if h.len == h.size {
		h.floor = h.ring[h.start].Rev
		h.start = (h.start + 1) % len(h.ring)
		h.len--
	}
	h.ring[(h.start+h.len)%len(h.ring)] = c
	h.len++
	for f := range h.feeds {
		select {
		case f.c <- c:
		default:
			i.dropFeedLocked(f) // too far behind
		}
	}
}

// forgetLocked is the history's part of a key found gone at a snapshot.
func (i *Informer[T, P]) forgetLocked(name string) {
	if h := i.hist; h != nil {
		delete(h.watched, name)
		h.watched = shrink.Map(h.watched, &h.watchedPeak)
	}
}

// resetHistoryLocked ends the history at a watch restart: what happened
// while the watch was down is not known change by change.
func (i *Informer[T, P]) resetHistoryLocked() {
	h := i.hist
	if h == nil {
		return
	}
	h.valid = false
	h.start, h.len = 0, 0
	h.marks = nil
	h.ring = nil
	for f := range h.feeds {
		i.dropFeedLocked(f)
	}
}

// startHistoryLocked begins a history at the snapshot's revision.
func (i *Informer[T, P]) startHistoryLocked(rev uint64) {
	if h := i.hist; h != nil {
		h.valid, h.floor = true, rev
	}
}

// expireHistoryLocked drops the changes made before cutoff (as far as the
// marks tell) and records the informer's revision at now. A watch from a
// revision no longer kept reads the bucket (ErrNoHistory), as one past the
// ring's size always did.
func (i *Informer[T, P]) expireHistoryLocked(now, cutoff time.Time) {
	h := i.hist
	if h == nil || !h.valid {
		return
	}
	var upTo uint64
	k := 0
	for k < len(h.marks) && h.marks[k].at.Before(cutoff) {
		upTo = h.marks[k].rev
		k++
	}
	h.marks = append(h.marks[:0], h.marks[k:]...)
	h.marks = append(h.marks, revMark{rev: i.rev, at: now})
	for h.len > 0 && h.ring[h.start].Rev <= upTo {
		h.floor = h.ring[h.start].Rev
		h.ring[h.start] = Change[P]{} // its objects may go
		h.start = (h.start + 1) % len(h.ring)
		h.len--
	}
	if len(h.ring) > minRing && h.len < len(h.ring)/4 {
		h.resize(max(2*h.len, minRing))
	}
}

// minRing is the smallest ring a history with changes keeps.
const minRing = 64

// resize moves the ring's changes, in order, into a new ring of n slots
// (n >= h.len).
func (h *history[P]) resize(n int) {
	ring := make([]Change[P], n)
	for k := range h.len {
		ring[k] = h.ring[(h.start+k)%len(h.ring)]
	}
	h.ring, h.start = ring, 0
}
