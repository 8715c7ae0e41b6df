package apiserver

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/metrics"
	"github.com/miniku/miniku/internal/shrink"
	"github.com/miniku/miniku/schemas"
)

// Watch event types, as in Kubernetes.
const (
	watchAdded    = "ADDED"
	watchModified = "MODIFIED"
	watchDeleted  = "DELETED"
	watchBookmark = "BOOKMARK"
)

// watchContentType: one JSON object per line, flushed per event.
const watchContentType = "application/x-ndjson"

// maxWatchTimeout caps ?timeoutSeconds (a day).
const maxWatchTimeout = 86400

type watchEvent struct {
	Type   string `json:"type"`
	Object any    `json:"object"`
}

// deletedObject is what a DELETED event carries when the value is gone:
// the bucket keeps one revision per key, and a delete replaces the value
// with a marker.
type deletedObject struct {
	Name            string `json:"name"`
	ResourceVersion uint64 `json:"resourceVersion"`
}

// bookmark carries only the revision the watch has reached; a client
// resumes from it without replaying events it filtered out.
type bookmark struct {
	ResourceVersion uint64 `json:"resourceVersion"`
}

// isWatch says whether a list request asks for a watch. watch=false is a
// plain list, so the parameter is dropped for the list handler's strict
// query check; an unparsable value goes to the watch handler, which
// refuses it.
func isWatch(r *http.Request) bool {
	q := r.URL.Query()
	if !q.Has("watch") {
		return false
	}
	if b, err := strconv.ParseBool(q.Get("watch")); err == nil && !b {
		q.Del("watch")
		r.URL.RawQuery = q.Encode()
		return false
	}
	return true
}

// watchParams are the query parameters every watch accepts.
var watchParams = []string{"watch", "resourceVersion", "timeoutSeconds", "labelSelector"}

type watchOptions struct {
	// from is the resourceVersion to resume after; 0 starts with an ADDED
	// for every current object.
	from    uint64
	timeout time.Duration
	sel     map[string]string
}

func parseWatchOptions(r *http.Request, extra ...string) (watchOptions, error) {
	var o watchOptions
	q := r.URL.Query()
	if err := checkQuery(q, append(watchParams, extra...)...); err != nil {
		return o, err
	}
	if v := q.Get("watch"); v != "" {
		if b, err := strconv.ParseBool(v); err != nil || !b {
			return o, badRequest("watch: %q is not true", v)
		}
	}
	var err error
	// resourceVersion=0 means "from the current state", as in Kubernetes.
	if o.from, err = parseUintParam(r, "resourceVersion", 0, 0); err != nil {
		return o, err
	}
	secs, err := parseUintParam(r, "timeoutSeconds", 0, maxWatchTimeout)
	if err != nil {
		return o, err
	}
	o.timeout = time.Duration(secs) * time.Second
	if o.sel, err = parseSelector(q.Get("labelSelector")); err != nil {
		return o, err
	}
	return o, nil
}

func (s *Server) watchPods(ctx context.Context, w http.ResponseWriter, r *http.Request) (int, any, error) {
	o, err := parseWatchOptions(r, "nodeName")
	if err != nil {
		return 0, nil, err
	}
	q := r.URL.Query()
	var keep func(*schemas.Pod) bool
	if q.Has("nodeName") {
		node := q.Get("nodeName")
		if node != "" {
			if err := schemas.ValidateName("nodeName", node, schemas.MaxNameLength); err != nil {
				return 0, nil, badRequest("%s", err)
			}
		}
		keep = func(p *schemas.Pod) bool { return p.NodeName == node }
	}
	return serveWatch(ctx, s, w, r, s.conn.Pods, s.pods, o, keep)
}

func (s *Server) watchReplicaSets(ctx context.Context, w http.ResponseWriter, r *http.Request) (int, any, error) {
	o, err := parseWatchOptions(r)
	if err != nil {
		return 0, nil, err
	}
	return serveWatch(ctx, s, w, r, s.conn.ReplicaSets, s.rss, o, nil)
}

func (s *Server) watchNodes(ctx context.Context, w http.ResponseWriter, r *http.Request) (int, any, error) {
	o, err := parseWatchOptions(r)
	if err != nil {
		return 0, nil, err
	}
	return serveWatch(ctx, s, w, r, s.conn.Nodes, s.nodes, o, nil)
}

