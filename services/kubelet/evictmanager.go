package kubelet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	ctr "github.com/miniku/miniku/runtime"
	"github.com/miniku/miniku/schemas"
)

// usageReader is implemented by runtimes that can measure their containers;
// the eviction manager runs only on those (not on hollow nodes).
type usageReader interface {
	Usage(id string) (ctr.Usage, error)
	ImageRootfs(id string) (string, error)
}

var _ usageReader = (*ctr.Runtime)(nil)

// ImageCollector frees disk by removing images, least recently used first,
// skipping those whose root filesystem is in inUse. It returns the bytes
// freed.
type ImageCollector interface {
	CollectImages(ctx context.Context, bytes int64, inUse map[string]bool) (int64, error)
}

// evictionManager measures the node every interval and acts on
// decideEviction: image GC, pod evictions, node conditions.
type evictionManager struct {
	k     *Kubelet
	usage usageReader
	gc    ImageCollector // nil: none
	state EvictionState
	// conditions are the last decided ones, put on the node by every
	// heartbeat.
	conditions atomic.Pointer[[]schemas.NodeCondition]
}

func (k *Kubelet) newEvictionManager() *evictionManager {
	u, ok := k.rt.(usageReader)
	if !ok {
		return nil
	}
	m := &evictionManager{k: k, usage: u, gc: k.cfg.ImageGC}
	if m.gc == nil {
		m.gc, _ = k.images.(ImageCollector)
	}
	return m
}

