// Package scheduler binds Pending pods to Ready nodes.
//
// It keeps its view of pods and nodes in memory, fed by KV watches, reacts to
// pod.created hints within milliseconds, and resyncs from KV periodically.
// A bind is a compare-and-swap on the pod's revision, so two schedulers can
// never bind one pod twice: the loser sees a conflict and re-reads.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/metrics"
	"github.com/miniku/miniku/bus/registry"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/queue"
)

// Config tunes the scheduler.
type Config struct {
	Logger *slog.Logger
	// Resync is how often every pod is revisited even without events.
	Resync time.Duration
	// Workers bind pods concurrently: decisions are serialised by the
	// allocation index, the KV writes overlap.
	Workers int
	// Elector, when set, runs the scheduler only while this process holds
	// the lease (see leader.go); nil schedules unconditionally.
	Elector Elector
	// Pods and Nodes, when set, are caches the caller runs and shares with
	// other components of the process (miniku up); nil: the scheduler
	// runs its own.
	Pods  *bus.Informer[schemas.Pod, *schemas.Pod]
	Nodes *bus.Informer[schemas.Node, *schemas.Node]
}

// DefaultWorkers is how many binds may be in flight at once. A bind waits on
// a KV round trip (0.1-0.3 ms, or an fsync with --nats-sync always) while
// deciding takes microseconds, so one worker would leave the scheduler idle
// most of the time.
const DefaultWorkers = 32

// Scheduler is the binding loop.
type Scheduler struct {
	cfg  Config
	conn *bus.Conn
	// writes go through the pod's rules, as the API's pods/binding and
	// pods/status do.
	writes podWriter
	log    *slog.Logger
	pods   *bus.Informer[schemas.Pod, *schemas.Pod]
	nodes  *bus.Informer[schemas.Node, *schemas.Node]
	q      *queue.Queue
	alloc  *allocIndex

	// own are the Runs of the caches this scheduler made for itself (not
	// shared ones).
	own []func(context.Context) error

	// rescan asks for every pending pod to be requeued. Requests coalesce:
	// 5,000 nodes appearing at a new term's start, or a replicaset of
	// 10,000 deleted, cost a pass or two rather than one per event (which
	// stalled a new term for minutes with 150,000 pods stored).
	rescan chan struct{}
}

// podWriter is what the scheduler writes to pods (bus/registry's Pods).
type podWriter interface {
	Bind(ctx context.Context, cached *schemas.Pod, node string) (*schemas.Pod, error)
	UpdateStatus(ctx context.Context, name string, fn func(*schemas.Pod) error) (*schemas.Pod, error)
}

// New builds a scheduler on conn.
func New(cfg Config, conn *bus.Conn) (*Scheduler, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	log := cfg.Logger.With("component", "scheduler")
	s := &Scheduler{
		cfg:    cfg,
		conn:   conn,
		writes: registry.For(conn, nil).Pods,
		log:    log,
		q:      queue.New(),
		alloc:  newAllocIndex(),
		rescan: make(chan struct{}, 1),
	}
	caches := &bus.Caches{Conn: conn, Resync: cfg.Resync, Log: log}
	s.pods = bus.CacheOf(caches, cfg.Pods, conn.Pods, s.podHandler())
	s.nodes = bus.CacheOf(caches, cfg.Nodes, conn.Nodes, s.nodeHandler())
	// The pods waiting for a node, so that room appearing requeues them
	// without a pass over every pod.
	s.pods.AddIndex(podsPending, pendingIndex)
	s.own = caches.Own
	return s, nil
}

// podsPending indexes the pods that need a node under "" (pendingIndex).
const podsPending = "scheduler.pending"

func pendingIndex(p *schemas.Pod) []string {
	if needsBinding(p) {
		return []string{""}
	}
	return nil
}

func (s *Scheduler) podHandler() bus.Handler[*schemas.Pod] {
	return bus.HandlerFuncs[*schemas.Pod]{
		Add:    func(p *schemas.Pod) { s.podChanged(p.Name, nil, p) },
		Update: func(old, p *schemas.Pod) { s.podChanged(p.Name, old, p) },
		Delete: func(old *schemas.Pod) { s.podChanged(old.Name, old, nil) },
	}
}

// podChanged: p is now (nil: gone), old was (nil: new).
func (s *Scheduler) podChanged(name string, old, p *schemas.Pod) {
	s.alloc.refresh(name, s.pods.Get)
	if p != nil && needsBinding(p) {
		s.q.Add(name)
	}
	// A pod gone or finished frees room on its node.
	if freesRoom(old, p) {
		s.requeuePending()
	}
}