// watchState is what one watch knows about what its client has seen.
type watchState struct {
	// last is the highest revision processed (sent or filtered out): a
	// re-created KV watcher resumes after it, so the client sees no gap
	// and no duplicate.
	last uint64
	// has[name] is true when the client holds the object (it was sent and
	// matches the filter) and false when the client knows it is absent.
	// A name in neither has nor unknown is absent, except for a first
	// event at or below ambiguousUpTo.
	has map[string]bool
	// unknown names may or may not be held by a client that resumed from
	// a resourceVersion: they changed after it, and the bucket keeps one
	// revision per key, so what the client saw is gone.
	unknown       map[string]bool
	ambiguousUpTo uint64
	// snapshot: the initial ADDED events are still coming.
	snapshot bool
	// hasPeak: has is rebuilt once it emptied (shrink).
	hasPeak shrink.Peak
}

// absent records that the client knows name, last changed at rev, is
// absent. Past the ambiguous range that needs no entry: a watch open while
// 100,000 pods were deleted kept a false for each, for its whole life.
func (st *watchState) absent(name string, rev uint64) {
	if rev > st.ambiguousUpTo {
		if _, ok := st.has[name]; ok {
			delete(st.has, name)
			st.has = shrink.Map(st.has, &st.hasPeak)
		}
		return
	}
	st.has[name] = false
}

// event decides what, if anything, the client is told about e.
func (st *watchState) event(e jetstream.KeyValueEntry, obj any, matches bool) (string, any) {
	name := e.Key()
	had, known := st.has[name]
	if !known && !st.unknown[name] && e.Revision() > st.ambiguousUpTo {
		known = true // had is false
	}
	delete(st.unknown, name)
	switch e.Operation() {
	case jetstream.KeyValueDelete, jetstream.KeyValuePurge:
		if st.snapshot || (known && !had) {
			return "", nil
		}
		st.absent(name, e.Revision())
		return watchDeleted, deletedObject{Name: name, ResourceVersion: e.Revision()}
	}
	if !matches {
		if known && !had {
			return "", nil
		}
		// Leaving the selection is a deletion for this client. Unknown
		// (after a resume) errs on the side of telling: a DELETED for an
		// object the client never had is harmless, a missed one is not.
		st.absent(name, e.Revision())
		if st.snapshot {
			return "", nil
		}
		return watchDeleted, obj
	}
	st.has[name] = true
	switch {
	case had:
		return watchModified, obj
	case known || st.snapshot:
		return watchAdded, obj
	default:
		// After a resume a single revision per key cannot tell a creation
		// from an update made while the client was away.
		return watchModified, obj
	}
}

// resumeState works out what a client resuming after revision from holds:
// every current object unchanged since then (exactly), every object
// changed since (unknown), and nothing else, except that an object
// deleted since then leaves no trace but its delete marker, so any event
// up to the bucket's current end is ambiguous.
func resumeState[T any, P bus.Object[T]](ctx context.Context, b *bus.Bucket[T, P], from uint64, match func(P) bool) (*watchState, error) {
	st := &watchState{has: map[string]bool{}, unknown: map[string]bool{}, last: from}
	// List before reading the end of the stream: an object deleted in
	// between is then in the list (its delete will be sent) and anything
	// written in between falls in the ambiguous range, never the other
	// way round.
	objs, err := b.List(ctx)
	if err != nil {
		return nil, err
	}
	status, err := b.KV().Status(ctx)
	if err != nil {
		return nil, err
	}
	if bs, ok := status.(*jetstream.KeyValueBucketStatus); ok {
		st.ambiguousUpTo = bs.StreamInfo().State.LastSeq
	}
	for _, o := range objs {
		m := o.GetMeta()
		if m.ResourceVersion <= from {
			st.has[m.Name] = match(o)
		} else {
			st.unknown[m.Name] = true
		}
		st.ambiguousUpTo = max(st.ambiguousUpTo, m.ResourceVersion)
	}
	return st, nil
}