func (m *evictionManager) run(ctx context.Context) {
	t := time.NewTicker(m.k.eviction.Interval)
	defer t.Stop()
	for {
		if err := m.synchronize(ctx); err != nil && ctx.Err() == nil {
			m.k.log.Warn("eviction manager", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// running is one pod with a running container on this node.
type running struct {
	pod *schemas.Pod
	c   ctr.Container
}

// synchronize is one measurement and its consequences.
func (m *evictionManager) synchronize(ctx context.Context) error {
	k := m.k
	list, err := k.rt.List()
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	inUse := map[string]bool{}
	byName := map[string]running{}
	var stats []PodStats
	var podMemory int64
	for _, c := range list {
		u, err := m.usage.Usage(c.ID)
		if err != nil {
			if !errors.Is(err, ctr.ErrNotFound) {
				k.log.Debug("container usage", "container", c.ID, "err", err)
			}
			continue
		}
		if u.Rootfs != "" {
			inUse[u.Rootfs] = true // exited ones too: they may be restarted
		}
		if c.Status != ctr.StatusRunning {
			continue
		}
		pod, ok := k.pods.Get(c.Labels[labelPod])
		if !ok || pod.UID != c.Labels[labelPodUID] || pod.NodeName != k.cfg.NodeName ||
			pod.Status.Terminal() || pod.DeletionTimestamp != nil {
			continue
		}
		podMemory += u.MemoryBytes
		byName[pod.Name] = running{pod: pod, c: c}
		stats = append(stats, PodStats{
			Name: pod.Name, QoS: PodQoS(&pod.PodSpec),
			MemoryUsage: u.MemoryBytes, MemoryRequest: pod.Resources.MemoryBytes(),
			DiskUsage: u.DiskBytes, DiskLimit: pod.Resources.EphemeralStorageBytes(),
		})
	}
	node := m.nodeStats(podMemory)
	now := time.Now()
	d := decideEviction(node, stats, k.eviction, m.state, false, now)
	if d.ImageGCBytes > 0 && m.gc != nil {
		freed, err := m.gc.CollectImages(ctx, d.ImageGCBytes, inUse)
		if err != nil {
			k.log.Warn("image garbage collection", "err", err)
		}
		k.log.Info("image garbage collection", "wanted", d.ImageGCBytes, "freed", freed)
		node = m.nodeStats(podMemory)
	}
	if d.ImageGCBytes > 0 {
		// Evict only what reclaiming node-level resources did not fix.
		d = decideEviction(node, stats, k.eviction, m.state, true, now)
	}
	m.state = d.State
	m.setConditions(ctx, d.Conditions)
	for _, e := range d.Evict {
		r := byName[e.Pod]
		k.log.Debug("eviction decision", "pod", e.Pod, "memoryAvailable", node.MemoryAvailable, "podMemory", podMemory,
			"fsAvailable", node.FSAvailable, "fsCapacity", node.FSCapacity)
		if err := m.evict(ctx, r, e); err != nil {
			return err
		}
	}
	return nil
}

// evict fails the pod as Kubernetes does (phase Failed, reason Evicted) and
// stops its container at once; its replicaset replaces it.
func (m *evictionManager) evict(ctx context.Context, r running, e Eviction) error {
	k := m.k
	k.log.Warn("evicting pod", "pod", r.pod.Name, "resource", e.Resource, "message", e.Message)
	err := k.report(ctx, r.pod, nil, func(p *schemas.Pod) {
		now := time.Now().UTC()
		p.Status = schemas.PodFailed
		p.Reason = "Evicted"
		p.Message = e.Message
		p.FinishedAt = &now
	})
	if err != nil {
		return fmt.Errorf("evict pod %s: %w", r.pod.Name, err)
	}
	k.emit([]schemas.ObjectEvent{podEvent(r.pod, k.cfg.NodeName, schemas.EventWarning, "Evicted", e.Message)})
	// The node is short now: a hard eviction does not wait out the pod's
	// grace period (30 s by default, a pod ignoring SIGTERM would hold its
	// memory that long while the next measurement already counts it as
	// freed). The stop requeues the pod when done.
	k.stopAsync(ctx, r.pod, r.c, evictionGracePeriod, "evicted: the node is low on "+e.Resource)
	return nil
}

// evictionGracePeriod is how long an evicted pod's container gets between
// SIGTERM and SIGKILL: Kubernetes' for hard eviction thresholds
// (immediateEvictionGracePeriodSeconds).
const evictionGracePeriod = time.Second

// setConditions records the conditions for the heartbeat and, when one
// changed, writes the node at once and says so in a node event.
func (m *evictionManager) setConditions(ctx context.Context, conds []schemas.NodeCondition) {
	old := m.conditions.Swap(&conds)
	var evs []schemas.ObjectEvent
	for _, c := range conds {
		var was string
		if old != nil {
			for _, o := range *old {
				if o.Type == c.Type {
					was = o.Status
				}
			}
		}
		if was == c.Status || (was == "" && c.Status == "False") {
			continue
		}
		reason := "NodeHas" + c.Type
		typ := schemas.EventWarning
		if c.Status == "False" {
			reason, typ = "NodeHasNo"+c.Type, schemas.EventNormal
			if c.Type == schemas.NodeMemoryPressure {
				reason = "NodeHasSufficientMemory"
			}
		}
		evs = append(evs, schemas.ObjectEvent{Time: time.Now().UTC(), Type: typ, Reason: reason, Kind: schemas.KindNode,
			Name: m.k.cfg.NodeName, Node: m.k.cfg.NodeName, Component: "kubelet", Message: c.Message})
	}
	if old == nil || len(evs) > 0 {
		if err := m.k.heartbeat(ctx); err != nil && ctx.Err() == nil {
			m.k.log.Warn("write node conditions", "err", err)
		}
	}
	if len(evs) > 0 {
		m.k.conn.EmitAll(evs)
	}
}

// nodeStats measures the data dir's filesystem and the memory left: the
// node's memory capacity less what its pods use, never more than the host
// has available.
func (m *evictionManager) nodeStats(podMemory int64) NodeStats {
	var s NodeStats
	if dir := m.k.cfg.DataDir; dir != "" {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err == nil {
			s.FSCapacity = int64(st.Blocks) * st.Bsize
			s.FSAvailable = int64(st.Bavail) * st.Bsize
		} else {
			m.k.log.Warn("statfs data dir", "dir", dir, "err", err)
		}
	}
	if avail, err := memAvailable(); err == nil {
		s.MemoryAvailable, s.MemoryKnown = avail, true
		if capacity := m.k.capacity.MemoryBytes(); capacity > 0 {
			s.MemoryAvailable = min(avail, capacity-podMemory)
		}
	}
	return s
}

// memAvailable reads MemAvailable from /proc/meminfo.
func memAvailable() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/meminfo MemAvailable: %w", err)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("/proc/meminfo has no MemAvailable")
}

// nodeConditions are the eviction manager's latest, for the heartbeat.
func (k *Kubelet) nodeConditions() []schemas.NodeCondition {
	if k.evictions == nil {
		return nil
	}
	if c := k.evictions.conditions.Load(); c != nil {
		return *c
	}
	return nil
}

// ImagesInUse returns the root filesystems of this node's containers, so a
// collector shared by several kubelets (miniku up) spares all of theirs.
func (k *Kubelet) ImagesInUse() (map[string]bool, error) {
	u, ok := k.rt.(usageReader)
	if !ok {
		return nil, nil
	}
	list, err := k.rt.List()
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := map[string]bool{}
	for _, c := range list {
		if r, err := u.ImageRootfs(c.ID); err == nil && r != "" {
			out[r] = true
		}
	}
	return out, nil
}
