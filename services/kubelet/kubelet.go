// Package kubelet runs the pods bound to one node as containers and reports
// their status.
//
// It heartbeats the node, follows the pods bucket, and for each pod compares
// what KV says with what the runtime has, acting on the difference. On start
// it rediscovers the containers an earlier kubelet left running and adopts
// them (same containerId, no restart) instead of starting duplicates;
// containers whose pod is gone are stopped and removed.
package kubelet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/metrics"
	"github.com/miniku/miniku/bus/registry"
	ctr "github.com/miniku/miniku/runtime"
	"github.com/miniku/miniku/runtime/image"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/queue"
)

// Runtime is what the kubelet needs from a container runtime.
type Runtime interface {
	Start(ctx context.Context, spec ctr.Spec) (ctr.Container, error)
	Get(id string) (ctr.Container, error)
	List() ([]ctr.Container, error)
	Wait(ctx context.Context, id string) (ctr.Container, error)
	Stop(ctx context.Context, id string, grace time.Duration) error
	Remove(id string) error
}

// ImagePuller resolves an image reference to an unpacked root filesystem.
type ImagePuller interface {
	Pull(ctx context.Context, ref string) (image.Image, error)
}

var (
	_ Runtime     = (*ctr.Runtime)(nil)
	_ ImagePuller = (*image.Store)(nil)
)

// Labels the kubelet puts on containers so a restarted kubelet knows what
// each one is for.
const (
	labelPod    = "miniku.pod"
	labelPodUID = "miniku.pod-uid"
	labelGrace  = "miniku.grace-seconds"
)

// Config tunes a kubelet.
type Config struct {
	NodeName          string
	HeartbeatInterval time.Duration
	Resync            time.Duration
	Workers           int
	Logger            *slog.Logger
	// RestartBackoff is the crash-loop backoff; zero fields take
	// Kubernetes' defaults (10 s doubling to 5 min, reset after 10 min).
	RestartBackoff Backoff
	// ImagePullBackoff is the wait after a failed image pull; zero fields
	// take Kubernetes' defaults (10 s doubling to 5 min, backoff.go).
	ImagePullBackoff Backoff
	Node             NodeInfo // capacity and labels (node.go)
	// DataDir is measured for disk pressure (its filesystem holds images,
	// containers and the store); empty turns disk checks off.
	DataDir string
	// Eviction sets the eviction manager's thresholds; nil takes
	// Kubernetes' defaults (eviction.go).
	Eviction *EvictionConfig
	// ImageGC frees image space under disk pressure; nil uses the image
	// puller if it is an ImageCollector.
	ImageGC ImageCollector
}

// DefaultHeartbeatInterval gives three heartbeats per default node grace.
const DefaultHeartbeatInterval = 5 * time.Second

// Kubelet is one node agent.
type Kubelet struct {
	cfg  Config
	conn *bus.Conn
	// nodes writes this node's object through the Node's rules.
	nodes  nodeWriter
	rt     Runtime
	images ImagePuller
	log    *slog.Logger
	pods   *bus.Informer[schemas.Pod, *schemas.Pod]
	q      *queue.Queue
	// backoff is cfg.RestartBackoff with defaults filled in.
	backoff Backoff
	// pullBackoff is cfg.ImagePullBackoff with defaults filled in; pulls
	// the state of each pod whose last pull failed.
	pullBackoff Backoff
	pulls       pullBackoffs
	// capacity is cfg.Node resolved once (host defaults filled in).
	capacity schemas.ResourceList
	// eviction is cfg.Eviction with defaults; evictions is nil on runtimes
	// that cannot measure containers.
	eviction  EvictionConfig
	evictions *evictionManager

	mu         sync.Mutex
	containers map[string]ctr.Container // by container ID
	waiting    map[string]bool          // container IDs with a waiter goroutine
	stopping   map[string]*stopOp       // container IDs being stopped
	wg         sync.WaitGroup
	// sharedPods: pods is a Hollow group's informer, run by the group.
	sharedPods bool
	// lastNode is the node object as this kubelet last wrote it: the next
	// heartbeat starts from it, one write instead of a read and a write.
	lastNode atomic.Pointer[schemas.Node]
}

