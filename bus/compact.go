package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniku/miniku/bus/metrics"
)

// A delete leaves a marker in its bucket (one message per deleted key,
// forever), so a churning cluster's store grows without bound. Compaction
// removes the markers of deletions older than a delay, as Kubernetes'
// apiserver compacts etcd: the revision current a delay ago becomes the
// bucket's compacted revision, recorded in the bucket's stream metadata
// before any marker at or below it is removed. A watch resuming from below
// it would miss deletions, so the apiserver refuses it with 410 Gone (the
// client lists again); one resuming above it sees every deletion.

// compactedKey is the stream metadata key of a bucket's compacted revision.
const compactedKey = "miniku.compacted_revision"

// DefaultCompactionDelay is how long delete markers are kept: the window
// within which a watch can resume without listing again. Kubernetes
// compacts etcd every 5 minutes; clients resume within seconds of a
// dropped watch, so 5 minutes leaves room for an apiserver restart.
const DefaultCompactionDelay = 5 * time.Minute

// Revisions returns the bucket's latest revision and its compacted one: a
// watch may resume from any revision in between.
func (b *Bucket[T, P]) Revisions(ctx context.Context) (last, compacted uint64, err error) {
	defer b.observe("revision", time.Now(), &err)
	info, err := b.streamInfo(ctx)
	if err != nil {
		return 0, 0, b.mapErr("status", "*", err)
	}
	return info.State.LastSeq, compactedOf(info), nil
}

func (b *Bucket[T, P]) streamInfo(ctx context.Context) (*jetstream.StreamInfo, error) {
	st, err := b.kv.Status(ctx)
	if err != nil {
		return nil, err
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return nil, fmt.Errorf("status of bucket %s: unexpected type %T", b.Name(), st)
	}
	return bs.StreamInfo(), nil
}

func compactedOf(info *jetstream.StreamInfo) uint64 {
	v, err := strconv.ParseUint(info.Config.Metadata[compactedKey], 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// Compact removes the delete markers at or below revision rev, after
// recording rev as the bucket's compacted revision (never lowering it). It
// returns how many markers it removed. A key deleted at or below rev and
// created again since keeps its new value: only messages up to the
// marker's own revision are purged.
func (b *Bucket[T, P]) Compact(ctx context.Context, rev uint64) (removed int, err error) {
	defer b.observe("compact", time.Now(), &err)
	if b.js == nil {
		return 0, errors.New("compact: bucket has no JetStream handle")
	}
	stream, err := b.js.Stream(ctx, "KV_"+b.Name())
	if err != nil {
		return 0, fmt.Errorf("compact %s: %w", b.Name(), err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("compact %s: %w", b.Name(), err)
	}
	if rev > compactedOf(info) {
		cfg := info.Config
		md := make(map[string]string, len(cfg.Metadata)+1)
		for k, v := range cfg.Metadata {
			md[k] = v
		}
		md[compactedKey] = strconv.FormatUint(rev, 10)
		cfg.Metadata = md
		if _, err := b.js.UpdateStream(ctx, cfg); err != nil {
			return 0, fmt.Errorf("compact %s: record revision %d: %w", b.Name(), rev, err)
		}
	}
	w, err := b.kv.WatchAll(ctx, jetstream.MetaOnly())
	if err != nil {
		return 0, fmt.Errorf("compact %s: %w", b.Name(), err)
	}
	var markers []jetstream.KeyValueEntry
	func() {
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				err = ctx.Err()
				return
			case e, ok := <-w.Updates():
				if !ok {
					err = errors.New("watcher closed")
					return
				}
				if e == nil {
					return
				}
				if op := e.Operation(); (op == jetstream.KeyValueDelete || op == jetstream.KeyValuePurge) && e.Revision() <= rev {
					markers = append(markers, e)
				}
			}
		}
	}()
	if err != nil {
		return 0, fmt.Errorf("compact %s: %w", b.Name(), err)
	}
	for _, e := range markers {
		// WithPurgeSequence keeps anything written after the marker: the
		// key may have been created again since the watch saw it.
		err := stream.Purge(ctx, jetstream.WithPurgeSubject("$KV."+b.Name()+"."+e.Key()), jetstream.WithPurgeSequence(e.Revision()+1))
		if err != nil {
			return removed, fmt.Errorf("compact %s: purge %s: %w", b.Name(), e.Key(), err)
		}
		removed++
	}
	return removed, nil
}

// compactable is what a Compactor needs of a bucket.
type compactable interface {
	Name() string
	Revisions(ctx context.Context) (last, compacted uint64, err error)
	Compact(ctx context.Context, rev uint64) (int, error)
}

// Compactor compacts buckets every Delay/5 to the revision each had Delay
// ago. Any number may run (compaction is idempotent and the recorded
// revision only grows); the apiserver runs one.
type Compactor struct {
	Delay   time.Duration
	Log     *slog.Logger
	buckets []compactable

	mu      sync.Mutex
	samples map[string][]revSample
}

type revSample struct {
	at  time.Time
	rev uint64
}

// NewCompactor compacts the connection's object buckets (secrets too
// when it has them); delay 0 means DefaultCompactionDelay.
func NewCompactor(c *Conn, delay time.Duration, log *slog.Logger) *Compactor {
	if delay <= 0 {
		delay = DefaultCompactionDelay
	}
	if log == nil {
		log = c.log
	}
	return &Compactor{Delay: delay, Log: log.With("component", "compactor"),
		buckets: slices.Clone(c.compactables), samples: map[string][]revSample{}}
}

// Run compacts until ctx ends. Failures are logged and retried at the
// next tick: a store that cannot compact now still serves.
func (c *Compactor) Run(ctx context.Context) error {
	t := time.NewTicker(max(c.Delay/5, 10*time.Millisecond))
	defer t.Stop()
	for {
		for _, b := range c.buckets {
			if err := c.step(ctx, b, time.Now()); err != nil && ctx.Err() == nil {
				c.Log.Warn("compaction failed", "bucket", b.Name(), "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// step samples b's revision and compacts it to the newest sample at least
// Delay old, so every deletion of the last Delay keeps its marker.
func (c *Compactor) step(ctx context.Context, b compactable, now time.Time) error {
	last, compacted, err := b.Revisions(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	s := append(c.samples[b.Name()], revSample{at: now, rev: last})
	target, keep := compactionTarget(s, now, c.Delay)
	c.samples[b.Name()] = s[keep:]
	c.mu.Unlock()
	if target == 0 || target <= compacted {
		return nil
	}
	n, err := b.Compact(ctx, target)
	metrics.Compacted(b.Name(), n)
	if n > 0 {
		c.Log.Debug("compacted", "bucket", b.Name(), "revision", target, "markers", n)
	}
	return err
}

// compactionTarget picks, from samples in time order, the newest revision
// sampled at least delay before now (0: none yet), and the index of that
// sample: older ones are no longer needed.
func compactionTarget(samples []revSample, now time.Time, delay time.Duration) (rev uint64, keep int) {
	for i := len(samples) - 1; i >= 0; i-- {
		if now.Sub(samples[i].at) >= delay {
			return samples[i].rev, i
		}
	}
	return 0, 0
}
