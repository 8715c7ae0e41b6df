package apiserver

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/internal/shrink"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/schemas/kinds"
)

// maxDeleteAttempts bounds the read-then-delete loop; each retry means
// someone else wrote the object in between, so this is never reached in
// practice unless the object is being rewritten in a tight loop.
const maxDeleteAttempts = 100

func newUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails since Go 1.24
	return hex.EncodeToString(b)
}

func getObject[T any, P bus.Object[T]](ctx context.Context, b *bus.Bucket[T, P], kind, name string) (P, error) {
	// From the leader: a follower may not have applied the last
	// acknowledged write yet (bus.Bucket.GetCurrent).
	obj, err := b.GetCurrent(ctx, name)
	if errors.Is(err, bus.ErrNotFound) {
		return nil, notFound(kind, name)
	}
	if err != nil {
		return nil, err // bus errors already name the operation and key
	}
	return obj, nil
}

// listObjects returns the bucket's objects that match sel (all when sel is
// empty) and keep, sorted by name so output is stable for clients and diffs.
func listObjects[T any, P bus.Object[T]](ctx context.Context, b *bus.Bucket[T, P], inf *bus.Informer[T, P], kind string, sel map[string]string, keep func(P) bool) ([]P, error) {
	all, err := listSource(ctx, b, inf)
	if err != nil {
		return nil, err
	}
	// Never nil: clients expect [] rather than null for an empty list.
	out := make([]P, 0, len(all))
	for _, obj := range all {
		if len(sel) > 0 && !schemas.SelectorMatches(sel, obj.GetMeta().Labels) {
			continue
		}
		if keep != nil && !keep(obj) {
			continue
		}
		out = append(out, obj)
	}
	slices.SortFunc(out, func(a, b P) int { return cmp.Compare(a.GetMeta().Name, b.GetMeta().Name) })
	return out, nil
}

// informerResync: the apiserver's only handler drops a deleted pod's JSON,
// so its caches' resyncs are mostly for pruning tombstones.
const informerResync = 5 * time.Minute

// cacheWait bounds how long a list waits for the cache to catch up with
// the bucket before reading the bucket itself (the cache's watch may be
// being re-created after a reconnect).
const cacheWait = 2 * time.Second