// nodeWriter is how a kubelet writes its node (bus/registry's Nodes):
// heartbeats as status updates, its labels as an update.
type nodeWriter interface {
	Create(ctx context.Context, n *schemas.Node) error
	UpdateFrom(ctx context.Context, cached *schemas.Node, fn func(*schemas.Node) error) (*schemas.Node, error)
	UpdateStatus(ctx context.Context, name string, fn func(*schemas.Node) error) (*schemas.Node, error)
	UpdateStatusFrom(ctx context.Context, cached *schemas.Node, fn func(*schemas.Node) error) (*schemas.Node, error)
}

// New builds a kubelet for cfg.NodeName.
func New(cfg Config, conn *bus.Conn, rt Runtime, images ImagePuller) (*Kubelet, error) {
	if err := schemas.ValidateName("node name", cfg.NodeName, schemas.MaxNameLength); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	capacity, err := cfg.Node.Capacity()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With("component", "kubelet", "node", cfg.NodeName)
	k := &Kubelet{
		capacity:    capacity,
		cfg:         cfg,
		conn:        conn,
		nodes:       registry.For(conn, nil).Nodes,
		rt:          rt,
		images:      images,
		log:         log,
		pods:        podsOf(conn, []string{cfg.NodeName}, cfg.Resync, log),
		q:           queue.New(),
		containers:  map[string]ctr.Container{},
		waiting:     map[string]bool{},
		stopping:    map[string]*stopOp{},
		backoff:     cfg.RestartBackoff.withDefaults(),
		pullBackoff: cfg.ImagePullBackoff.withDefaultsFrom(DefaultImagePullBackoff, DefaultImagePullBackoffMax),
		eviction:    cfg.Eviction.withDefaults(),
	}
	k.evictions = k.newEvictionManager()
	k.pods.AddEventHandler(bus.HandlerFuncs[*schemas.Pod]{
		Add:    k.podChanged,
		Update: func(_, p *schemas.Pod) { k.podChanged(p) },
		// A pod deleted is this node's to clean up if it was bound here
		// or left a container.
		Delete: k.podChanged,
	})
	return k, nil
}

// podsOf is the pod cache of kubelets of nodes: with a node's
// credentials, only the pods bound to them, from the node API (the pods
// bucket is not theirs to read); on a control-plane connection (one
// process, tests), the bucket.
func podsOf(conn *bus.Conn, nodes []string, resync time.Duration, log *slog.Logger) *bus.Informer[schemas.Pod, *schemas.Pod] {
	if conn.IsNodeUser() || conn.Pods == nil {
		return bus.NewNodePodsInformer(conn, nodes, resync, log)
	}
	return bus.NewInformer(conn, conn.Pods, resync, log)
}

// podChanged queues a pod of this node, or one it has a container of.
func (k *Kubelet) podChanged(p *schemas.Pod) {
	if p.NodeName == k.cfg.NodeName || k.hasContainer(p.Name) {
		k.q.Add(p.Name)
	}
}

