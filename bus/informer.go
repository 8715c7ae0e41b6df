package bus

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniku/miniku/internal/shrink"
)

// Informer keeps an in-memory copy of a bucket, fed by a KV watch, tells
// handlers how it changed (Handler: the objects before and after) and keeps
// named indexes of it (AddIndex). It re-creates the watch whenever the NATS
// connection comes back (the client's own recovery takes 10-20 s) and on any
// watch error, and re-announces every key each resync period, so handlers
// are level-triggered: a missed change is always revisited. The keys are
// re-announced a slice at a time over the period (resyncSlices), so that a
// big cache does not land on its handlers in one burst: 150,000 pods at
// once every 30 s were a CPU spike that every request in it waited out.
//
// Objects handed out are shared with the cache and must not be modified.
type Informer[T any, P Object[T]] struct {
	bucket *Bucket[T, P]
	// push, when set, replaces the bucket's watch: the informer holds a
	// view the control plane pushes (nodepods.go), bucket is nil.
	push pushSource[P]
	// name is the bucket's, or the pushed view's.
	name   string
	conn   reconnectNotifier
	log    *slog.Logger
	resync time.Duration
	// stall: how long a watch's initial values may pause before the
	// bucket is checked for unreadable records (storecheck.go).
	stall time.Duration

	// deliver is held from a change of the cache to the end of its
	// delivery to handlers (taken before mu): handlers hear changes one at
	// a time in the order the cache made them, and may read the cache.
	deliver sync.Mutex
	mu      sync.RWMutex
	items   map[string]P
	// indexes are kept with items, under mu, on every change.
	indexes    map[string]*index[P]
	events     []eventHandler[P]
	tombstones map[string]tombstone
	// The maps are rebuilt once they emptied: a Go map keeps the table of
	// its peak, 100,000 pods' worth after they were all deleted.
	itemsPeak, tombstonesPeak shrink.Peak
	nextID                    int
	synced                    chan struct{}
	syncOnce                  sync.Once
	// rev: every write to the bucket up to this revision is reflected in
	// items (0: no complete snapshot yet). revWait is closed when rev
	// moves, if someone waits.
	rev     uint64
	revWait chan struct{}
	// hist, when kept (WithHistory), serves watches (history.go).
	hist *history[P]
	// retention is how long tombstones and history are kept.
	retention time.Duration
}

type tombstone struct {
	rev uint64
	at  time.Time
}

type reconnectNotifier interface {
	Reconnected() <-chan struct{}
}

// NewInformer returns an informer over bucket; call Run to start it.
func NewInformer[T any, P Object[T]](conn *Conn, bucket *Bucket[T, P], resync time.Duration, log *slog.Logger) *Informer[T, P] {
	inf := newInformer[T, P](conn, bucket.Name(), resync, log)
	inf.bucket = bucket
	return inf
}

func newInformer[T any, P Object[T]](conn *Conn, name string, resync time.Duration, log *slog.Logger) *Informer[T, P] {
	if resync <= 0 {
		resync = 30 * time.Second
	}
	return &Informer[T, P]{
		name:       name,
		conn:       conn,
		log:        log.With("informer", name),
		resync:     resync,
		stall:      DefaultInitialStall,
		items:      map[string]P{},
		indexes:    map[string]*index[P]{},
		tombstones: map[string]tombstone{},
		synced:     make(chan struct{}),
		retention:  DefaultRetention,
	}
}

// DefaultRetention is how long an informer remembers what went: a deleted
// key's tombstone (so that a late Observe of an older version does not
// bring it back) and, with a history, each change (so that a watch can
// resume from it without reading the bucket). Kubernetes' watch cache
// keeps its events 75 s (eventFreshDuration) the same way. Without an age
// bound, the history kept the last 8,192 changes for good: after a mass
// deletion, 8,192 deleted objects.
const DefaultRetention = 75 * time.Second

// WithRetention sets how long tombstones and history are kept (see
// DefaultRetention); they go at the first resync tick past that age. Call
// it before Run.
func (i *Informer[T, P]) WithRetention(d time.Duration) *Informer[T, P] {
	if d > 0 {
		i.retention = d
	}
	return i
}

type eventHandler[P any] struct {
	id int
	h  Handler[P]
}

