package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniku/miniku/schemas"
)

// BucketLeases holds one key per elected role ("scheduler", "controller"),
// whose value names the current holder. Each key carries a per-message TTL:
// a holder that stops renewing (kill -9, partition) loses it when the TTL
// runs out, and a standby's Create then succeeds.
const BucketLeases = schemas.BucketLeases

// DefaultLeaseTTL is how long a lease outlives its holder's last renewal.
// Kubernetes' leader election uses 15 s; ours is shorter because failover
// time is about one TTL and renewal is a cheap KV write.
const DefaultLeaseTTL = 5 * time.Second

// LeaseConfig names a lease and who campaigns for it.
type LeaseConfig struct {
	// Name of the role, a KV key ("scheduler").
	Name string
	// Holder identifies this process in the lease value; default
	// hostname-pid-random. A holder that finds the lease still held under
	// its own name (it was restarted before the TTL ran out) takes it back
	// at once, so give a stable name only to a process that cannot run
	// twice, like `miniku up` with its embedded NATS server.
	Holder string
	// TTL is rounded up to whole seconds (the server's granularity), at
	// least 1 s. Default DefaultLeaseTTL.
	TTL    time.Duration
	Logger *slog.Logger
}

// Lease is one process's campaign for a role.
type Lease struct {
	conn *Conn
	kv   jetstream.KeyValue
	cfg  LeaseConfig
	log  *slog.Logger
	// Renew every ttl/3 and give up leading once renewDeadline has passed
	// since the last successful renewal, so the old leader stops before a
	// standby can acquire (the TTL counts from the same write).
	renewEvery, renewDeadline, retry time.Duration
}

// NewLease prepares a campaign; nothing is acquired until Run.
func (c *Conn) NewLease(ctx context.Context, cfg LeaseConfig) (*Lease, error) {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultLeaseTTL
	}
	cfg.TTL = time.Duration(math.Ceil(cfg.TTL.Seconds())) * time.Second
	if cfg.Holder == "" {
		host, _ := os.Hostname()
		// Random per lease: a nuid's first bytes are the same for the
		// whole process, so two campaigns of one process (two apiservers
		// in a test) both "took back" the lease as its holder.
		cfg.Holder = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), RandomSecret()[:8])
	}
	if cfg.Logger == nil {
		cfg.Logger = c.log
	}
	var kv jetstream.KeyValue
	err := retry(ctx, func() error {
		var err error
		kv, err = c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:   BucketLeases,
			History:  1,
			Storage:  jetstream.FileStorage,
			Replicas: c.keptReplicas(ctx, "KV_"+BucketLeases, max(c.replicas, 1)),
			// Enables per-key TTLs; markers of expired leases go after 1 s.
			LimitMarkerTTL: time.Second,
		})
		if err == nil {
			err = c.limitConsumers(ctx, "KV_"+BucketLeases)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", BucketLeases, err)
	}
	return &Lease{
		conn:          c,
		kv:            kv,
		cfg:           cfg,
		log:           cfg.Logger.With("lease", cfg.Name, "holder", cfg.Holder),
		renewEvery:    cfg.TTL / 3,
		renewDeadline: cfg.TTL * 2 / 3,
		retry:         max(cfg.TTL/5, 100*time.Millisecond),
	}, nil
}

// Holder is this process's identity in the lease.
func (l *Lease) Holder() string { return l.cfg.Holder }

// Run campaigns until ctx ends. Each time it acquires the lease it calls
// lead with a context that is cancelled as soon as the lease is lost (a
// renewal conflict, or no successful renewal for two thirds of the TTL),
// waits for lead to return, and campaigns again. lead is called afresh for
// every term, so it must build its state (caches, queues) from KV each
// time. On ctx end the lease is released at once so a standby need not
// wait for the TTL.
func (l *Lease) Run(ctx context.Context, lead func(ctx context.Context) error) error {
	for {
		rev, sent, err := l.acquire(ctx)
		if err != nil {
			return nil // ctx ended while campaigning
		}
		l.log.Info("acquired lease", "ttl", l.cfg.TTL)
		lctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- lead(lctx) }()
		rev, lost := l.hold(lctx, rev, sent, done)
		cancel()
		leadErr := <-done
		if !lost {
			l.release(rev)
		}
		if ctx.Err() != nil {
			return nil
		}
		if leadErr != nil && !lost {
			return leadErr
		}
		l.log.Warn("lost lease; standing by", "err", leadErr)
	}
}