// Run serves the node until ctx ends. Containers keep running after it
// returns: a kubelet restart must not restart workloads.
func (k *Kubelet) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer k.wg.Wait()

	if err := k.rediscover(ctx); err != nil {
		return err
	}
	if err := k.heartbeat(ctx); err != nil {
		k.log.Warn("first heartbeat failed, will retry", "err", err)
	}
	if !k.sharedPods {
		k.wg.Add(1)
		go func() { defer k.wg.Done(); _ = k.pods.Run(ctx) }()
	}
	k.wg.Add(1)
	go func() { defer k.wg.Done(); k.heartbeatLoop(ctx) }()
	if k.evictions != nil {
		k.wg.Add(1)
		go func() { defer k.wg.Done(); k.evictions.run(ctx) }()
	}
	defer k.serveLogs(ctx)()
	defer k.serveExec(ctx)()

	sub, err := k.conn.Subscribe(bus.NodeSubject(bus.SubjPodAssigned, k.cfg.NodeName), func(_ string, ev schemas.Event) {
		k.q.Add(ev.Name)
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()

	if err := k.pods.WaitSynced(ctx); err != nil {
		return nil
	}
	k.log.Info("kubelet started")
	k.q.Run(ctx, k.cfg.Workers, k.syncPod)
	return nil
}

// rediscover loads the containers an earlier kubelet left behind.
// interruptedSweeper is implemented by runtimes that can find containers
// whose start was cut short before it was recorded (a kubelet killed at
// that moment), which List cannot see.
type interruptedSweeper interface {
	SweepInterrupted() ([]string, error)
}

func (k *Kubelet) rediscover(ctx context.Context) error {
	if sw, ok := k.rt.(interruptedSweeper); ok {
		// Before anything starts here: a start in progress would look alike.
		if ids, err := sw.SweepInterrupted(); err != nil {
			k.log.Warn("sweep interrupted container starts", "err", err)
		} else if len(ids) > 0 {
			k.log.Warn("stopped containers of interrupted starts", "containers", ids)
		}
	}
	list, err := k.rt.List()
	if err != nil {
		return fmt.Errorf("rediscover containers on %s: %w", k.cfg.NodeName, err)
	}
	for _, c := range list {
		k.track(ctx, c)
		k.log.Info("rediscovered container", "container", c.ID, "pod", c.Labels[labelPod], "status", c.Status)
		k.q.Add(c.Labels[labelPod])
	}
	return nil
}

// track records c and, if it runs, starts a goroutine that requeues its pod
// when it exits.
func (k *Kubelet) track(ctx context.Context, c ctr.Container) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.containers[c.ID] = c
	if c.Status != ctr.StatusRunning || k.waiting[c.ID] {
		return
	}
	k.waiting[c.ID] = true
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		_, err := k.rt.Wait(ctx, c.ID)
		k.mu.Lock()
		delete(k.waiting, c.ID)
		k.mu.Unlock()
		if err != nil && ctx.Err() == nil && !errors.Is(err, ctr.ErrNotFound) {
			k.log.Warn("wait for container", "container", c.ID, "err", err)
		}
		k.q.Add(c.Labels[labelPod])
	}()
}

func (k *Kubelet) untrack(id string) {
	k.mu.Lock()
	delete(k.containers, id)
	k.mu.Unlock()
}

func (k *Kubelet) hasContainer(pod string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, c := range k.containers {
		if c.Labels[labelPod] == pod {
			return true
		}
	}
	return false
}

// containersOf returns the pod's containers with their live status.
func (k *Kubelet) containersOf(pod string) []ctr.Container {
	k.mu.Lock()
	var ids []string
	for id, c := range k.containers {
		if c.Labels[labelPod] == pod {
			ids = append(ids, id)
		}
	}
	k.mu.Unlock()
	var out []ctr.Container
	for _, id := range ids {
		c, err := k.rt.Get(id)
		if err != nil {
			if errors.Is(err, ctr.ErrNotFound) {
				k.untrack(id)
			}
			continue
		}
		k.mu.Lock()
		k.containers[id] = c
		k.mu.Unlock()
		out = append(out, c)
	}
	return out
}

// syncPod is the kubelet's action table for one pod name.
func (k *Kubelet) syncPod(ctx context.Context, name string) error {
	pod, ok := k.pods.Get(name)
	mine := ok && pod.NodeName == k.cfg.NodeName

	var current *ctr.Container
	for _, c := range k.containersOf(name) {
		if !mine || c.Labels[labelPodUID] != pod.UID {
			// The pod was deleted, replaced by a new pod of the same name,
			// or moved: its container must go.
			if err := k.destroy(ctx, c, "pod gone"); err != nil {
				return err
			}
			continue
		}
		if current != nil {
			// Two containers for one pod can only come from a crash
			// between start and status report; keep the newer one.
			old := *current
			if c.CreatedAt.Before(old.CreatedAt) {
				old = c
			} else {
				current = nil
			}
			if err := k.destroy(ctx, old, "duplicate container"); err != nil {
				return err
			}
			if current != nil {
				continue
			}
		}
		cc := c
		current = &cc
	}
	if !mine {
		k.pulls.forget(name)
		return nil
	}
	if pod.DeletionTimestamp != nil {
		return k.syncTerminating(ctx, pod, current)
	}

	switch {
	case pod.Status.Terminal():
		// Failed by someone else (e.g. NodeLost while we were away): a
		// replacement may run elsewhere, so this copy must stop.
		if current != nil && current.Status == ctr.StatusRunning {
			k.stopAsync(ctx, pod, *current, pod.GracePeriod(), "pod is "+string(pod.Status))
		}
		return nil
	case current == nil && pod.Status == schemas.PodPending:
		return k.start(ctx, pod, 0)
	case current == nil && pod.RestartPolicy != schemas.RestartNever:
		return k.restartMissing(ctx, pod)
	case current == nil:
		// Running (or Unknown) but the container is gone, e.g. the host
		// rebooted, and the restart policy is Never: report it Failed so
		// its replicaset replaces it.
		return k.report(ctx, pod, nil, func(p *schemas.Pod) {
			now := time.Now().UTC()
			p.Status = schemas.PodFailed
			p.Reason = "ContainerMissing"
			p.Message = "the container is no longer on the node"
			p.FinishedAt = &now
		})
	case current.Status == ctr.StatusRunning:
		if pod.Status == schemas.PodRunning && pod.ContainerID == current.ID {
			return nil
		}
		c := *current
		return k.report(ctx, pod, &c, func(p *schemas.Pod) { setRunning(p, c) })
	case wantsRestart(pod, *current):
		return k.restartExited(ctx, pod, *current)
	default:
		c := *current
		return k.report(ctx, pod, &c, func(p *schemas.Pod) { setExited(p, c) })
	}
}

