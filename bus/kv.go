package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniku/miniku/bus/encrypt"
	"github.com/miniku/miniku/schemas"
)

// Object is what buckets store: a pointer to a schemas type with metadata.
type Object[T any] interface {
	*T
	GetMeta() *schemas.ObjectMeta
	// DeepCopy copies everything, ResourceVersion included: cached
	// objects are shared and must not be modified in place.
	DeepCopy() *T
}

// Bucket is a typed view of one KV bucket. Keys are object names. Every
// write is conditional on the revision: Create only if absent, Update and
// Delete only at the revision the caller read.
type Bucket[T any, P Object[T]] struct {
	kv jetstream.KeyValue
	// js reaches the bucket's stream: compaction and repairs (compact.go,
	// repair.go).
	js jetstream.JetStream
	// seal, when set, encrypts every value at rest (the secrets bucket).
	seal Sealer
}

// Sealer encrypts values at rest (bus/encrypt's AESGCM). additional is
// the value's bucket and key: a value moved to another key does not open.
type Sealer interface {
	Seal(plaintext, additional []byte) ([]byte, error)
	Open(stored, additional []byte) ([]byte, error)
}

// sealedBucket is newBucket for a bucket whose values seal encrypts.
func sealedBucket[T any, P Object[T]](kv jetstream.KeyValue, js jetstream.JetStream, seal Sealer) *Bucket[T, P] {
	return &Bucket[T, P]{kv: kv, js: js, seal: seal}
}

// additional binds a sealed value to where it is stored.
func (b *Bucket[T, P]) additional(key string) []byte { return []byte(b.Name() + "/" + key) }

func newBucket[T any, P Object[T]](kv jetstream.KeyValue, js jetstream.JetStream) *Bucket[T, P] {
	return &Bucket[T, P]{kv: kv, js: js}
}

// Name of the underlying KV bucket.
func (b *Bucket[T, P]) Name() string { return b.kv.Bucket() }

// KV exposes the raw bucket (watchers, tests).
func (b *Bucket[T, P]) KV() jetstream.KeyValue { return b.kv }

func (b *Bucket[T, P]) decode(e jetstream.KeyValueEntry) (P, error) {
	obj := P(new(T))
	data := e.Value()
	if b.seal != nil {
		var err error
		if data, err = b.seal.Open(data, b.additional(e.Key())); err != nil {
			// A value that does not authenticate is garbage like any
			// other; one under a key we lack may be fine (a lost key
			// file): never ErrMalformed, which DeleteMalformed removes.
			if errors.Is(err, encrypt.ErrUnknownKey) {
				return nil, fmt.Errorf("decrypt %s/%s@%d: %w", b.Name(), e.Key(), e.Revision(), err)
			}
			return nil, fmt.Errorf("decrypt %s/%s@%d: %w: %w", b.Name(), e.Key(), e.Revision(), ErrMalformed, err)
		}
	}
	if err := schemas.Unmarshal(data, obj); err != nil {
		return nil, fmt.Errorf("decode %s/%s@%d: %w: %w", b.Name(), e.Key(), e.Revision(), ErrMalformed, err)
	}
	// Keys are names: a value naming another object (or none) is garbage,
	// and acting on it would write to a key nobody watches.
	if n := obj.GetMeta().Name; n != e.Key() {
		return nil, fmt.Errorf("decode %s/%s@%d: %w: it names %q", b.Name(), e.Key(), e.Revision(), ErrMalformed, n)
	}
	obj.GetMeta().ResourceVersion = e.Revision()
	return obj, nil
}

func (b *Bucket[T, P]) encode(obj P) ([]byte, error) {
	// The revision is a property of the KV entry, not of the value; storing
	// it would be stale the moment the write lands.
	m := obj.GetMeta()
	rv := m.ResourceVersion
	m.ResourceVersion = 0
	data, err := schemas.Marshal(obj)
	m.ResourceVersion = rv
	if err != nil || b.seal == nil {
		return data, err
	}
	sealed, err := b.seal.Seal(data, b.additional(m.Name))
	if err != nil {
		return nil, fmt.Errorf("encrypt %s/%s: %w", b.Name(), m.Name, err)
	}
	return sealed, nil
}

// Get reads the current object; its ResourceVersion is the KV revision.
func (b *Bucket[T, P]) Get(ctx context.Context, name string) (_ P, err error) {
	defer b.observe("get", time.Now(), &err)
	e, err := b.kv.Get(ctx, name)
	if err != nil {
		return nil, b.mapErr("get", name, err)
	}
	return b.decode(e)
}

// Create writes a new object and sets its ResourceVersion.
func (b *Bucket[T, P]) Create(ctx context.Context, obj P) (err error) {
	defer b.observe("create", time.Now(), &err)
	name := obj.GetMeta().Name
	data, err := b.encode(obj)
	if err != nil {
		return err
	}
	rev, err := b.kv.Create(ctx, name, data)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("create %s/%s: %w", b.Name(), name, ErrAlreadyExists)
		}
		return b.mapErr("create", name, err)
	}
	obj.GetMeta().ResourceVersion = rev
	return nil
}