// AddEventHandler registers h and, before any later change, calls its
// OnAdd with every object cached now (none before Run: h then hears the
// first snapshot as it loads), as client-go's AddEventHandler does; from
// then on h hears every change of the cache: the watch's, this process's
// own writes (Observe, ObserveDelete), keys found gone by a fresh snapshot,
// and an OnUpdate(obj, obj) of every object at each resync. remove
// unregisters h (a delivery under way may still reach it).
func (i *Informer[T, P]) AddEventHandler(h Handler[P]) (remove func()) {
	i.deliver.Lock()
	defer i.deliver.Unlock()
	i.mu.Lock()
	i.nextID++
	id := i.nextID
	// Copy on write: deliveries iterate a snapshot without the lock.
	i.events = append(i.events[:len(i.events):len(i.events)], eventHandler[P]{id: id, h: h})
	objs := make([]P, 0, len(i.items))
	for _, o := range i.items {
		objs = append(objs, o)
	}
	i.mu.Unlock()
	for _, o := range objs {
		h.OnAdd(o)
	}
	return func() {
		i.mu.Lock()
		defer i.mu.Unlock()
		i.events = slices.DeleteFunc(slices.Clone(i.events), func(e eventHandler[P]) bool { return e.id == id })
	}
}

// JoinEventHandler attaches h to an informer someone else runs (one cache
// shared by several components of a process): once the cache reflects
// every write made to the bucket before the call, it registers h as
// AddEventHandler does, so h hears every cached object once, then every
// change. Call remove when done.
func (i *Informer[T, P]) JoinEventHandler(ctx context.Context, h Handler[P]) (remove func(), err error) {
	if err := i.WaitSynced(ctx); err != nil {
		return nil, err
	}
	if err := i.waitCurrentRetrying(ctx); err != nil {
		return nil, fmt.Errorf("join the %s cache: %w", i.name, err)
	}
	return i.AddEventHandler(h), nil
}