func setRunning(p *schemas.Pod, c ctr.Container) {
	if p.ContainerID != "" && p.ContainerID != c.ID {
		p.RestartCount++ // a new container replaced the pod's previous one
	}
	p.Status = schemas.PodRunning
	p.ContainerID = c.ID
	p.Reason, p.Message = "", ""
	started := c.CreatedAt.UTC()
	p.StartedAt = &started
}

func setExited(p *schemas.Pod, c ctr.Container) {
	p.ContainerID = c.ID
	finished := c.FinishedAt.UTC()
	if c.FinishedAt.IsZero() {
		finished = time.Now().UTC()
	}
	p.FinishedAt = &finished
	if !c.ExitKnown {
		p.Status = schemas.PodFailed
		p.ExitCode = nil
		p.Reason = "ExitCodeLost"
		p.Message = "the container exited while no kubelet was running; its exit code is unknown"
		return
	}
	code := c.ExitCode
	p.ExitCode = &code
	if code == 0 {
		p.Status = schemas.PodSucceeded
		p.Reason = "Completed"
		p.Message = ""
		return
	}
	p.Status = schemas.PodFailed
	p.Reason = "Error"
	p.Message = "container exited with code " + strconv.Itoa(code)
	if c.OOMKilled {
		p.Reason = "OOMKilled"
		p.Message = "container exceeded its memory limit and was killed, exit code " + strconv.Itoa(code)
	}
}

