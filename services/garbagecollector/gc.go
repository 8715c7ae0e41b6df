// Package garbagecollector deletes what its owners no longer hold, as
// kube-controller-manager's garbage collector does, driven by
// ownerReferences (by uid; a pod's replicaset counts as one): the
// dependents of an owner that is gone, and the dependents of one being
// deleted with propagationPolicy Foreground (foregroundDeletion
// finalizer, removed once they are gone) or Orphan (orphan finalizer,
// removed once their references to it are).
//
// It is level-triggered: every pass decides (Decide) over every object
// its caches hold, after any change and at every resync, so a pass lost
// to a crash or a failed write is made again. Every write is
// compare-and-swap through the kind's strategy, and a dependent is only
// deleted once a live read confirms its owners gone. Passes are
// idempotent, so any number of collectors may run.
package garbagecollector

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas"
)

// Config of the collector.
type Config struct {
	Logger *slog.Logger
	// Resync is how often a pass runs without a change (default 30 s).
	Resync time.Duration
	// Interval is the least time between passes (default 200 ms): the
	// changes of a burst are decided together.
	Interval time.Duration
	// Now is the clock (time.Now by default).
	Now func() time.Time
	// Pods and ReplicaSets are shared caches to read (miniku up's); nil:
	// the collector runs its own.
	Pods        *bus.Informer[schemas.Pod, *schemas.Pod]
	ReplicaSets *bus.Informer[schemas.ReplicaSet, *schemas.ReplicaSet]
}

// GC is the garbage collector.
type GC struct {
	cfg    Config
	log    *slog.Logger
	stores []kindStore
	own    []func(context.Context) error
	wake   chan struct{}
}

// New returns a collector writing through conn (a user that may write
// every bucket it collects: the controller's or the apiserver's). It
// sees pods, replicasets, configmaps and serviceaccounts.
func New(cfg Config, conn *bus.Conn) (*GC, error) {
	if conn == nil || conn.Pods == nil || conn.ConfigMaps == nil || conn.ServiceAccounts == nil {
		return nil, errors.New("garbagecollector: missing buckets")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 200 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	g := &GC{cfg: cfg, log: cfg.Logger.With("component", "garbagecollector"), wake: make(chan struct{}, 1)}
	caches := &bus.Caches{Conn: conn, Resync: cfg.Resync, Log: g.log}
	// Own caches get no handler here: Run joins every cache alike.
	g.stores = []kindStore{
		podStore(conn, bus.CacheOf(caches, cfg.Pods, conn.Pods, nil)),
		newStore("replicasets", conn.ReplicaSets, bus.CacheOf(caches, cfg.ReplicaSets, conn.ReplicaSets, nil)),
		newStore("configmaps", conn.ConfigMaps, bus.CacheOf(caches, nil, conn.ConfigMaps, nil)),
		newStore("serviceaccounts", conn.ServiceAccounts, bus.CacheOf(caches, nil, conn.ServiceAccounts, nil)),
	}
	g.own = caches.Own
	return g, nil
}

func (g *GC) changed(string) {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// Run collects until ctx ends.
func (g *GC) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, run := range g.own {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil && ctx.Err() == nil {
				g.log.Error("cache stopped", "err", err)
			}
		}()
	}
	for _, s := range g.stores {
		remove, err := s.join(ctx, g.changed)
		if err != nil {
			return nil // ctx ended
		}
		defer remove()
	}
	for _, s := range g.stores {
		if err := s.waitSynced(ctx); err != nil {
			return nil
		}
	}
	g.log.Info("garbage collector started")
	resync := time.NewTicker(g.cfg.Resync)
	defer resync.Stop()
	for {
		g.pass(ctx)
		// At most one pass an Interval: what changes meanwhile waits.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(g.cfg.Interval):
		}
		select {
		case <-ctx.Done():
			return nil
		case <-g.wake:
		case <-resync.C:
		}
	}
}

func (g *GC) known(apiVersion, kind string) bool { return g.owner(apiVersion, kind) != nil }

func (g *GC) owner(apiVersion, kind string) kindStore {
	for _, s := range g.stores {
		if s.owns(apiVersion, kind) {
			return s
		}
	}
	return nil
}

func (g *GC) byResource(r string) kindStore {
	for _, s := range g.stores {
		if s.resource() == r {
			return s
		}
	}
	return nil
}

// pass decides over everything cached and makes the writes; a failed one
// is logged and made again by a later pass.
func (g *GC) pass(ctx context.Context) {
	var objs []Object
	for _, s := range g.stores {
		objs = append(objs, s.objects()...)
	}
	for _, a := range Decide(objs, g.known) {
		if ctx.Err() != nil {
			return
		}
		err := g.act(ctx, a)
		switch {
		case err == nil:
			g.log.Info("collected", "verb", a.Verb, "resource", a.Resource, "name", a.Name, "finalizer", a.Finalizer, "reason", a.Why)
		case errors.Is(err, errSkip), errors.Is(err, bus.ErrNotFound):
		default:
			g.log.Warn("collect", "verb", a.Verb, "resource", a.Resource, "name", a.Name, "err", err)
		}
	}
}

func (g *GC) act(ctx context.Context, a Action) error {
	for _, r := range a.Gone {
		s := g.owner(r.APIVersion, r.Kind)
		if s == nil {
			return errSkip
		}
		ok, err := s.exists(ctx, r.Name, r.UID)
		if err != nil {
			return err
		}
		if ok {
			return errSkip // the cache had not seen it yet
		}
	}
	s := g.byResource(a.Resource)
	if s == nil {
		return errSkip
	}
	return s.apply(ctx, a, g.cfg.Now())
}
