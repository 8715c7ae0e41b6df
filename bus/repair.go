package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DeleteMalformed deletes name if its value cannot be read as an object
// (ErrMalformed: garbage written into the bucket by something other than
// MiniKu), at the revision it read. It returns ErrNotFound when the key is
// absent, and an error wrapping ErrConflict when the value decodes after
// all (someone wrote a good one meanwhile: delete that normally).
func (b *Bucket[T, P]) DeleteMalformed(ctx context.Context, name string) (rev uint64, err error) {
	defer b.observe("delete", time.Now(), &err)
	e, err := b.kv.Get(ctx, name)
	if err != nil {
		return 0, b.mapErr("get", name, err)
	}
	if _, derr := b.decode(e); derr == nil {
		return 0, fmt.Errorf("delete malformed %s/%s: %w: it decodes", b.Name(), name, ErrConflict)
	} else if !errors.Is(derr, ErrMalformed) {
		return 0, derr
	}
	if err := b.kv.Delete(ctx, name, jetstream.LastRevision(e.Revision())); err != nil {
		return 0, b.mapErr("delete", name, err)
	}
	return e.Revision(), nil
}