// start pulls the image and starts the pod's container, then reports it.
// crashes is how many times in a row the pod's container has crashed
// before (restart backoff state, kept on the container).
func (k *Kubelet) start(ctx context.Context, pod *schemas.Pod, crashes int) error {
	if pod.Status == schemas.PodPending {
		// A resync must not pull before the backoff ends.
		if wait, err := k.pullBackedOff(ctx, pod); wait || err != nil {
			return err
		}
	}
	pullStart := time.Now()
	img, err := k.images.Pull(ctx, pod.Image)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		if pod.Status == schemas.PodPending {
			// Kubernetes keeps the pod Pending and retries with backoff;
			// failing it made its replicaset replace it in a hot loop.
			return k.pullFailed(ctx, pod, err)
		}
		k.log.Warn("image pull failed", "pod", pod.Name, "image", pod.Image, "err", err)
		return k.report(ctx, pod, nil, func(p *schemas.Pod) {
			now := time.Now().UTC()
			p.Status = schemas.PodFailed
			p.Reason = ReasonErrImagePull
			p.Message = pullMessage(err)
			p.FinishedAt = &now
		})
	}
	k.pulls.forget(pod.Name)
	// Pulled, Created and Started go out together, as one message, when
	// the outcome is known.
	evs := []schemas.ObjectEvent{podEvent(pod, k.cfg.NodeName, schemas.EventNormal, "Pulled",
		fmt.Sprintf("Image %q ready in %s", pod.Image, time.Since(pullStart).Round(time.Millisecond)))}
	args := pod.Command
	if args == nil {
		args = append(append([]string{}, img.Config.Entrypoint...), img.Config.Cmd...)
	}
	if len(args) == 0 {
		k.emit(evs)
		return k.report(ctx, pod, nil, func(p *schemas.Pod) {
			p.Status = schemas.PodFailed
			p.Reason = "NoCommand"
			p.Message = fmt.Sprintf("pod has no command and image %s has no entrypoint or cmd", pod.Image)
		})
	}
	spec := ctr.Spec{
		ID:          newContainerID(),
		Rootfs:      img.Rootfs,
		Args:        args,
		Env:         mergeEnv(img.Config.Env, pod.Env), // the pod's win
		WorkDir:     img.Config.WorkingDir,
		Hostname:    pod.Name,
		User:        img.Config.User,
		HostNetwork: pod.HostNetwork,
		Resources: ctr.Resources{
			CPUMilli:    pod.Resources.CPUMilli(),
			MemoryBytes: pod.Resources.MemoryBytes(),
			Pids:        pod.Resources.Pids,
		},
		Labels: map[string]string{
			labelPod:    pod.Name,
			labelPodUID: pod.UID,
			labelGrace:  strconv.FormatInt(int64(pod.GracePeriod()/time.Second), 10),
		},
	}
	spec.Labels[labelCrashes] = strconv.Itoa(crashes)
	c, err := k.rt.Start(ctx, spec)
	metrics.ContainerStart(k.cfg.NodeName, err)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		k.log.Warn("container start failed", "pod", pod.Name, "err", err)
		k.emit(evs)
		return k.report(ctx, pod, nil, func(p *schemas.Pod) {
			now := time.Now().UTC()
			p.Status = schemas.PodFailed
			p.Reason = "StartError"
			p.Message = err.Error()
			p.FinishedAt = &now
		})
	}
	k.track(ctx, c)
	k.log.Info("started container", "pod", pod.Name, "container", c.ID, "pid", c.Pid)
	k.emit(append(evs,
		podEvent(pod, k.cfg.NodeName, schemas.EventNormal, "Created", "Created container "+containerName(pod)),
		podEvent(pod, k.cfg.NodeName, schemas.EventNormal, "Started", "Started container "+containerName(pod))))
	return k.report(ctx, pod, &c, func(p *schemas.Pod) { setRunning(p, c) })
}

func newContainerID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// report writes the pod's status with CAS, re-applying set to the latest
// version, and only while the pod is still the one we run (same UID, still
// bound here). If the pod vanished meanwhile, its container is destroyed.
func (k *Kubelet) report(ctx context.Context, pod *schemas.Pod, c *ctr.Container, set func(*schemas.Pod)) error {
	var stale bool
	change := func(cur *schemas.Pod) error {
		stale = false // fn may run again on a fresh read
		if cur.UID != pod.UID || cur.NodeName != k.cfg.NodeName {
			stale = true
			return bus.ErrNoChange
		}
		if cur.Status.Terminal() {
			return bus.ErrNoChange // terminal is final; never resurrect
		}
		before := cur.Status
		set(cur)
		if cur.Status == before && before == schemas.PodRunning && c != nil && cur.ContainerID == c.ID && pod.ContainerID == c.ID {
			return bus.ErrNoChange
		}
		return nil
	}
	// The cache is almost always current here: one write, no read. The
	// write goes through the node API, which lets this node change only
	// the status of its own pods.
	cached, _ := k.pods.Get(pod.Name)
	updated, err := k.conn.MutatePodStatus(ctx, k.cfg.NodeName, cached, pod.Name, change)
	if errors.Is(err, bus.ErrNotFound) || errors.Is(err, bus.ErrForbidden) {
		stale = true
		err = nil
	}
	if err != nil {
		return fmt.Errorf("report status of pod %s: %w", pod.Name, err)
	}
	if stale {
		if c != nil {
			return k.destroy(ctx, *c, "pod gone")
		}
		return nil
	}
	k.pods.Observe(updated)
	subject := map[schemas.PodPhase]string{
		schemas.PodRunning:   bus.SubjPodRunning,
		schemas.PodSucceeded: bus.SubjPodSucceeded,
		schemas.PodFailed:    bus.SubjPodFailed,
	}[updated.Status]
	if subject != "" && updated.Status != pod.Status {
		k.log.Info("pod "+string(updated.Status), "pod", pod.Name, "container", updated.ContainerID, "reason", updated.Reason)
		ev := schemas.Event{Type: string(updated.Status), Kind: schemas.KindPod, Name: pod.Name, Node: k.cfg.NodeName,
			Revision: updated.ResourceVersion, Reason: updated.Reason, Message: updated.Message}
		if err := k.conn.Publish(subject, ev); err != nil {
			k.log.Warn("publish pod status", "pod", pod.Name, "err", err)
		}
	}
	return nil
}

