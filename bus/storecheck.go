package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A record of a bucket's stream that the server cannot read (a block file
// damaged while the server was stopped: its checksum fails) stays in the
// stream's index: the key is there for Create (409) but gone for Get
// (404), and a watch counts the record as pending yet never delivers it,
// so it never sends the end of its initial values and an informer's first
// sync would wait forever. nats-server v2.15.3 does not report it at start
// (StreamState.Lost stays empty: it only lists what it knew was there) and
// cannot remove it either: a purge of the key fails on the same checksum,
// deleting the message is refused on a KV stream (DenyDelete, which an
// update may not lift), and a purge by subject does nothing. So MiniKu
// finds such keys itself, says which, and stops.

// A block file cut short while the server was stopped (a truncated copy,
// a filesystem that lost its tail) loses the bucket's last writes without
// a word: the server rebuilds from what remains, remembers the last
// sequence its state file had and marks the missing ones deleted, so the
// keys written last are simply gone. A healthy bucket holds its last
// revision (a KV history limit only drops older revisions of a key)
// unless Compact purged it as a delete marker, and Compact records the
// revision it compacts to before it purges: a missing last revision above
// that record is the loss, which Check reports as a *LostWritesError.
// (Keeping the last marker instead would keep its block's cache alive
// after a mass deletion: TestMemoryReturnsAfterMassDeletion.)

// ErrStoreCorrupt: a bucket's stream holds records the server cannot read.
var ErrStoreCorrupt = errors.New("store corrupt")

// CorruptError names the unreadable keys of a bucket.
type CorruptError struct {
	Bucket, Stream string
	// Keys whose latest record cannot be read, sorted.
	Keys []string
}

func (e *CorruptError) Error() string {
	shown := e.Keys
	if len(shown) > 10 {
		shown = shown[:10]
	}
	more := ""
	if len(e.Keys) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(e.Keys)-len(shown))
	}
	return fmt.Sprintf("%s: bucket %s (stream %s): %d key(s) unreadable on disk (%s%s): their values are lost, the server "+
		"cannot remove them, and a watch of the bucket never finishes its first pass; the block files under "+
		"<data dir>/nats/jetstream/$G/streams/%s/msgs are damaged. "+
		"Restore the data dir from a backup, or start over with `miniku down --purge` (loses every object)",
		ErrStoreCorrupt, e.Bucket, e.Stream, len(e.Keys), strings.Join(shown, ", "), more, e.Stream)
}

func (e *CorruptError) Unwrap() error { return ErrStoreCorrupt }

// LostWritesError: a bucket's last writes, revisions From..To, are gone
// from disk. The store is consistent without them (nothing is wedged and
// revisions never go back), so MiniKu can go on: controllers recreate
// what they own; objects users wrote last must be written again.
type LostWritesError struct {
	Bucket, Stream string
	From, To       uint64
}

func (e *LostWritesError) Error() string {
	return fmt.Sprintf("%s: bucket %s (stream %s): its last writes, revisions %d to %d, are missing on disk "+
		"(a block file under <data dir>/nats/jetstream/$G/streams/%s/msgs was cut short while stopped): "+
		"objects written then are lost; restore the data dir from a backup or write them again",
		ErrStoreCorrupt, e.Bucket, e.Stream, e.From, e.To, e.Stream)
}

func (e *LostWritesError) Unwrap() error { return ErrStoreCorrupt }

// DefaultCheckQuiet is how long a scan of a bucket may go without a record
// before the check looks for unreadable ones: the server streams a
// healthy bucket without pauses, and a healthy check never waits for it.
const DefaultCheckQuiet = 2 * time.Second

// Check reads every key of the bucket once (metadata only) and returns a
// *CorruptError if some cannot be read, else a *LostWritesError if its
// last writes are missing. A healthy bucket costs one pass and no wait; a
// scan that stalls for quiet is diagnosed (unreadable).
func (b *Bucket[T, P]) Check(ctx context.Context, quiet time.Duration) error {
	if err := b.scan(ctx, quiet); err != nil {
		return err
	}
	return b.lostTail(ctx)
}

