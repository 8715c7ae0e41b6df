// Package controller runs MiniKu's reconcile loops: the replicaset loop keeps
// each replicaset's pod count, and the node loop marks nodes whose heartbeat
// stopped NotReady and fails their pods so replicasets replace them.
//
// Both loops are level-triggered: they react to watch events for speed and
// revisit every object at each resync, and every write is a compare-and-swap,
// so a lost event or a concurrent writer never leaves a wrong state behind.
package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/metrics"
	"github.com/miniku/miniku/bus/registry"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/queue"
)

// Config tunes the loops.
type Config struct {
	Logger *slog.Logger
	Resync time.Duration
	// NodeGrace: a node whose heartbeat has not changed for this long is
	// NotReady (Kubernetes: node-monitor-grace-period).
	NodeGrace time.Duration
	// EvictionTimeout: pods of a node NotReady this long are failed with
	// reason NodeLost so their replicasets replace them.
	EvictionTimeout time.Duration
	// Now is the clock; tests may inject one.
	Now func() time.Time
	// Elector, when set, runs the loops only while this process holds the
	// lease (leader.go); nil runs them unconditionally.
	Elector Elector
	// Pods, ReplicaSets and Nodes, when set, are caches the caller runs
	// and shares with other components of the process (miniku up); nil:
	// the controller runs its own.
	Pods        *bus.Informer[schemas.Pod, *schemas.Pod]
	ReplicaSets *bus.Informer[schemas.ReplicaSet, *schemas.ReplicaSet]
	Nodes       *bus.Informer[schemas.Node, *schemas.Node]
	// FailureBackoff delays replacing the failed pods of a replicaset whose
	// pods keep failing (decide.go); zero fields take the defaults.
	FailureBackoff FailureBackoff
	// BurstReplicas caps the pods one replicaset sync creates (Kubernetes'
	// --replicaset burst, 500); the next sync goes on.
	BurstReplicas int
}

// Defaults, as documented in the README.
const (
	DefaultNodeGrace       = 15 * time.Second
	DefaultEvictionTimeout = 30 * time.Second
)

// podSyncDelay gathers the changes of a replicaset's pods into one sync: a
// sync reads all of its pods, and pods change thousands of times a second
// when a big replicaset starts, so syncing at each change would spend a
// core recounting. A replacement for a failed pod waits this much longer.
const podSyncDelay = 50 * time.Millisecond

// Controller owns the replicaset and node loops.
type Controller struct {
	cfg  Config
	conn *bus.Conn
	// The controller's writes go through each kind's rules
	// (bus/registry), the API's: it cannot write what the API refuses.
	podWrites  podWriter
	rsWrites   rsWriter
	nodeWrites nodeWriter
	log        *slog.Logger
	pods       *bus.Informer[schemas.Pod, *schemas.Pod]
	rss        *bus.Informer[schemas.ReplicaSet, *schemas.ReplicaSet]
	nodes      *bus.Informer[schemas.Node, *schemas.Node]
	rsq        *queue.Queue
	nodeq      *queue.Queue
	// counts follow the pod cache's events (owners.go).
	counts *ownerCounts

	mu sync.Mutex
	// heartbeats holds, per node, the last heartbeat value seen and when
	// this controller first saw it, by its own clock.
	heartbeats map[string]observedHeartbeat
	// own are the Runs of the caches this controller made for itself (not
	// shared ones).
	own []func(context.Context) error
	// statusRev is, per replicaset, the revision of this controller's last
	// status write: its watch echo needs no sync of its own.
	statusRev map[string]uint64
	// failures is, per replicaset, its failure backoff (burst.go).
	failures map[string]rsFailures
}

// podWriter is how the controller writes pods (bus/registry's Pods).
type podWriter interface {
	Create(ctx context.Context, p *schemas.Pod) error
	UpdateStatus(ctx context.Context, name string, fn func(*schemas.Pod) error) (*schemas.Pod, error)
	MarkDeleting(ctx context.Context, name string, decide func(*schemas.Pod) (int64, error)) (*schemas.Pod, error)
}

// rsWriter writes replicaset status (bus/registry's ReplicaSets).
type rsWriter interface {
	UpdateStatusFrom(ctx context.Context, cached *schemas.ReplicaSet, fn func(*schemas.ReplicaSet) error) (*schemas.ReplicaSet, error)
}