func (k *Kubelet) stop(ctx context.Context, c ctr.Container, grace time.Duration, why string) error {
	k.log.Info("stopping container", "pod", c.Labels[labelPod], "container", c.ID, "reason", why, "grace", grace)
	if err := k.rt.Stop(ctx, c.ID, grace); err != nil && !errors.Is(err, ctr.ErrNotFound) {
		return fmt.Errorf("stop container %s of pod %s: %w", c.ID, c.Labels[labelPod], err)
	}
	return nil
}

// destroy stops and removes a container that no pod wants.
func (k *Kubelet) destroy(ctx context.Context, c ctr.Container, why string) error {
	grace := schemas.DefaultTerminationGracePeriod
	if s, err := strconv.Atoi(c.Labels[labelGrace]); err == nil {
		grace = time.Duration(s) * time.Second
	}
	if c.Status == ctr.StatusRunning {
		// Removed once stopped: the stop requeues the pod.
		k.stopAsync(ctx, nil, c, grace, why)
		return nil
	}
	if err := k.rt.Remove(c.ID); err != nil && !errors.Is(err, ctr.ErrNotFound) {
		return fmt.Errorf("remove container %s: %w", c.ID, err)
	}
	k.untrack(c.ID)
	k.log.Info("removed container", "pod", c.Labels[labelPod], "container", c.ID, "reason", why)
	return nil
}

// heartbeatLoop renews the node's heartbeat until ctx ends.
func (k *Kubelet) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(k.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := k.heartbeat(ctx); err != nil && ctx.Err() == nil {
				k.log.Warn("heartbeat failed", "err", err)
			}
		}
	}
}

func (k *Kubelet) heartbeat(ctx context.Context) error {
	now := time.Now().UTC()
	hostname, _ := os.Hostname()
	var wasReady bool
	beat := func(n *schemas.Node) error {
		wasReady = n.Status == schemas.NodeReady
		n.LastHeartbeat = now
		n.Status = schemas.NodeReady
		n.Reason = ""
		n.Hostname = hostname
		k.describe(n)
		return nil
	}
	var written *schemas.Node
	var err error
	// The controller marking the node NotReady, a cordon or a relabel moved
	// the revision on: the compare-and-swap fails and the status update
	// re-reads.
	if last := k.lastNode.Load(); last != nil {
		written, err = k.nodes.UpdateStatusFrom(ctx, last, beat)
	} else {
		written, err = k.nodes.UpdateStatus(ctx, k.cfg.NodeName, beat)
	}
	if err == nil && !k.labelled(written) {
		written, err = k.nodes.UpdateFrom(ctx, written, func(n *schemas.Node) error {
			if !k.label(n) {
				return bus.ErrNoChange
			}
			return nil
		})
	}
	k.lastNode.Store(written)
	if errors.Is(err, bus.ErrNotFound) {
		n := &schemas.Node{
			ObjectMeta:    schemas.ObjectMeta{Name: k.cfg.NodeName},
			Status:        schemas.NodeReady,
			LastHeartbeat: now,
			Hostname:      hostname,
		}
		k.describe(n)
		k.label(n)
		err = k.nodes.Create(ctx, n)
		if errors.Is(err, bus.ErrAlreadyExists) {
			return k.heartbeat(ctx)
		}
	}
	if errors.Is(err, bus.ErrMalformed) {
		err = k.replaceMalformedNode(ctx, now, hostname)
	}
	if err != nil {
		return fmt.Errorf("heartbeat node %s: %w", k.cfg.NodeName, err)
	}
	ev := schemas.Event{Type: "heartbeat", Kind: schemas.KindNode, Name: k.cfg.NodeName, Node: k.cfg.NodeName, Time: now}
	_ = k.conn.Publish(bus.NodeSubject(bus.SubjNodeHeartbeat, k.cfg.NodeName), ev)
	if !wasReady {
		k.log.Info("node Ready")
		ev.Type = "ready"
		_ = k.conn.Publish(bus.SubjNodeReady, ev)
	}
	return nil
}