// lostTail returns a *LostWritesError if the bucket's last revision is
// missing and was not compacted.
func (b *Bucket[T, P]) lostTail(ctx context.Context) error {
	stream := kvStreams(b.Name())[0]
	s, err := b.js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("check bucket %s: %w", b.Name(), err)
	}
	info := s.CachedInfo()
	last := info.State.LastSeq
	if last == 0 || last <= compactedOf(info) {
		return nil // never written, or its last marker compacted away
	}
	switch _, err := s.GetMsg(ctx, last); {
	case err == nil:
		return nil
	case !errors.Is(err, jetstream.ErrMsgNotFound):
		return fmt.Errorf("check bucket %s: read revision %d: %w", b.Name(), last, err)
	}
	// Revisions up to the compacted one may be gone by compaction.
	from := compactedOf(info) + 1
	switch m, err := s.GetLastMsgForSubject(ctx, "$KV."+b.Name()+".>"); {
	case err == nil:
		from = max(from, m.Sequence+1)
	case !errors.Is(err, jetstream.ErrMsgNotFound):
		return fmt.Errorf("check bucket %s: read its latest record: %w", b.Name(), err)
	}
	return &LostWritesError{Bucket: b.Name(), Stream: stream, From: from, To: last}
}

// scan returns a *CorruptError if some keys cannot be read.
func (b *Bucket[T, P]) scan(ctx context.Context, quiet time.Duration) error {
	w, err := b.kv.WatchAll(ctx, jetstream.MetaOnly())
	if err != nil {
		return b.mapErr("check", "*", err)
	}
	defer w.Stop()
	seen := map[string]bool{}
	t := time.NewTimer(quiet)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("check bucket %s: %w", b.Name(), ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("check bucket %s: %w", b.Name(), errWatchClosed)
			}
			if e == nil {
				return nil
			}
			seen[e.Key()] = true
			t.Reset(quiet)
		case <-t.C:
			keys, err := b.unreadable(ctx, seen)
			if err != nil {
				return err
			}
			if len(keys) > 0 {
				return b.corrupt(keys)
			}
			t.Reset(quiet) // slow, not stuck: go on
		}
	}
}

func (b *Bucket[T, P]) corrupt(keys []string) error {
	return &CorruptError{Bucket: b.Name(), Stream: kvStreams(b.Name())[0], Keys: keys}
}

// unreadable returns the keys of the stream's subject index that a
// watch has not delivered (not in seen) and whose latest record cannot be
// read.
func (b *Bucket[T, P]) unreadable(ctx context.Context, seen map[string]bool) ([]string, error) {
	stream := kvStreams(b.Name())[0]
	s, err := b.js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("check bucket %s: %w", b.Name(), err)
	}
	prefix := "$KV." + b.Name() + "."
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		return nil, fmt.Errorf("check bucket %s: stream info: %w", b.Name(), err)
	}
	var bad []string
	for subj := range info.State.Subjects {
		key := strings.TrimPrefix(subj, prefix)
		if seen[key] {
			continue
		}
		ok, err := readable(ctx, s, subj)
		if err != nil {
			return nil, fmt.Errorf("check bucket %s: %w", b.Name(), err)
		}
		if ok {
			continue
		}
		// Compaction may have purged the key (a delete marker) since
		// the index was read: bad only if the index still has it.
		again, err := s.Info(ctx, jetstream.WithSubjectFilter(subj))
		if err != nil {
			return nil, fmt.Errorf("check bucket %s: stream info: %w", b.Name(), err)
		}
		if again.State.Subjects[subj] == 0 {
			continue
		}
		if ok, err := readable(ctx, s, subj); err != nil {
			return nil, fmt.Errorf("check bucket %s: %w", b.Name(), err)
		} else if !ok {
			bad = append(bad, key)
		}
	}
	slices.Sort(bad)
	return bad, nil
}

// readable says whether subj's last record reads. In the index, yet no
// record: its block is damaged.
func readable(ctx context.Context, s jetstream.Stream, subj string) (bool, error) {
	_, err := s.GetLastMsgForSubject(ctx, subj)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return false, nil
	default:
		return false, err
	}
}

// CheckStore checks every bucket (Bucket.Check) and returns their errors
// joined: run it at start, before anything reads them. A *CorruptError
// means a bucket cannot be used; a *LostWritesError alone can be lived with.
func (c *Conn) CheckStore(ctx context.Context, quiet time.Duration) error {
	checks := []func(context.Context, time.Duration) error{c.Pods.Check, c.ReplicaSets.Check, c.Nodes.Check,
		c.Namespaces.Check, c.ConfigMaps.Check, c.ServiceAccounts.Check}
	if c.Secrets != nil {
		checks = append(checks, c.Secrets.Check)
	}
	var errs []error
	for _, check := range checks {
		if err := check(ctx, quiet); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// OnlyLostWrites says whether err (from CheckStore) reports lost writes
// and nothing worse.
func OnlyLostWrites(err error) bool {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var lw *LostWritesError
		if !errors.As(e, &lw) {
			return false
		}
	}
	return len(errs) > 0
}
