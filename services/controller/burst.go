package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas"
)

// DefaultBurstReplicas is Kubernetes' replicaset burst: at most this many
// pods created per sync of one replicaset.
const DefaultBurstReplicas = 500

// maxCreateBatch bounds the creates in flight for one replicaset.
const maxCreateBatch = 256

// rsFailures is the failure backoff of one replicaset (by UID: a new
// replicaset of the same name starts afresh), and the retry time last
// announced with a BackOff event.
type rsFailures struct {
	uid       string
	f         Failures
	announced time.Time
}

// decide runs DecideReplicaSet with the replicaset's failure backoff and
// keeps its new state. Failed pods held back are synced again when the
// backoff ends, through the delaying queue (no goroutine of its own).
func (c *Controller) decide(rs *schemas.ReplicaSet, owned []*schemas.Pod) Plan {
	now := c.cfg.Now()
	c.mu.Lock()
	st := c.failures[rs.Name]
	if st.uid != rs.UID {
		st = rsFailures{uid: rs.UID}
	}
	c.mu.Unlock()
	plan := DecideReplicaSet(rs, owned, st.f, c.cfg.FailureBackoff, now)
	st.f = plan.Failures
	announce := len(plan.Held) > 0 && !st.announced.Equal(plan.RetryAt)
	if announce {
		st.announced = plan.RetryAt
	}
	c.mu.Lock()
	if st.f == (Failures{}) && st.announced.IsZero() {
		delete(c.failures, rs.Name)
	} else {
		c.failures[rs.Name] = st
	}
	c.mu.Unlock()
	if len(plan.Held) == 0 {
		return plan
	}
	wait := plan.RetryAt.Sub(now)
	c.rsq.AddAfter(rs.Name, wait)
	if announce {
		msg := fmt.Sprintf("Back-off %s replacing %d failed pod(s) (%d rounds of failures in a row)", wait.Round(time.Millisecond), len(plan.Held), plan.Failures.Rounds)
		c.log.Warn("replicaset backing off", "replicaset", rs.Name, "failed", len(plan.Held), "retryIn", wait, "rounds", plan.Failures.Rounds)
		c.conn.Emit(schemas.ObjectEvent{Type: schemas.EventWarning, Reason: "BackOff", Kind: schemas.KindReplicaSet, Name: rs.Name,
			Component: "controller", Message: msg})
	}
	return plan
}

func (c *Controller) forgetFailures(name string) {
	c.mu.Lock()
	delete(c.failures, name)
	c.mu.Unlock()
}

// errOwnerChanged stops a sync's creates: the replicaset was deleted,
// replaced or rescaled since the sync read it.
var errOwnerChanged = errors.New("replicaset changed while creating its pods")

// createPods creates up to n pods for rs (at most BurstReplicas in one
// sync: the rest are the next sync's), concurrently in batches that double
// from one (Kubernetes' slow start): a replicaset whose pods cannot be
// created costs one failed write, not n, and a big one is not created one
// KV round trip at a time. Before each batch it checks that rs is still
// there, unchanged, in the cache and in KV, so a DELETE stops the
// creates within one batch. It stops at the first batch with an error; the
// retry creates what is still missing. It returns how many it created.
func (c *Controller) createPods(ctx context.Context, rs *schemas.ReplicaSet, n int) (int, error) {
	if n > c.cfg.BurstReplicas {
		n = c.cfg.BurstReplicas
		c.rsq.Add(rs.Name) // runs again once this sync is done
	}
	created := 0
	for batch := 1; created < n; batch = min(2*batch, maxCreateBatch) {
		if err := c.ownerUnchanged(ctx, rs); err != nil {
			if errors.Is(err, errOwnerChanged) {
				c.log.Info("replicaset changed, creates stopped", "replicaset", rs.Name, "created", created, "wanted", n)
				c.rsq.Add(rs.Name)
				return created, nil
			}
			return created, err
		}
		size := min(batch, n-created)
		errs := make([]error, size)
		var wg sync.WaitGroup
		for i := range size {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = c.createPod(ctx, rs) }()
		}
		wg.Wait()
		for _, err := range errs {
			if err == nil {
				created++
			}
		}
		if err := errors.Join(errs...); err != nil {
			return created, err
		}
	}
	return created, nil
}

// ownerUnchanged reads rs from the cache, then from KV (the cache may not
// have the DELETE yet): level-triggered, it is what KV says that stops.
func (c *Controller) ownerUnchanged(ctx context.Context, rs *schemas.ReplicaSet) error {
	same := func(cur *schemas.ReplicaSet) bool {
		return cur.UID == rs.UID && cur.DesiredCount == rs.DesiredCount
	}
	if cur, ok := c.rss.Get(rs.Name); !ok || !same(cur) {
		return errOwnerChanged
	}
	cur, err := c.conn.ReplicaSets.Get(ctx, rs.Name)
	switch {
	case errors.Is(err, bus.ErrNotFound):
		return errOwnerChanged
	case err != nil:
		return fmt.Errorf("read replicaset %s before creating its pods: %w", rs.Name, err)
	case !same(cur):
		return errOwnerChanged
	}
	return nil
}