// acquire retries Create until it succeeds or ctx ends. It returns the
// revision and when the winning write was sent: the server's TTL counts from
// a moment no earlier than that.
func (l *Lease) acquire(ctx context.Context) (uint64, time.Time, error) {
	t := time.NewTicker(l.retry)
	defer t.Stop()
	for {
		sent := time.Now()
		rev, err := l.kv.Create(ctx, l.cfg.Name, []byte(l.cfg.Holder), jetstream.KeyTTL(l.cfg.TTL))
		if err == nil {
			return rev, sent, nil
		}
		if errors.Is(err, jetstream.ErrKeyExists) {
			if e, gerr := l.kv.Get(ctx, l.cfg.Name); gerr == nil && string(e.Value()) == l.cfg.Holder {
				sent = time.Now()
				if rev, err := l.renew(ctx, e.Revision()); err == nil {
					return rev, sent, nil
				}
			}
		} else if ctx.Err() == nil {
			l.log.Debug("campaign for lease", "err", err)
		}
		select {
		case <-ctx.Done():
			return 0, time.Time{}, ctx.Err()
		case <-t.C:
		}
	}
}

// hold renews the lease until lead returns (done), ctx ends, or the lease
// is lost. It returns the last revision written and whether it was lost.
// renewed is when the last successful write was sent; the lease counts as
// lost renewDeadline after it, by a timer of its own, so a renewal stuck
// in a stalled connection cannot keep us leading past the TTL.
func (l *Lease) hold(ctx context.Context, rev uint64, renewed time.Time, done chan error) (uint64, bool) {
	t := time.NewTicker(l.renewEvery)
	defer t.Stop()
	deadline := time.NewTimer(time.Until(renewed.Add(l.renewDeadline)))
	defer deadline.Stop()
	for {
		select {
		case <-ctx.Done():
			return rev, false
		case err := <-done:
			done <- err // Run reads it again
			return rev, false
		case <-deadline.C:
			l.log.Warn("lease not renewed in time", "since", time.Since(renewed).Round(time.Millisecond))
			return rev, true
		case <-t.C:
		}
		sent := time.Now()
		rctx, cancel := context.WithDeadline(ctx, renewed.Add(l.renewDeadline))
		next, err := l.renew(rctx, rev)
		cancel()
		switch {
		case err == nil:
			rev, renewed = next, sent
			deadline.Reset(time.Until(renewed.Add(l.renewDeadline)))
		case errors.Is(err, jetstream.ErrKeyExists):
			// Someone else holds it: our TTL ran out while we were
			// stalled. Stop at once.
			l.log.Warn("lease taken over", "err", err)
			return rev, true
		case ctx.Err() == nil:
			l.log.Debug("renew lease", "err", err)
		}
	}
}

// renew writes the lease again at the revision we hold, with a fresh TTL.
// KeyValue.Update cannot carry a TTL (the new message would never expire),
// so this is the same compare-and-swap publish with the TTL header added.
func (l *Lease) renew(ctx context.Context, rev uint64) (uint64, error) {
	subj := "$KV." + BucketLeases + "." + l.cfg.Name
	ack, err := l.conn.js.PublishMsg(ctx, &nats.Msg{Subject: subj, Data: []byte(l.cfg.Holder)},
		jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(l.cfg.TTL))
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			return 0, fmt.Errorf("renew lease %s: %w", l.cfg.Name, jetstream.ErrKeyExists)
		}
		return 0, fmt.Errorf("renew lease %s: %w", l.cfg.Name, err)
	}
	return ack.Sequence, nil
}

// release deletes the lease if we still hold it, so a standby takes over
// without waiting for the TTL.
func (l *Lease) release(rev uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := l.kv.Delete(ctx, l.cfg.Name, jetstream.LastRevision(rev)); err != nil {
		l.log.Debug("release lease", "err", err)
		return
	}
	l.log.Info("released lease")
}
