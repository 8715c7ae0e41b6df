package bus

import (
	"errors"
	"time"

	"github.com/miniku/miniku/bus/metrics"
)

// observe records one KV operation's latency; it is deferred by each
// Bucket method with a pointer to its result so the outcome is labelled.
func (b *Bucket[T, P]) observe(op string, start time.Time, err *error) {
	res := "ok"
	switch {
	case *err == nil:
	case errors.Is(*err, ErrNotFound):
		res = "notfound"
	case errors.Is(*err, ErrConflict), errors.Is(*err, ErrAlreadyExists):
		res = "conflict"
	default:
		res = "error"
	}
	metrics.KVOp(b.Name(), op, start, res)
}