// nodeWriter writes node status (bus/registry's Nodes).
type nodeWriter interface {
	UpdateStatus(ctx context.Context, name string, fn func(*schemas.Node) error) (*schemas.Node, error)
}

type observedHeartbeat struct {
	value    time.Time
	observed time.Time
}

// New builds the controller on conn.
func New(cfg Config, conn *bus.Conn) (*Controller, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.NodeGrace <= 0 {
		cfg.NodeGrace = DefaultNodeGrace
	}
	if cfg.EvictionTimeout <= 0 {
		cfg.EvictionTimeout = DefaultEvictionTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.BurstReplicas <= 0 {
		cfg.BurstReplicas = DefaultBurstReplicas
	}
	cfg.FailureBackoff = cfg.FailureBackoff.withDefaults()
	log := cfg.Logger.With("component", "controller")
	reg := registry.For(conn, cfg.Now)
	c := &Controller{
		cfg:        cfg,
		conn:       conn,
		podWrites:  reg.Pods,
		rsWrites:   reg.ReplicaSets,
		nodeWrites: reg.Nodes,
		log:        log,
		rsq:        queue.New(),
		nodeq:      queue.New(),
		counts:     newOwnerCounts(),
		heartbeats: map[string]observedHeartbeat{},
		statusRev:  map[string]uint64{},
		failures:   map[string]rsFailures{},
	}
	caches := &bus.Caches{Conn: conn, Resync: cfg.Resync, Log: log}
	c.pods = bus.CacheOf(caches, cfg.Pods, conn.Pods, c.podHandler())
	c.rss = bus.CacheOf(caches, cfg.ReplicaSets, conn.ReplicaSets, bus.KeyHandler[schemas.ReplicaSet](c.replicaSetChanged))
	c.nodes = bus.CacheOf(caches, cfg.Nodes, conn.Nodes, bus.KeyHandler[schemas.Node](c.nodeq.Add))
	// A sync reads its replicaset's pods, a lost node's eviction the
	// node's: from indexes, not a pass over every pod.
	c.pods.AddIndex(bus.PodsByOwner, bus.PodOwner)
	c.pods.AddIndex(bus.PodsByNode, bus.PodNode)
	c.own = caches.Own
	return c, nil
}

// replicaSetChanged syncs a replicaset a user or another writer changed at
// once. The echo of this controller's own status write (and a resync of a
// replicaset unchanged since) joins the pod-driven syncs instead: while a
// big replicaset starts, each status write would otherwise trigger a sync
// that writes the next count, a loop as fast as a KV round trip.
func (c *Controller) replicaSetChanged(name string) {
	rs, ok := c.rss.Get(name)
	c.mu.Lock()
	own := ok && c.statusRev[name] == rs.ResourceVersion
	if !ok {
		delete(c.statusRev, name)
	}
	c.mu.Unlock()
	if own {
		c.rsq.AddAfter(name, podSyncDelay)
		return
	}
	c.rsq.Add(name)
}

// podHandler keeps the owner counts and wakes the owner of a pod that
// changed or went (the deleted pod's last version still names it).
func (c *Controller) podHandler() bus.Handler[*schemas.Pod] {
	return bus.HandlerFuncs[*schemas.Pod]{
		Add: func(p *schemas.Pod) { c.counts.OnAdd(p); c.podChanged(p) },
		Update: func(old, p *schemas.Pod) {
			c.counts.OnUpdate(old, p)
			if old.Owner != p.Owner {
				c.wakeOwner(old)
			}
			c.podChanged(p)
		},
		Delete: func(old *schemas.Pod) { c.counts.OnDelete(old); c.wakeOwner(old) },
	}
}

func (c *Controller) wakeOwner(p *schemas.Pod) {
	if p.Owner != "" {
		c.rsq.AddAfter(p.Owner, podSyncDelay)
	}
}

func (c *Controller) podChanged(p *schemas.Pod) {
	c.wakeOwner(p)
	if p.NodeName != "" {
		// A pod bound to a lost node must be failed even if it was bound
		// after the eviction pass.
		if n, found := c.nodes.Get(p.NodeName); found && n.Status == schemas.NodeNotReady {
			c.nodeq.Add(p.NodeName)
		}
	}
}

// Run runs both loops until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	if c.cfg.Elector != nil {
		return c.runElected(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, run := range c.own {
		wg.Add(1)
		go func() { defer wg.Done(); _ = run(ctx) }()
	}
	// Shared caches: join them once they hold every write made before now
	// (a previous leader's included). Pods first: the owner counts must
	// be full before a replicaset sync reads them.
	for _, join := range []struct {
		shared bool
		join   func(context.Context) (func(), error)
	}{
		{c.cfg.Pods != nil, func(ctx context.Context) (func(), error) { return c.pods.JoinEventHandler(ctx, c.podHandler()) }},
		{c.cfg.Nodes != nil, func(ctx context.Context) (func(), error) {
			return c.nodes.JoinEventHandler(ctx, bus.KeyHandler[schemas.Node](c.nodeq.Add))
		}},
		{c.cfg.ReplicaSets != nil, func(ctx context.Context) (func(), error) {
			return c.rss.JoinEventHandler(ctx, bus.KeyHandler[schemas.ReplicaSet](c.replicaSetChanged))
		}},
	} {
		if !join.shared {
			continue
		}
		remove, err := join.join(ctx)
		if err != nil {
			return nil
		}
		defer remove()
	}
	for _, w := range []interface{ WaitSynced(context.Context) error }{c.pods, c.rss, c.nodes} {
		if err := w.WaitSynced(ctx); err != nil {
			return nil
		}
	}
	// Pods whose replicaset is gone have no replicaset event to wake them:
	// enqueue every owner name once at start and each resync.
	c.enqueueOwners()
	defer metrics.SetCluster(c)()
	wg.Add(3)
	go func() { defer wg.Done(); c.rsq.Run(ctx, 4, metrics.Reconciler("replicaset", c.reconcileReplicaSet)) }()
	go func() { defer wg.Done(); c.nodeq.Run(ctx, 2, metrics.Reconciler("node", c.reconcileNode)) }()
	go func() { defer wg.Done(); c.tick(ctx) }()
	c.log.Info("controller started", "nodeGrace", c.cfg.NodeGrace, "evictionTimeout", c.cfg.EvictionTimeout)
	<-ctx.Done()
	return nil
}

// tick re-checks nodes every second: staleness is a function of time, not
// of any event, so it needs a clock-driven pass.
func (c *Controller) tick(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	resync := time.NewTicker(c.cfg.Resync)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, n := range c.nodes.List() {
				c.nodeq.Add(n.Name)
			}
		case <-resync.C:
			c.enqueueOwners()
		}
	}
}