// serveWatch streams the changes of bucket as NDJSON watch events: from
// the informer's history when it has the revision asked for (no consumer,
// no decoding: Kubernetes' watch cache), else from a KV watcher of its own.
func serveWatch[T any, P bus.Object[T]](ctx context.Context, s *Server, w http.ResponseWriter, r *http.Request,
	b *bus.Bucket[T, P], inf *bus.Informer[T, P], o watchOptions, keep func(P) bool) (int, any, error) {
	sctx, cancel := s.streamContext(r)
	defer cancel()
	// A watch of a bucket that loses its quorum ends: the client re-lists
	// and is told 503, rather than waiting on a watch that went silent.
	sctx, stopLost := s.untilLost(sctx, b.Name())
	defer stopLost()
	if o.timeout > 0 {
		var c2 context.CancelFunc
		sctx, c2 = context.WithTimeout(sctx, o.timeout)
		defer c2()
	}
	match := func(p P) bool {
		return (len(o.sel) == 0 || schemas.SelectorMatches(o.sel, p.GetMeta().Labels)) && (keep == nil || keep(p))
	}
	if snapshot, rev, feed, err := watchFromCache(ctx, inf, o.from); err == nil {
		s.watchStats.cache.Add(1)
		metrics.Watch(b.Name(), "cache")
		return serveCachedWatch(sctx, s, w, b, o, match, snapshot, rev, feed)
	}
	if o.from != 0 {
		if err := checkResume(ctx, b, o.from); err != nil {
			return 0, nil, err
		}
	}
	s.watchStats.bucket.Add(1)
	metrics.Watch(b.Name(), "bucket")
	st := &watchState{has: map[string]bool{}, snapshot: true}
	var snapshotEnd uint64
	if o.from != 0 {
		var err error
		if st, err = resumeState(ctx, b, o.from, match); err != nil {
			return 0, nil, fmt.Errorf("watch %s: %w", b.Name(), err)
		}
	} else {
		// After the snapshot every revision up to the stream's end at the
		// start is accounted for (later ones arrive as changes).
		status, err := b.KV().Status(ctx)
		if err != nil {
			return 0, nil, fmt.Errorf("watch %s: %w", b.Name(), err)
		}
		if bs, ok := status.(*jetstream.KeyValueBucketStatus); ok {
			snapshotEnd = bs.StreamInfo().State.LastSeq
		}
	}
	// The first watcher is made before the 200 so that a store failure is
	// still a proper 503.
	reconnected := s.conn.Reconnected()
	kw, err := newKeyWatcher(ctx, b.KV(), st)
	if err != nil {
		return 0, nil, fmt.Errorf("watch %s: %w", b.Name(), err)
	}
	sw := startStream(w, watchContentType)
	return followKV(sctx, s, b, st, snapshotEnd, kw, reconnected, sw, o, match)
}

// checkResume refuses a watch the bucket cannot serve from revision from:
// one it has not reached (a KV watcher would wait, silently, for a
// revision that may never come; Kubernetes answers 504 with a retry hint
// after waiting a little, as watchFromCache did), and one older than its
// compaction, whose deletions are gone (410: list again).
func checkResume[T any, P bus.Object[T]](ctx context.Context, b *bus.Bucket[T, P], from uint64) error {
	last, compacted, err := b.Revisions(ctx)
	if err != nil {
		return fmt.Errorf("watch %s: %w", b.Name(), err)
	}
	if from > last {
		return tooLargeResourceVersion(from, last)
	}
	if from < compacted {
		return gone(from, compacted)
	}
	return nil
}

// watchFromCache starts a watch on the informer's history once it reflects
// every write made before the request (as a KV watcher would: a client
// that wrote and then watches sees its write in the initial state), or
// the revision the client resumes from.
func watchFromCache[T any, P bus.Object[T]](ctx context.Context, inf *bus.Informer[T, P], from uint64) ([]P, uint64, *bus.Feed[P], error) {
	if !inf.HasHistory() {
		return nil, 0, nil, bus.ErrNoHistory
	}
	if err := cacheCaughtUp(ctx, inf, from); err != nil {
		return nil, 0, nil, err
	}
	return inf.WatchChanges(from, watchFeedBuffer)
}

// watchFeedBuffer is how many changes a watch served from the history may
// fall behind before it continues from a KV watcher of its own.
const watchFeedBuffer = 4096