// waitCurrentRetrying is WaitCurrent retrying the revision read, which
// fails only while NATS is away, until it is back or ctx ends.
func (i *Informer[T, P]) waitCurrentRetrying(ctx context.Context) error {
	if i.bucket == nil {
		return nil // a pushed view: synced is as current as it knows
	}
	for {
		rev, err := i.bucketRevision(ctx)
		if err == nil {
			return i.WaitRevision(ctx, rev)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// AddIndex keeps, from now on, the cached objects by the values fn gives
// each (ByIndex, IndexValues), updated with the cache on every change. A
// name stands for one function: adding a name already indexed keeps the
// first, so components sharing a cache can each declare the indexes they
// use from one declaration (PodsByNode, PodsByOwner, PodsByOwnerUID).
// fn must not modify the object and must return the same values for the
// same object.
func (i *Informer[T, P]) AddIndex(name string, fn func(P) []string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if _, ok := i.indexes[name]; ok {
		return
	}
	x := newIndex(fn)
	for key, o := range i.items {
		x.add(key, o, fn(o))
	}
	i.indexes[name] = x
}

// ByIndex returns the cached objects index name holds under value, in no
// particular order; none if the index was never added.
func (i *Informer[T, P]) ByIndex(name, value string) []P {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if x := i.indexes[name]; x != nil {
		return x.values(value)
	}
	return nil
}

// IndexValues returns the values index name holds objects under.
func (i *Informer[T, P]) IndexValues(name string) []string {
	i.mu.RLock()
	defer i.mu.RUnlock()
	x := i.indexes[name]
	if x == nil {
		return nil
	}
	out := make([]string, 0, len(x.m))
	for v := range x.m {
		out = append(out, v)
	}
	return out
}

// Synced is closed once the first full snapshot is loaded.
func (i *Informer[T, P]) Synced() <-chan struct{} { return i.synced }

// WaitSynced blocks until the first snapshot is loaded or ctx ends.
func (i *Informer[T, P]) WaitSynced(ctx context.Context) error {
	select {
	case <-i.synced:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Revision is the bucket revision up to which the cache reflects every
// write; 0 before the first complete snapshot.
func (i *Informer[T, P]) Revision() uint64 {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.rev
}

// WaitRevision blocks until the cache reflects every write up to rev, or
// ctx ends.
func (i *Informer[T, P]) WaitRevision(ctx context.Context, rev uint64) error {
	for {
		i.mu.Lock()
		if i.rev >= rev {
			i.mu.Unlock()
			return nil
		}
		if i.revWait == nil {
			i.revWait = make(chan struct{})
		}
		ch := i.revWait
		i.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// WaitCurrent blocks until the cache reflects every write made to the
// bucket before the call: one small request for the bucket's revision.
func (i *Informer[T, P]) WaitCurrent(ctx context.Context) error {
	rev, err := i.bucketRevision(ctx)
	if err != nil {
		return err
	}
	if err := i.WaitRevision(ctx, rev); err != nil {
		return fmt.Errorf("wait for %s cache to reach revision %d: %w", i.name, rev, err)
	}
	return nil
}

// errFeedRevision: a fed informer's reader may not read the bucket it
// derives from (a kubelet, the pods bucket), so it cannot wait for it.
var errFeedRevision = errors.New("a pushed view has no bucket revision to wait for")

func (i *Informer[T, P]) bucketRevision(ctx context.Context) (uint64, error) {
	if i.bucket == nil {
		return 0, fmt.Errorf("%s: %w", i.name, errFeedRevision)
	}
	return i.bucket.Revision(ctx)
}

// ListConsistent lists the cache once it reflects every write made before
// the call, as a List of the bucket would (Kubernetes serves lists from its
// watch cache the same way) instead of reading every value.
func (i *Informer[T, P]) ListConsistent(ctx context.Context) ([]P, error) {
	if err := i.WaitCurrent(ctx); err != nil {
		return nil, err
	}
	return i.List(), nil
}

// advanceLocked records that every write up to rev is reflected.
func (i *Informer[T, P]) advanceLocked(rev uint64) {
	if rev <= i.rev {
		return
	}
	i.rev = rev
	if i.revWait != nil {
		close(i.revWait)
		i.revWait = nil
	}
}

// Get returns the cached object.
func (i *Informer[T, P]) Get(name string) (P, bool) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	o, ok := i.items[name]
	return o, ok
}

// List returns all cached objects, in no particular order.
func (i *Informer[T, P]) List() []P {
	i.mu.RLock()
	defer i.mu.RUnlock()
	out := make([]P, 0, len(i.items))
	for _, o := range i.items {
		out = append(out, o)
	}
	return out
}

// Observe records an object this process just wrote, so its next decision
// sees its own write even before the watch delivers it. Older revisions
// than the cached one are ignored.
func (i *Informer[T, P]) Observe(obj P) {
	name := obj.GetMeta().Name
	rev := obj.GetMeta().ResourceVersion
	i.deliver.Lock()
	defer i.deliver.Unlock()
	i.mu.Lock()
	if t, ok := i.tombstones[name]; ok && t.rev >= rev {
		i.mu.Unlock()
		return
	}
	if cur, ok := i.items[name]; ok && cur.GetMeta().ResourceVersion >= rev {
		i.mu.Unlock()
		return
	}
	c := i.putLocked(name, obj)
	hs := i.events
	i.mu.Unlock()
	c.deliver(hs)
}

// ObserveDelete records a deletion this process just made.
func (i *Informer[T, P]) ObserveDelete(name string, rev uint64) {
	i.deliver.Lock()
	defer i.deliver.Unlock()
	i.mu.Lock()
	cur, ok := i.items[name]
	if !ok || cur.GetMeta().ResourceVersion > rev {
		i.mu.Unlock()
		return
	}
	c := i.deleteItemLocked(name)
	i.tombstones[name] = tombstone{rev: rev, at: time.Now()}
	hs := i.events
	i.mu.Unlock()
	c.deliver(hs)
}

// change is one change of the cache, for its handlers: key was old (had)
// and is now obj (has).
type change[P any] struct {
	old, obj P
	had, has bool
}

func (c change[P]) deliver(hs []eventHandler[P]) {
	for _, e := range hs {
		switch {
		case c.had && c.has:
			e.h.OnUpdate(c.old, c.obj)
		case c.has:
			e.h.OnAdd(c.obj)
		case c.had:
			e.h.OnDelete(c.old)
		}
	}
}

// putLocked caches obj under key, indexes included.
func (i *Informer[T, P]) putLocked(key string, obj P) change[P] {
	old, had := i.items[key]
	i.items[key] = obj
	for _, x := range i.indexes {
		x.update(key, old, had, obj)
	}
	return change[P]{old: old, had: had, obj: obj, has: true}
}

// deleteItemLocked drops key from the cache, indexes included.
func (i *Informer[T, P]) deleteItemLocked(key string) change[P] {
	old, had := i.items[key]
	if !had {
		return change[P]{}
	}
	delete(i.items, key)
	i.items = shrink.Map(i.items, &i.itemsPeak)
	for _, x := range i.indexes {
		x.remove(key, x.fn(old))
	}
	return change[P]{old: old, had: true}
}

// resyncSlices is how many slices of the keys a resync period re-announces,
// one per tick; a tick is never shorter than minResyncTick.
const (
	resyncSlices  = 30
	minResyncTick = 10 * time.Millisecond
)

// resyncTicks is the number of ticks (slices) per resync period.
func (i *Informer[T, P]) resyncTicks() int {
	return max(1, min(resyncSlices, int(i.resync/minResyncTick)))
}

// DefaultInitialStall is how long a watch's initial values may pause before
// the informer looks for unreadable records: the server sends a healthy
// bucket's values without pauses.
const DefaultInitialStall = 5 * time.Second

// Run follows the bucket until ctx ends. It fails with a *CorruptError
// when the bucket holds records the server cannot read: its watch would
// never finish its first snapshot, and nothing it could do repairs that.
func (i *Informer[T, P]) Run(ctx context.Context) error {
	resync := time.NewTicker(i.resync / time.Duration(i.resyncTicks()))
	defer resync.Stop()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		reconnected := i.conn.Reconnected()
		var err error
		if i.push != nil {
			err = i.watchPushed(ctx, reconnected, resync.C)
		} else {
			err = i.watch(ctx, reconnected, resync.C)
		}
		if ctx.Err() != nil {
			break
		}
		if errors.Is(err, ErrStoreCorrupt) {
			i.log.Error("bucket cannot be read", "err", err)
			return err
		}
		if err != nil {
			i.log.Warn("watch ended, restarting", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
	}
	return nil
}

// errRestart asks Run for a fresh watch (after a reconnect) without a delay.
var errRestart error

// watch runs one watcher until it fails, the connection is re-established
// or ctx ends. A fresh watcher replays the current value of every key, which
// doubles as a full resync.
func (i *Informer[T, P]) watch(ctx context.Context, reconnected <-chan struct{}, resync <-chan time.Time) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Every key not in the snapshot with a revision up to the stream's last
	// sequence before the watch started is gone; later writes are kept.
	snapshotMax, err := i.bucket.Revision(wctx)
	if err != nil {
		return err
	}
	w, err := i.bucket.kv.WatchAll(wctx)
	if err != nil {
		return err
	}
	defer w.Stop()

	i.mu.Lock()
	i.resetHistoryLocked()
	i.mu.Unlock()
	seen := map[string]bool{}
	initial := true
	stalled := time.NewTimer(i.stall)
	defer stalled.Stop()
	tick := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-stalled.C:
			if !initial {
				continue
			}
			keys, err := i.bucket.unreadable(wctx, seen)
			if err != nil {
				return err
			}
			if len(keys) > 0 {
				return i.bucket.corrupt(keys)
			}
			i.log.Warn("first values of the bucket slow to come", "received", len(seen), "waited", i.stall)
			stalled.Reset(i.stall)
		case <-reconnected:
			i.log.Info("connection re-established, re-watching")
			return errRestart
		case <-resync:
			// What went is forgotten a tick after it expires, not a whole
			// period (5 minutes for the apiserver's caches) later: 100,000
			// tombstones after a mass deletion are megabytes.
			i.expire(time.Now())
			n := i.resyncTicks()
			i.notifySlice(tick%n, n)
			tick++
		case e, ok := <-w.Updates():
			if !ok {
				return errWatchClosed
			}
			if e == nil {
				if initial {
					initial = false
					stalled.Stop()
					i.finishSnapshot(seen, snapshotMax)
					seen = nil
				}
				continue
			}
			if initial {
				seen[e.Key()] = true
				snapshotMax = max(snapshotMax, e.Revision())
				stalled.Reset(i.stall)
			}
			// Past the snapshot, entries come in revision order: each one
			// means every write before it is reflected.
			i.apply(e, !initial)
		}
	}
}

type watchError string

func (e watchError) Error() string { return string(e) }

const errWatchClosed = watchError("watcher closed")

func (i *Informer[T, P]) apply(e jetstream.KeyValueEntry, advance bool) {
	name := e.Key()
	var c change[P]
	switch e.Operation() {
	case jetstream.KeyValueDelete, jetstream.KeyValuePurge:
		i.deliver.Lock()
		defer i.deliver.Unlock()
		i.mu.Lock()
		c = i.deleteItemLocked(name)
		i.tombstones[name] = tombstone{rev: e.Revision(), at: time.Now()}
		if advance {
			i.advanceLocked(e.Revision())
		}
		i.recordLocked(e.Revision(), name, nil, advance)
	default:
		obj, err := i.bucket.decode(e)
		i.deliver.Lock()
		defer i.deliver.Unlock()
		i.mu.Lock()
		if advance {
			i.advanceLocked(e.Revision())
		}
		if err != nil {
			i.mu.Unlock()
			i.log.Warn("skipping undecodable value", "key", name, "err", err)
			return
		}
		i.recordLocked(e.Revision(), name, obj, advance)
		if cur, ok := i.items[name]; ok && cur.GetMeta().ResourceVersion > e.Revision() {
			i.mu.Unlock()
			return
		}
		c = i.putLocked(name, obj)
		if _, ok := i.tombstones[name]; ok {
			delete(i.tombstones, name)
			i.tombstones = shrink.Map(i.tombstones, &i.tombstonesPeak)
		}
	}
	hs := i.events
	i.mu.Unlock()
	c.deliver(hs)
}

// finishSnapshot drops cached keys the new snapshot no longer has: they were
// deleted while we were not watching. Keys written after the snapshot was
// taken (revision above its maximum) are kept.
func (i *Informer[T, P]) finishSnapshot(seen map[string]bool, snapshotMax uint64) {
	var gone []string
	i.deliver.Lock()
	i.mu.Lock()
	for name, obj := range i.items {
		if !seen[name] && obj.GetMeta().ResourceVersion <= snapshotMax {
			gone = append(gone, name)
		}
	}
	changes := make([]change[P], 0, len(gone))
	for _, name := range gone {
		changes = append(changes, i.deleteItemLocked(name))
	}
	if i.hist != nil {
		for name, obj := range i.hist.watched {
			if !seen[name] && obj.GetMeta().ResourceVersion <= snapshotMax {
				i.forgetLocked(name)
			}
		}
	}
	i.advanceLocked(snapshotMax)
	i.startHistoryLocked(i.rev)
	hs := i.events
	i.mu.Unlock()
	for _, c := range changes {
		c.deliver(hs)
	}
	i.deliver.Unlock()
	// Synced only once the snapshot's changes were delivered: a handler
	// added once Synced is closed hears the whole cache, then changes.
	i.syncOnce.Do(func() { close(i.synced) })
}

// notifySlice announces the keys in slice k of n (by a hash of the name,
// so every key is in exactly one).
func (i *Informer[T, P]) notifySlice(k, n int) {
	if n == 1 {
		i.notifyKeys(nil)
		return
	}
	i.notifyKeys(func(name string) bool { return sliceOf(name, n) == k })
}

// notifyKeys hands every cached object whose key keep accepts (nil: all)
// to the handlers' OnUpdate as both old and new, outside the cache's lock:
// handlers may read the cache.
func (i *Informer[T, P]) notifyKeys(keep func(key string) bool) {
	i.deliver.Lock()
	defer i.deliver.Unlock()
	i.mu.RLock()
	hs := i.events
	if len(hs) == 0 {
		i.mu.RUnlock()
		return
	}
	var objs []P
	for key, o := range i.items {
		if keep == nil || keep(key) {
			objs = append(objs, o)
		}
	}
	i.mu.RUnlock()
	for _, o := range objs {
		for _, e := range hs {
			e.h.OnUpdate(o, o)
		}
	}
}

// sliceSeed keeps a key in the same resync slice for the process's life.
var sliceSeed = maphash.MakeSeed()

// sliceOf is the resync slice, of n, that name belongs to.
func sliceOf(name string, n int) int { return int(maphash.String(sliceSeed, name) % uint64(n)) }

// expire drops the tombstones and history older than the retention.
func (i *Informer[T, P]) expire(now time.Time) {
	cutoff := now.Add(-i.retention)
	i.mu.Lock()
	defer i.mu.Unlock()
	i.expireHistoryLocked(now, cutoff)
	for name, t := range i.tombstones {
		if t.at.Before(cutoff) {
			delete(i.tombstones, name)
		}
	}
	i.tombstones = shrink.Map(i.tombstones, &i.tombstonesPeak)
}

// Caches makes the caches a component runs itself, when it was not given
// shared ones (miniku up gives its components one cache per bucket).
type Caches struct {
	Conn   *Conn
	Resync time.Duration
	Log    *slog.Logger
	// History, if set, is kept by each cache made (WithHistory).
	History int
	// Own collects the Runs of the caches made, for the component to
	// start.
	Own []func(context.Context) error
}

// CacheOf returns shared when set (its handlers are the caller's to join,
// JoinEventHandler, when it starts); else a new cache of bucket with h as
// its handler (nil: none), whose Run joins c.Own.
func CacheOf[T any, P Object[T]](c *Caches, shared *Informer[T, P], bucket *Bucket[T, P], h Handler[P]) *Informer[T, P] {
	if shared != nil {
		return shared
	}
	inf := NewInformer(c.Conn, bucket, c.Resync, c.Log)
	if c.History > 0 {
		inf.WithHistory(c.History)
	}
	if h != nil {
		inf.AddEventHandler(h)
	}
	c.Own = append(c.Own, inf.Run)
	return inf
}