func (c *Controller) enqueueOwners() {
	for _, owner := range c.pods.IndexValues(bus.PodsByOwner) {
		c.rsq.Add(owner)
	}
}

func (c *Controller) ownedPods(rs *schemas.ReplicaSet) (owned, orphans []*schemas.Pod) {
	for _, p := range c.pods.ByIndex(bus.PodsByOwner, rs.Name) {
		if p.OwnerUID == rs.UID {
			owned = append(owned, p)
		} else {
			orphans = append(orphans, p)
		}
	}
	return owned, orphans
}

func (c *Controller) reconcileReplicaSet(ctx context.Context, name string) error {
	rs, ok := c.rss.Get(name)
	if !ok {
		// Deleted: its pods are the garbage collector's (by owner UID,
		// or orphaned, as the delete's propagationPolicy said).
		c.forgetFailures(name)
		return nil
	}
	// Most syncs of a big replicaset find nothing to create or delete:
	// then its counts suffice (owners.go), not a pass over its pods.
	if n, ok := c.counts.steady(rs.Name, rs.UID); ok && n.active == rs.DesiredCount {
		if rs.CurrentCount != n.active || rs.ReadyCount != n.running {
			return c.updateStatus(ctx, rs, schemas.ReplicaSet{CurrentCount: n.active, ReadyCount: n.running})
		}
		return nil
	}
	owned, orphans := c.ownedPods(rs)
	if rs.DeletionTimestamp != nil {
		// Being deleted (a finalizer holds it): as Kubernetes' replicaset
		// controller, neither create nor delete pods, only count them;
		// the garbage collector deletes or orphans them.
		st := CountReplicas(owned)
		if rs.CurrentCount != st.CurrentCount || rs.ReadyCount != st.ReadyCount {
			return c.updateStatus(ctx, rs, st)
		}
		return nil
	}
	var errs []error
	// Pods of an earlier replicaset with the same name.
	for _, p := range orphans {
		errs = append(errs, c.terminatePod(ctx, p, "owner replaced"))
	}
	plan := c.decide(rs, owned)
	for _, p := range plan.Delete {
		errs = append(errs, c.terminatePod(ctx, p, "scale down or replace"))
	}
	created, err := c.createPods(ctx, rs, plan.Create)
	if err != nil {
		errs = append(errs, err)
	}
	plan.Status.CurrentCount -= plan.Create - created
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reconcile replicaset %s: %w", name, err)
	}
	if rs.CurrentCount != plan.Status.CurrentCount || rs.ReadyCount != plan.Status.ReadyCount {
		return c.updateStatus(ctx, rs, plan.Status)
	}
	return nil
}