// serveCachedWatch serves a watch from an informer's history: snapshot (if
// the watch starts from the current state) at rev, then the feed. If the
// informer drops the feed (a reconnect, or this client fell behind), the
// watch goes on from a KV watcher right after the last change sent.
func serveCachedWatch[T any, P bus.Object[T]](sctx context.Context, s *Server, w http.ResponseWriter, b *bus.Bucket[T, P],
	o watchOptions, match func(P) bool, snapshot []P, rev uint64, feed *bus.Feed[P]) (int, any, error) {
	defer feed.Close()
	sw := startStream(w, watchContentType)
	// has: what the client holds, for a hand-over to a KV watcher.
	has := map[string]bool{}
	var hasPeak shrink.Peak
	last := o.from
	gone := func(err error) (int, any, error) {
		s.log.Debug("watch ended", "watch", b.Name(), "last", last, "err", err)
		return 0, streamed{}, nil
	}
	if o.from == 0 {
		last = rev
		// In revision order, as a KV watcher would send them.
		sort.Slice(snapshot, func(i, j int) bool {
			return snapshot[i].GetMeta().ResourceVersion < snapshot[j].GetMeta().ResourceVersion
		})
		for _, p := range snapshot {
			if !match(p) {
				continue
			}
			has[p.GetMeta().Name] = true
			if err := sw.writeJSONLineMore(watchEvent{Type: watchAdded, Object: p}, true); err != nil {
				return gone(err)
			}
		}
		if err := sw.flush(); err != nil {
			return gone(err)
		}
	}
	heartbeat := time.NewTicker(s.watchHeartbeat)
	defer heartbeat.Stop()
	pending := false
	for {
		if pending && len(feed.C) == 0 {
			if err := sw.flush(); err != nil {
				return gone(err)
			}
			pending = false
		}
		select {
		case <-sctx.Done():
			return gone(sctx.Err())
		case <-heartbeat.C:
			if err := sw.writeJSONLine(watchEvent{Type: watchBookmark, Object: bookmark{ResourceVersion: last}}); err != nil {
				return gone(err)
			}
		case c, ok := <-feed.C:
			if !ok {
				if err := sw.flush(); err != nil {
					return gone(err)
				}
				// After a resume, a key not changed since is one the client
				// may or may not hold: every later event about it is
				// ambiguous, as on the KV watcher's own resume.
				st := &watchState{has: has, unknown: map[string]bool{}, last: last, hasPeak: hasPeak}
				if o.from != 0 {
					st.ambiguousUpTo = math.MaxUint64
				}
				s.log.Debug("watch continues from the bucket", "watch", b.Name(), "after", last)
				s.watchStats.handover.Add(1)
				metrics.Watch(b.Name(), "handover")
				return followKV(sctx, s, b, st, 0, nil, s.conn.Reconnected(), sw, o, match)
			}
			last = c.Rev
			was := c.Prev != nil && match(c.Prev)
			now := c.Obj != nil && match(c.Obj)
			switch {
			case now:
				has[c.Name] = true
			case o.from == 0:
				// A watch from the current state hands over with nothing
				// ambiguous: a name not held needs no entry (a false for
				// each of 100,000 deleted pods stayed for the watch's life).
				if _, ok := has[c.Name]; ok {
					delete(has, c.Name)
					has = shrink.Map(has, &hasPeak)
				}
			default:
				has[c.Name] = false
			}
			var ev watchEvent
			switch {
			case was && now:
				ev = watchEvent{Type: watchModified, Object: c.Obj}
			case now:
				ev = watchEvent{Type: watchAdded, Object: c.Obj}
			case was && c.Obj != nil:
				ev = watchEvent{Type: watchDeleted, Object: c.Obj} // left the selection
			case was:
				ev = watchEvent{Type: watchDeleted, Object: deletedObject{Name: c.Name, ResourceVersion: c.Rev}}
			default:
				continue
			}
			more := len(feed.C) > 0
			if err := sw.writeJSONLineMore(ev, more); err != nil {
				return gone(err)
			}
			pending = pending || more
		}
	}
}

