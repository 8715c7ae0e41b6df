package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
	switch op {
	case "create", "update", "delete":
		// A caller giving up is not the store failing.
		writes.note(res == "error" && !errors.Is(*err, context.Canceled), *err)
	}
}

// writes is the process's latest store write outcomes, for readiness: a
// write that failed (not a conflict or a missing key: the store itself
// failed) with none succeeding since means the store cannot write.
var writes writeOutcomes

type writeOutcomes struct {
	mu           sync.Mutex
	ok, failed   time.Time
	failedReason error
}

func (w *writeOutcomes) note(failed bool, err error) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if failed {
		w.failed, w.failedReason = now, err
	} else {
		w.ok = now
	}
}

// WriteHealth is nil unless a store write of this process failed within
// window before now and none has succeeded since.
func WriteHealth(now time.Time, window time.Duration) error {
	writes.mu.Lock()
	defer writes.mu.Unlock()
	if writes.failed.IsZero() || !writes.failed.After(writes.ok) || now.Sub(writes.failed) > window {
		return nil
	}
	return fmt.Errorf("the last store write, %s ago, failed: %w", now.Sub(writes.failed).Round(time.Second), writes.failedReason)
}