// updateStatus writes only the status fields, at the revision just read, so
// a user's newer desiredCount is never overwritten.
func (c *Controller) updateStatus(ctx context.Context, rs *schemas.ReplicaSet, st schemas.ReplicaSet) error {
	updated, err := c.rsWrites.UpdateStatusFrom(ctx, rs, func(cur *schemas.ReplicaSet) error {
		if cur.UID != rs.UID {
			return bus.ErrNoChange
		}
		if cur.CurrentCount == st.CurrentCount && cur.ReadyCount == st.ReadyCount {
			return bus.ErrNoChange
		}
		cur.CurrentCount, cur.ReadyCount = st.CurrentCount, st.ReadyCount
		return nil
	})
	if errors.Is(err, bus.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("update status of replicaset %s: %w", rs.Name, err)
	}
	c.mu.Lock()
	c.statusRev[rs.Name] = updated.ResourceVersion
	c.mu.Unlock()
	c.rss.Observe(updated)
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (c *Controller) createPod(ctx context.Context, rs *schemas.ReplicaSet) error {
	for attempt := 0; ; attempt++ {
		pod := &schemas.Pod{
			ObjectMeta: schemas.ObjectMeta{Name: rs.Name + "-" + randomHex(4), Labels: rs.PodLabels(),
				Annotations: maps.Clone(rs.Template.Annotations)},
			ContainerName: rs.Template.Name,
			PodSpec:       rs.Template.PodSpec,
			Owner:         rs.Name,
			OwnerUID:      rs.UID,
		}
		err := c.podWrites.Create(ctx, pod)
		if errors.Is(err, bus.ErrAlreadyExists) && attempt < 5 {
			continue // a 32-bit name collision: pick another
		}
		if err != nil {
			return fmt.Errorf("create pod for replicaset %s: %w", rs.Name, err)
		}
		// The next sync, maybe before the watch echoes it, must count it.
		c.pods.Observe(pod)
		c.log.Info("created pod", "replicaset", rs.Name, "pod", pod.Name)
		c.publish(bus.SubjPodCreated, schemas.Event{Type: "created", Kind: schemas.KindPod, Name: pod.Name, Revision: pod.ResourceVersion})
		return nil
	}
}

func (c *Controller) deletePod(ctx context.Context, p *schemas.Pod, why string) error {
	if len(p.Finalizers) > 0 {
		// Finalizers hold it: mark it, with nothing left to wait for
		// but them (the API removes it with the last).
		_, err := c.podWrites.MarkDeleting(ctx, p.Name, func(cur *schemas.Pod) (int64, error) {
			if cur.UID != p.UID {
				return 0, bus.ErrNoChange
			}
			return 0, nil
		})
		if err != nil && !errors.Is(err, bus.ErrNotFound) {
			return fmt.Errorf("delete pod %s: %w", p.Name, err)
		}
		return nil
	}
	err := c.conn.Pods.Delete(ctx, p.Name, p.ResourceVersion)
	switch {
	case errors.Is(err, bus.ErrNotFound):
		return nil
	case errors.Is(err, bus.ErrConflict):
		// Changed since our cache saw it; the watch will bring the new
		// version and a retry decides again.
		return fmt.Errorf("delete pod %s: %w", p.Name, err)
	case err != nil:
		return fmt.Errorf("delete pod %s: %w", p.Name, err)
	}
	c.pods.ObserveDelete(p.Name, p.ResourceVersion+1)
	c.log.Info("deleted pod", "pod", p.Name, "replicaset", p.Owner, "reason", why)
	c.publish(bus.SubjPodDeleted, schemas.Event{Type: "deleted", Kind: schemas.KindPod, Name: p.Name, Node: p.NodeName, Reason: why})
	return nil
}

func (c *Controller) publish(subject string, ev schemas.Event) {
	if err := c.conn.Publish(subject, ev); err != nil {
		c.log.Warn("publish event", "subject", subject, "err", err)
	}
}

// reconcileNode marks a node NotReady when its heartbeat has not changed for
// NodeGrace (by this controller's clock, so host clock skew does not
// matter), and fails its pods once it has been NotReady for EvictionTimeout.
func (c *Controller) reconcileNode(ctx context.Context, name string) error {
	n, ok := c.nodes.Get(name)
	now := c.cfg.Now()
	c.mu.Lock()
	if !ok {
		delete(c.heartbeats, name)
		c.mu.Unlock()
		return nil
	}
	hb, seen := c.heartbeats[name]
	if !seen || !hb.value.Equal(n.LastHeartbeat) {
		hb = observedHeartbeat{value: n.LastHeartbeat, observed: now}
		c.heartbeats[name] = hb
	}
	c.mu.Unlock()

	stale := now.Sub(hb.observed)
	if n.Status == schemas.NodeReady && stale > c.cfg.NodeGrace {
		updated, err := c.nodeWrites.UpdateStatus(ctx, name, func(cur *schemas.Node) error {
			// The kubelet may have heartbeated since we looked.
			if !cur.LastHeartbeat.Equal(hb.value) || cur.Status != schemas.NodeReady {
				return bus.ErrNoChange
			}
			cur.Status = schemas.NodeNotReady
			cur.Reason = fmt.Sprintf("no heartbeat for %s", stale.Round(time.Second))
			return nil
		})
		if err != nil && !errors.Is(err, bus.ErrNotFound) {
			return fmt.Errorf("mark node %s NotReady: %w", name, err)
		}
		if updated != nil && updated.Status == schemas.NodeNotReady {
			c.nodes.Observe(updated)
			c.log.Warn("node NotReady", "node", name, "reason", updated.Reason)
			c.publish(bus.SubjNodeNotReady, schemas.Event{Type: "notready", Kind: schemas.KindNode, Name: name, Node: name, Reason: "NodeNotReady", Message: updated.Reason})
			c.conn.Emit(schemas.ObjectEvent{Type: schemas.EventWarning, Reason: "NodeNotReady", Kind: schemas.KindNode, Name: name, Node: name,
				Component: "controller", Message: "Node " + name + " status is now: NodeNotReady (" + updated.Reason + ")"})
		}
		return nil
	}
	if n.Status == schemas.NodeNotReady && stale > c.cfg.NodeGrace+c.cfg.EvictionTimeout {
		return c.evictPods(ctx, name)
	}
	return nil
}

func (c *Controller) evictPods(ctx context.Context, node string) error {
	var errs []error
	for _, p := range c.pods.ByIndex(bus.PodsByNode, node) {
		if p.DeletionTimestamp != nil {
			// No kubelet will finish it: force-delete, as Kubernetes'
			// pod GC does for pods of lost nodes. If the node returns,
			// its kubelet stops the container of the vanished pod.
			errs = append(errs, c.deletePod(ctx, p, "terminating on lost node"))
			continue
		}
		if p.Status.Terminal() {
			continue
		}
		updated, err := c.podWrites.UpdateStatus(ctx, p.Name, func(cur *schemas.Pod) error {
			if cur.NodeName != node || cur.Status.Terminal() || cur.UID != p.UID {
				return bus.ErrNoChange
			}
			now := c.cfg.Now().UTC()
			cur.Status = schemas.PodFailed
			cur.Reason = "NodeLost"
			cur.Message = fmt.Sprintf("node %s stopped responding", node)
			cur.FinishedAt = &now
			return nil
		})
		if errors.Is(err, bus.ErrNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("evict pod %s from %s: %w", p.Name, node, err))
			continue
		}
		if updated.Status == schemas.PodFailed && updated.Reason == "NodeLost" {
			c.pods.Observe(updated)
			c.log.Warn("evicted pod from lost node", "pod", p.Name, "node", node)
			c.publish(bus.SubjPodFailed, schemas.Event{Type: "failed", Kind: schemas.KindPod, Name: p.Name, Node: node, Reason: "NodeLost"})
			c.conn.Emit(schemas.ObjectEvent{Type: schemas.EventWarning, Reason: "Evicted", Kind: schemas.KindPod, Name: p.Name, Node: node,
				Component: "controller", Message: "NodeLost: " + updated.Message})
		}
	}
	return errors.Join(errs...)
}