// nodeHandler: a node becoming Ready, uncordoned, relabelled or added may
// unblock every pending pod; a mere heartbeat or a resync does not.
func (s *Scheduler) nodeHandler() bus.Handler[*schemas.Node] {
	changed := func(old, n *schemas.Node) {
		if !nodeMatters(old, n) {
			return
		}
		if n != nil {
			s.alloc.setNode(n.Name, n, true)
		} else {
			s.alloc.setNode(old.Name, nil, false)
		}
		s.requeuePending()
	}
	return bus.HandlerFuncs[*schemas.Node]{
		Add:    func(n *schemas.Node) { changed(nil, n) },
		Update: changed,
		Delete: func(old *schemas.Node) { changed(old, nil) },
	}
}

func needsBinding(p *schemas.Pod) bool {
	return p.NodeName == "" && p.Status == schemas.PodPending && p.DeletionTimestamp == nil
}

// requeuePending asks rescanLoop for a pass over the pending pods.
func (s *Scheduler) requeuePending() {
	select {
	case s.rescan <- struct{}{}:
	default: // a pass is already due; it will see this change too
	}
}

func (s *Scheduler) rescanLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.rescan:
		}
		for _, p := range s.pods.ByIndex(podsPending, "") {
			s.q.Add(p.Name)
		}
	}
}

// Run schedules until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	if s.cfg.Elector != nil {
		return s.runElected(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	runs := append([]func(context.Context) error{func(ctx context.Context) error { s.rescanLoop(ctx); return nil }}, s.own...)
	for _, run := range runs {
		wg.Add(1)
		go func() { defer wg.Done(); _ = run(ctx) }()
	}
	// pod.created is only a hint: the pod may not be in our cache yet, so
	// the worker falls back to reading KV.
	sub, err := s.conn.Subscribe(bus.SubjPodCreated, func(_ string, ev schemas.Event) {
		s.q.Add(ev.Name)
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	// Shared caches: join them, once they hold every write made before
	// now (a previous leader's binds included). Nodes first, so pods are
	// decided against them.
	if s.cfg.Nodes != nil {
		remove, err := s.nodes.JoinEventHandler(ctx, s.nodeHandler())
		if err != nil {
			return nil
		}
		defer remove()
	}
	if s.cfg.Pods != nil {
		remove, err := s.pods.JoinEventHandler(ctx, s.podHandler())
		if err != nil {
			return nil
		}
		defer remove()
	}
	if err := s.pods.WaitSynced(ctx); err != nil {
		return nil
	}
	if err := s.nodes.WaitSynced(ctx); err != nil {
		return nil
	}
	s.log.Info("scheduler started")
	s.q.Run(ctx, s.cfg.Workers, s.schedule)
	return nil
}

func (s *Scheduler) schedule(ctx context.Context, name string) error {
	pod, ok := s.pods.Get(name)
	if !ok {
		var err error
		pod, err = s.conn.Pods.Get(ctx, name)
		if errors.Is(err, bus.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	if !needsBinding(pod) {
		return nil
	}

	node, reason := s.alloc.decideAndAssume(pod)
	if node == "" {
		if reason == "" {
			return nil // being bound by another worker
		}
		s.log.Debug("pod unschedulable", "pod", name, "reason", reason)
		// Node changes and freed pods requeue pending pods; the retry
		// only covers a missed event.
		s.q.AddAfter(name, 5*time.Second)
		return s.markUnschedulable(ctx, pod, reason)
	}
	// Whatever happens next, the assumption ends once the cache holds the
	// outcome.
	defer s.alloc.forget(name, s.pods.Get)
	bound, err := s.writes.Bind(ctx, pod, node)
	metrics.Bind(pod.CreatedAt, err, errors.Is(err, bus.ErrConflict) || errors.Is(err, bus.ErrNotFound))
	if err != nil {
		if errors.Is(err, bus.ErrConflict) || errors.Is(err, bus.ErrNotFound) {
			// Someone changed it first (another scheduler, a delete):
			// decide again from the fresh state.
			fresh, gerr := s.conn.Pods.Get(ctx, name)
			if gerr == nil {
				s.pods.Observe(fresh)
				if needsBinding(fresh) {
					return fmt.Errorf("bind pod %s to %s: %w", name, node, err)
				}
			}
			return nil
		}
		return fmt.Errorf("bind pod %s to %s: %w", name, node, err)
	}
	s.pods.Observe(bound)
	s.log.Info(fmt.Sprintf("assigning pod %s to node %s", name, node), "pod", name, "node", node)
	s.conn.Emit(schemas.ObjectEvent{Type: schemas.EventNormal, Reason: "Scheduled", Kind: schemas.KindPod, Name: name, Node: node,
		Component: "scheduler", Message: fmt.Sprintf("Successfully assigned %s to %s", name, node)})
	ev := schemas.Event{Type: "assigned", Kind: schemas.KindPod, Name: name, Node: node, Revision: bound.ResourceVersion}
	if err := s.conn.Publish(bus.NodeSubject(bus.SubjPodAssigned, node), ev); err != nil {
		s.log.Warn("publish assignment", "pod", name, "err", err)
	}
	return nil
}