// followKV streams the bucket's changes after st.last from KV watchers
// (kw, or a new one when nil), re-created after reconnects, until the
// client goes or sctx ends.
func followKV[T any, P bus.Object[T]](sctx context.Context, s *Server, b *bus.Bucket[T, P], st *watchState, snapshotEnd uint64,
	kw jetstream.KeyWatcher, reconnected <-chan struct{}, sw *streamWriter, o watchOptions, match func(P) bool) (int, any, error) {
	log := s.log.With("watch", b.Name(), "from", o.from)
	log.Debug("watch started")

	send := func(e jetstream.KeyValueEntry, more bool) error {
		var (
			obj     any
			matches bool
		)
		if op := e.Operation(); op != jetstream.KeyValueDelete && op != jetstream.KeyValuePurge {
			p := P(new(T))
			if err := schemas.Unmarshal(e.Value(), p); err != nil {
				log.Warn("skipping undecodable value", "key", e.Key(), "revision", e.Revision(), "err", err)
				return nil
			}
			p.GetMeta().ResourceVersion = e.Revision()
			matches = match(p)
			obj = p
		}
		typ, out := st.event(e, obj, matches)
		if typ == "" {
			return nil
		}
		return sw.writeJSONLineMore(watchEvent{Type: typ, Object: out}, more)
	}

	heartbeat := time.NewTicker(s.watchHeartbeat)
	defer heartbeat.Stop()
	backoff := 100 * time.Millisecond
	for {
		// Reconnect or a closed watcher: resume right after the last
		// revision processed.
		for kw == nil {
			reconnected = s.conn.Reconnected()
			if !s.waitConnected(sctx) {
				return 0, streamed{}, nil
			}
			var err error
			kw, err = newKeyWatcher(sctx, b.KV(), st)
			if err == nil {
				backoff = 100 * time.Millisecond
				break
			}
			if sctx.Err() != nil {
				return 0, streamed{}, nil
			}
			log.Warn("re-create watch", "err", err)
			select {
			case <-sctx.Done():
				return 0, streamed{}, nil
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 2*time.Second)
		}
		err := pumpWatch(sctx, kw, st, &snapshotEnd, reconnected, heartbeat.C, send, sw)
		stopKeyWatcher(kw, s.conn.NATS().IsConnected())
		kw = nil
		if sctx.Err() != nil || errors.Is(err, errClientGone) {
			log.Debug("watch ended", "last", st.last, "err", err)
			return 0, streamed{}, nil
		}
		log.Info("re-creating watch", "after", st.last, "err", err)
	}
}

var (
	errClientGone = errors.New("client gone")
	errReconnect  = errors.New("nats reconnected")
)

// newKeyWatcher watches the whole bucket: from its current state while the
// watch is still taking its snapshot, else right after st.last.
func newKeyWatcher(ctx context.Context, kv jetstream.KeyValue, st *watchState) (jetstream.KeyWatcher, error) {
	if st.snapshot && st.last == 0 {
		return kv.WatchAll(ctx)
	}
	// A snapshot is delivered in revision order, so one cut short by a
	// reconnect continues correctly from its last revision too.
	return kv.WatchAll(ctx, jetstream.ResumeFromRevision(st.last+1))
}

// stopKeyWatcher stops kw and drains it: its delivery goroutine may be
// blocked on a full channel and would otherwise never exit. Stopping also
// deletes the consumer with a request that, while NATS is unreachable,
// waits out the library's API timeout (5 s) whatever any context says;
// then it is left to finish in the background rather than hold up the
// handler (and a server shutdown) for that long.
func stopKeyWatcher(kw jetstream.KeyWatcher, connected bool) {
	if kw == nil {
		return
	}
	stop := func() {
		_ = kw.Stop()
		for range kw.Updates() {
		}
	}
	if connected {
		stop()
		return
	}
	go stop()
}

func pumpWatch(ctx context.Context, kw jetstream.KeyWatcher, st *watchState, snapshotEnd *uint64,
	reconnected <-chan struct{}, heartbeat <-chan time.Time, send func(e jetstream.KeyValueEntry, more bool) error, sw *streamWriter) error {
	// Lines written while more updates are queued are flushed with the
	// last of them; this flushes one held back by an update it skipped.
	pending := false
	for {
		if pending && len(kw.Updates()) == 0 {
			if err := sw.flush(); err != nil {
				return fmt.Errorf("%w: %v", errClientGone, err)
			}
			pending = false
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-reconnected:
			return errReconnect
		case <-heartbeat:
			if st.snapshot {
				continue // the revision is not a resumable point yet
			}
			if err := sw.writeJSONLine(watchEvent{Type: watchBookmark, Object: bookmark{ResourceVersion: st.last}}); err != nil {
				return fmt.Errorf("%w: %v", errClientGone, err)
			}
		case e, ok := <-kw.Updates():
			if !ok {
				return errors.New("watcher closed")
			}
			if e == nil {
				if st.snapshot {
					st.snapshot = false
					st.last = max(st.last, *snapshotEnd)
				}
				continue
			}
			if e.Revision() <= st.last {
				continue // already processed by an earlier watcher
			}
			more := len(kw.Updates()) > 0
			if err := send(e, more); err != nil {
				return fmt.Errorf("%w: %v", errClientGone, err)
			}
			pending = pending || more
			st.last = e.Revision()
		}
	}
}