// Update writes obj if the stored revision is still obj.ResourceVersion,
// and sets the new one. ErrConflict means someone else wrote first.
func (b *Bucket[T, P]) Update(ctx context.Context, obj P) (err error) {
	defer b.observe("update", time.Now(), &err)
	m := obj.GetMeta()
	if m.ResourceVersion == 0 {
		return fmt.Errorf("update %s/%s: no resourceVersion to compare against", b.Name(), m.Name)
	}
	data, err := b.encode(obj)
	if err != nil {
		return err
	}
	rev, err := b.kv.Update(ctx, m.Name, data, m.ResourceVersion)
	if err != nil {
		return b.mapErr("update", m.Name, err)
	}
	m.ResourceVersion = rev
	return nil
}

// Delete removes the object if it is still at revision rev. A rev of 0
// deletes unconditionally; only use that for cleanup of already-dead keys.
func (b *Bucket[T, P]) Delete(ctx context.Context, name string, rev uint64) (err error) {
	defer b.observe("delete", time.Now(), &err)
	var opts []jetstream.KVDeleteOpt
	if rev != 0 {
		opts = append(opts, jetstream.LastRevision(rev))
	}
	if err := b.kv.Delete(ctx, name, opts...); err != nil {
		return b.mapErr("delete", name, err)
	}
	return nil
}

// ErrNoChange, returned by a Mutate function, ends Mutate without a write.
var ErrNoChange = errors.New("no change")

// Mutate applies fn to the current object and writes it back with CAS,
// re-reading and re-applying fn on conflict, so the change is made against
// the latest version and never overwrites someone else's newer write (the
// lost update the original MiniKu had). fn returning ErrNoChange skips the
// write; any other error aborts.
func (b *Bucket[T, P]) Mutate(ctx context.Context, name string, fn func(P) error) (P, error) {
	for attempt := 0; ; attempt++ {
		obj, err := b.Get(ctx, name)
		if err != nil {
			return nil, err
		}
		if err := fn(obj); err != nil {
			if errors.Is(err, ErrNoChange) {
				return obj, nil
			}
			return nil, err
		}
		err = b.Update(ctx, obj)
		if err == nil {
			return obj, nil
		}
		if !errors.Is(err, ErrConflict) || attempt >= 100 {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// MutateFrom is Mutate starting from cached, the copy of the object this
// process believes current (an informer's, which it does not modify): when
// it is current, the change costs one write instead of a read and a write.
// Only a successful compare-and-swap trusts the copy. If fn declines it
// (ErrNoChange or an error, perhaps only because the copy is behind) or its
// revision is stale, MutateFrom is Mutate on a fresh read, so fn runs again
// and must not carry state over from one run to the next.
func (b *Bucket[T, P]) MutateFrom(ctx context.Context, cached P, fn func(P) error) (P, error) {
	name := cached.GetMeta().Name
	obj := P(cached.DeepCopy())
	if fn(obj) == nil {
		err := b.Update(ctx, obj)
		if err == nil {
			return obj, nil
		}
		if !errors.Is(err, ErrConflict) {
			return nil, err
		}
	}
	return b.Mutate(ctx, name, fn)
}

// Revision is the bucket's latest revision: the sequence of the last write
// (a put or a delete) to any of its keys.
func (b *Bucket[T, P]) Revision(ctx context.Context) (_ uint64, err error) {
	defer b.observe("revision", time.Now(), &err)
	st, err := b.kv.Status(ctx)
	if err != nil {
		return 0, b.mapErr("status", "*", err)
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return 0, fmt.Errorf("status of bucket %s: unexpected type %T", b.Name(), st)
	}
	return bs.StreamInfo().State.LastSeq, nil
}

// List reads every object. It uses a watch snapshot rather than one Get per
// key: a single consumer streams all last values in one pass.
func (b *Bucket[T, P]) List(ctx context.Context) (_ []P, err error) {
	defer b.observe("list", time.Now(), &err)
	w, err := b.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, b.mapErr("list", "*", err)
	}
	defer w.Stop()
	var out []P
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("list %s: %w", b.Name(), ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("list %s: watcher closed", b.Name())
			}
			if e == nil {
				return out, nil
			}
			obj, err := b.decode(e)
			if err != nil {
				// One undecodable value must not hide the rest.
				continue
			}
			out = append(out, obj)
		}
	}
}

func (b *Bucket[T, P]) mapErr(op, name string, err error) error {
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		err = ErrNotFound
	case errors.Is(err, jetstream.ErrKeyExists):
		err = ErrConflict
	case isWrongLastSequence(err):
		err = ErrWriteInFlight
	}
	return fmt.Errorf("%s %s/%s: %w", op, b.Name(), name, err)
}

// errCodeWrongLastSequence is JetStream's JSStreamWrongLastSequenceConstantErr,
// which a clustered stream's leader answers for a compare-and-swap write of
// a key with a write still in flight (expectedPerSubjectInProcess): not a
// conflict with the stored revision (that is 10071, ErrKeyExists), and
// reporting it as one would be a 409 against the current value, which the
// linearizability test of services/apiserver caught.
const errCodeWrongLastSequence = 10164

func isWrongLastSequence(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && ae.ErrorCode == errCodeWrongLastSequence
}