// listSource lists the bucket from the informer's cache once it reflects
// every write made before the request: one small request instead of
// reading every value (a list of 10,000 pods from KV took 250 ms). Before
// the cache's first snapshot, or if it lags, it reads the bucket. The
// objects are the cache's own: callers must not modify them.
func listSource[T any, P bus.Object[T]](ctx context.Context, b *bus.Bucket[T, P], inf *bus.Informer[T, P]) ([]P, error) {
	if err := cacheCaughtUp(ctx, inf, 0); err == nil {
		return inf.List(), nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return b.List(ctx)
}

// errCacheStarting: the cache has no complete snapshot yet.
var errCacheStarting = errors.New("cache not synced yet")

// cacheCaughtUp waits, for at most cacheWait, until inf reflects revision
// rev of its bucket (0: every write made before the call), so that it may
// answer for the bucket: lists and watches read their own writes and
// everyone else's.
func cacheCaughtUp[T any, P bus.Object[T]](ctx context.Context, inf *bus.Informer[T, P], rev uint64) error {
	select {
	case <-inf.Synced():
	default:
		return errCacheStarting
	}
	wctx, cancel := context.WithTimeout(ctx, cacheWait)
	defer cancel()
	if rev == 0 {
		return inf.WaitCurrent(wctx)
	}
	return inf.WaitRevision(wctx, rev)
}

// jsonCache keeps each object's JSON as last encoded, by name and
// revision: a list of 10,000 pods that mostly did not change since the last
// list copies their JSON instead of encoding them again (64 ms of a 126 ms
// list here). An entry is used only at its object's revision; it is
// replaced when a list meets a newer one, and goes when its object is
// deleted (forget, from the informer's handler) or a full list no longer
// has it.
type jsonCache struct {
	mu sync.Mutex
	m  map[string]cachedJSON
	// peak: m is rebuilt once it emptied (a Go map keeps its peak's table).
	peak shrink.Peak
}

type cachedJSON struct {
	rev  uint64
	data []byte
}

func newJSONCache() *jsonCache { return &jsonCache{m: map[string]cachedJSON{}} }

func (c *jsonCache) forget(name string) {
	c.mu.Lock()
	delete(c.m, name)
	c.m = shrink.Map(c.m, &c.peak)
	c.mu.Unlock()
}

// rawJSON is a response body already encoded.
type rawJSON []byte

// encodeList encodes objs as a JSON array, from the cache where it holds
// an object's revision. all says objs is every object: entries for others
// (a list racing a deletion can re-add one) are dropped then.
func encodeList[T any, P bus.Object[T]](c *jsonCache, objs []P, all bool) (rawJSON, error) {
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, o := range objs {
		m := o.GetMeta()
		// The lock is never held while encoding: forget runs in the
		// informer's handler loop, which other components share.
		c.mu.Lock()
		e, ok := c.m[m.Name]
		c.mu.Unlock()
		if !ok || e.rev != m.ResourceVersion {
			data, err := json.Marshal(o)
			if err != nil {
				return nil, fmt.Errorf("encode %s: %w", m.Name, err)
			}
			e = cachedJSON{rev: m.ResourceVersion, data: data}
			c.mu.Lock()
			c.m[m.Name] = e
			c.mu.Unlock()
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(e.data)
	}
	buf.WriteString("]\n")
	c.mu.Lock()
	defer c.mu.Unlock()
	if all && len(c.m) > len(objs) {
		keep := make(map[string]bool, len(objs))
		for _, o := range objs {
			keep[o.GetMeta().Name] = true
		}
		for name := range c.m {
			if !keep[name] {
				delete(c.m, name)
			}
		}
		c.m = shrink.Map(c.m, &c.peak)
	}
	return buf.Bytes(), nil
}

// deleteObject deletes name at the revision it just read, so a delete is
// always of a version the server has seen and can return. With want != 0
// the client's revision is a precondition and a mismatch is a 409 rather
// than a retry: the client asked not to delete a version it has not seen.
//
// Finalizers are honoured as kube-apiserver does: policy first puts its
// own (orphan, foregroundDeletion) in place; an object left with any is
// only marked (deletionTimestamp, deletionGracePeriodSeconds 0) and goes
// once the last is removed (removeFinalized). gone says it was removed;
// the object returned is the one removed or as marked.
func deleteObject[T any, P bus.Object[T]](ctx context.Context, b *bus.Bucket[T, P], kind, name string, want uint64, policy metav1.DeletionPropagation, now func() time.Time) (_ P, gone bool, _ error) {
	for attempt := 0; ; attempt++ {
		obj, err := getObject(ctx, b, kind, name)
		if errors.Is(err, bus.ErrMalformed) {
			return nil, true, deleteMalformed(ctx, b, kind, name)
		}
		if err != nil {
			return nil, false, err
		}
		m := obj.GetMeta()
		rev := m.ResourceVersion
		if want != 0 && rev != want {
			return nil, false, modified(kind, name, rev, want)
		}
		fins := kinds.DeletionFinalizers(m.Finalizers, policy)
		if len(fins) == 0 {
			err = b.Delete(ctx, name, rev)
			if err == nil {
				return obj, true, nil
			}
		} else {
			marked := P(obj.DeepCopy())
			mm := marked.GetMeta()
			changed := kinds.MarkDeleting(mm, now(), 0)
			if !kinds.SameFinalizers(fins, mm.Finalizers) {
				mm.Finalizers, changed = fins, true
			}
			if !changed {
				return obj, false, nil // already marked, as asked
			}
			if err = b.Update(ctx, marked); err == nil {
				return marked, false, nil
			}
		}
		if !errors.Is(err, bus.ErrConflict) || attempt >= maxDeleteAttempts {
			return nil, false, err
		}
		if ctx.Err() != nil {
			return nil, false, fmt.Errorf("delete %s %s: %w", kind, name, ctx.Err())
		}
		// A conflict with a precondition is reported by the next read.
	}
}

// removeFinalized removes obj, just written, if a delete marked it and
// nothing holds it any more (its last finalizer was just removed), at the
// revision written: a write in between keeps it for the next writer, or
// the garbage collector, to finish.
func removeFinalized[T any, P bus.Object[T]](ctx context.Context, b *bus.Bucket[T, P], obj P) (bool, error) {
	m := obj.GetMeta()
	if !kinds.ReadyToRemove(m) {
		return false, nil
	}
	err := b.Delete(ctx, m.Name, m.ResourceVersion)
	if errors.Is(err, bus.ErrConflict) || errors.Is(err, bus.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("remove finalized %s %s: %w", b.Name(), m.Name, err)
	}
	return true, nil
}

// deleteMalformed deletes a key whose value does not decode (written
// around the API, e.g. with the nats CLI): GET cannot show it, but DELETE
// must be able to remove it. It returns an apiError with 200 carrying what
// is known of it (its name and revision), or the failure.
func deleteMalformed[T any, P bus.Object[T]](ctx context.Context, b *bus.Bucket[T, P], kind, name string) error {
	rev, err := b.DeleteMalformed(ctx, name)
	if errors.Is(err, bus.ErrNotFound) {
		return notFound(kind, name)
	}
	if errors.Is(err, bus.ErrConflict) {
		return newError(http.StatusConflict, "%s %q was rewritten while being deleted: retry", kind, name)
	}
	if err != nil {
		return err
	}
	return &deletedUnreadable{deletedObject{Name: name, ResourceVersion: rev}}
}

// deletedUnreadable is the success of deleteMalformed: there is no object
// to return, only what a watch's DELETED event would carry.
type deletedUnreadable struct{ obj deletedObject }

func (d *deletedUnreadable) Error() string { return "deleted unreadable " + d.obj.Name }

// listParams parses the query of a list request.
func listParams(r *http.Request, extra ...string) (map[string]string, error) {
	q := r.URL.Query()
	if err := checkQuery(q, append([]string{"labelSelector"}, extra...)...); err != nil {
		return nil, err
	}
	return parseSelector(q.Get("labelSelector"))
}

// publish sends an event hint. Events only speed consumers up (they re-read
// KV), so a failure is logged and never fails a request whose write landed.
func (s *Server) publish(subject string, ev schemas.Event) {
	if err := s.conn.Publish(subject, ev); err != nil {
		s.log.Warn("publish event", "subject", subject, "kind", ev.Kind, "name", ev.Name, "err", err)
	}
}
