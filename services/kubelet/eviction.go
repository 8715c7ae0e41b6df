package kubelet

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/miniku/miniku/schemas"
)

// QoSClass is a pod's Kubernetes quality-of-service class, which orders
// evictions. MiniKu's requests equal its limits, so a pod with both cpu and
// memory set is Guaranteed, one with either is Burstable, none BestEffort.
type QoSClass int

const (
	BestEffort QoSClass = iota
	Burstable
	Guaranteed
)

func (q QoSClass) String() string { return [...]string{"BestEffort", "Burstable", "Guaranteed"}[q] }

// PodQoS classifies spec.
func PodQoS(spec *schemas.PodSpec) QoSClass {
	cpu, mem := spec.Resources.CPU != "", spec.Resources.Memory != ""
	switch {
	case cpu && mem:
		return Guaranteed
	case cpu || mem:
		return Burstable
	default:
		return BestEffort
	}
}

// Eviction thresholds and image GC levels, as the kubelet's flags have them.
type EvictionConfig struct {
	// MemoryAvailable: memory.available below this many bytes is
	// MemoryPressure (Kubernetes' hard default 100Mi); 0 disables.
	MemoryAvailable int64
	// NodefsAvailablePercent: free space of the data dir's filesystem
	// below this percentage is DiskPressure (default 10); 0 disables.
	NodefsAvailablePercent float64
	// ImageGCHigh/LowPercent: disk use at or above High collects unused
	// images down to Low (Kubernetes' 85 and 80); High 100 disables.
	ImageGCHighPercent, ImageGCLowPercent float64
	// PressureTransition keeps a condition True this long after pressure
	// was last seen, so it does not flap (Kubernetes' 5m).
	PressureTransition time.Duration
	// Interval is how often the manager measures (Kubernetes' 10 s).
	Interval time.Duration
}

// Defaults of EvictionConfig, Kubernetes' own.
const (
	DefaultEvictionMemoryAvailable   = 100 << 20
	DefaultEvictionNodefsPercent     = 10
	DefaultImageGCHighPercent        = 85
	DefaultImageGCLowPercent         = 80
	DefaultPressureTransition        = 5 * time.Minute
	DefaultEvictionMonitorInterval   = 10 * time.Second
	evictionResourceMemory           = "memory"
	evictionResourceEphemeralStorage = "ephemeral-storage"
)

// DefaultEvictionConfig returns Kubernetes' defaults.
func DefaultEvictionConfig() EvictionConfig {
	return EvictionConfig{
		MemoryAvailable:        DefaultEvictionMemoryAvailable,
		NodefsAvailablePercent: DefaultEvictionNodefsPercent,
		ImageGCHighPercent:     DefaultImageGCHighPercent,
		ImageGCLowPercent:      DefaultImageGCLowPercent,
		PressureTransition:     DefaultPressureTransition,
		Interval:               DefaultEvictionMonitorInterval,
	}
}

// withDefaults resolves a nil config to Kubernetes' defaults and zero
// periods to theirs.
func (c *EvictionConfig) withDefaults() EvictionConfig {
	if c == nil {
		return DefaultEvictionConfig()
	}
	out := *c
	if out.Interval <= 0 {
		out.Interval = DefaultEvictionMonitorInterval
	}
	if out.PressureTransition <= 0 {
		out.PressureTransition = DefaultPressureTransition
	}
	return out
}

// NodeStats is one measurement of the node.
type NodeStats struct {
	// MemoryAvailable is the node's memory capacity less what its pods
	// use, never more than the host has free; MemoryKnown is false when it
	// could not be measured.
	MemoryAvailable int64
	MemoryKnown     bool
	// FSCapacity and FSAvailable describe the filesystem of the data dir
	// (images, containers and the JetStream store share it).
	FSCapacity, FSAvailable int64
}

// PodStats is one running pod as the eviction manager sees it.
type PodStats struct {
	Name string
	QoS  QoSClass
	// MemoryUsage against MemoryRequest (0 for BestEffort).
	MemoryUsage, MemoryRequest int64
	// DiskUsage (writable layer and logs) against DiskLimit, the pod's
	// ephemeral-storage (0: none).
	DiskUsage, DiskLimit int64
}

// Eviction is one pod to fail and stop.
type Eviction struct {
	Pod      string
	Resource string // "memory" or "ephemeral-storage"
	Message  string // the pod's status message, as Kubernetes words it
}

// EvictionState is what decide remembers between measurements.
type EvictionState struct {
	// LastPressure is when each condition type last saw its threshold
	// crossed; Since when its status last changed.
	LastPressure map[string]time.Time
	Since        map[string]time.Time
}

// EvictionDecision is what to do after one measurement.
type EvictionDecision struct {
	// ImageGCBytes asks to free that much by removing unused images first.
	ImageGCBytes int64
	Evict        []Eviction
	Conditions   []schemas.NodeCondition
	State        EvictionState
}

// decideEviction is the eviction manager's pure decision: which pods to evict
// and what the node's pressure conditions are. Pods over their own
// ephemeral-storage limit are all evicted at once, whatever the node's state;
// under node pressure one pod is evicted per measurement (the next one sees
// what that freed), ranked as Kubernetes does: pods using more than they
// requested first, BestEffort before Burstable before Guaranteed, then by how
// far over their request. Disk pressure first asks for image GC and evicts
// only if reclaimed is set (the GC ran and pressure remained).
func decideEviction(node NodeStats, pods []PodStats, cfg EvictionConfig, st EvictionState, reclaimed bool, now time.Time) EvictionDecision {
	d := EvictionDecision{State: EvictionState{LastPressure: map[string]time.Time{}, Since: map[string]time.Time{}}}
	for k, v := range st.LastPressure {
		d.State.LastPressure[k] = v
	}
	for k, v := range st.Since {
		d.State.Since[k] = v
	}

	evicted := map[string]bool{}
	for _, p := range pods {
		if p.DiskLimit > 0 && p.DiskUsage > p.DiskLimit {
			evicted[p.Name] = true
			d.Evict = append(d.Evict, Eviction{Pod: p.Name, Resource: evictionResourceEphemeralStorage,
				Message: fmt.Sprintf("Pod ephemeral local storage usage exceeds the total limit of containers %s.", schemas.FormatMemory(p.DiskLimit))})
		}
	}

	memPressure := cfg.MemoryAvailable > 0 && node.MemoryKnown && node.MemoryAvailable < cfg.MemoryAvailable
	diskPressure := false
	if cfg.NodefsAvailablePercent > 0 && node.FSCapacity > 0 {
		diskPressure = float64(node.FSAvailable)*100 < cfg.NodefsAvailablePercent*float64(node.FSCapacity)
	}
	if cfg.ImageGCHighPercent > 0 && cfg.ImageGCHighPercent < 100 && node.FSCapacity > 0 && !reclaimed {
		used := node.FSCapacity - node.FSAvailable
		if float64(used)*100 >= cfg.ImageGCHighPercent*float64(node.FSCapacity) {
			target := int64(cfg.ImageGCLowPercent * float64(node.FSCapacity) / 100)
			d.ImageGCBytes = max(used-target, 0)
		}
	}

	// Only one pressure eviction per measurement; memory is the more
	// urgent (the OOM killer does not rank by QoS).
	var rest []PodStats
	for _, p := range pods {
		if !evicted[p.Name] {
			rest = append(rest, p)
		}
	}
	switch {
	case memPressure:
		if p, ok := rank(rest, func(p PodStats) (int64, int64) { return p.MemoryUsage, p.MemoryRequest }); ok {
			d.Evict = append(d.Evict, Eviction{Pod: p.Name, Resource: evictionResourceMemory,
				Message: "The node was low on resource: memory."})
		}
	case diskPressure && (reclaimed || d.ImageGCBytes == 0):
		if p, ok := rank(rest, func(p PodStats) (int64, int64) { return p.DiskUsage, p.DiskLimit }); ok {
			d.Evict = append(d.Evict, Eviction{Pod: p.Name, Resource: evictionResourceEphemeralStorage,
				Message: "The node was low on resource: ephemeral-storage."})
		}
	}

	d.Conditions = []schemas.NodeCondition{
		d.condition(schemas.NodeMemoryPressure, memPressure, cfg.PressureTransition, now,
			"KubeletHasInsufficientMemory", fmt.Sprintf("memory.available %s < %s", schemas.FormatMemory(node.MemoryAvailable), schemas.FormatMemory(cfg.MemoryAvailable)),
			"KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
		d.condition(schemas.NodeDiskPressure, diskPressure, cfg.PressureTransition, now,
			"KubeletHasDiskPressure", fmt.Sprintf("nodefs.available %s of %s < %g%%", schemas.FormatMemory(node.FSAvailable), schemas.FormatMemory(node.FSCapacity), cfg.NodefsAvailablePercent),
			"KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
	}
	return d
}

// condition reports t True while pressure lasts and for transition after it
// was last seen, so a node that hovers at the threshold does not flap.
func (d *EvictionDecision) condition(t string, pressure bool, transition time.Duration, now time.Time,
	trueReason, trueMsg, falseReason, falseMsg string) schemas.NodeCondition {
	if pressure {
		d.State.LastPressure[t] = now
	}
	last, seen := d.State.LastPressure[t]
	on := seen && now.Sub(last) < transition || pressure
	c := schemas.NodeCondition{Type: t, Status: "False", Reason: falseReason, Message: falseMsg}
	if on {
		c.Status, c.Reason, c.Message = "True", trueReason, trueMsg
	}
	key := t + "=" + c.Status
	other := t + "=" + map[bool]string{true: "False", false: "True"}[on]
	if _, ok := d.State.Since[key]; !ok {
		d.State.Since[key] = now
	}
	delete(d.State.Since, other)
	c.LastTransitionTime = d.State.Since[key]
	return c
}

// rank returns the pod to evict first under pressure on one resource.
func rank(pods []PodStats, use func(PodStats) (usage, request int64)) (PodStats, bool) {
	if len(pods) == 0 {
		return PodStats{}, false
	}
	over := func(p PodStats) int64 { u, r := use(p); return u - r }
	best := slices.MaxFunc(pods, func(a, b PodStats) int {
		ao, bo := over(a) > 0, over(b) > 0
		if ao != bo {
			if ao {
				return 1
			}
			return -1
		}
		if a.QoS != b.QoS {
			return cmp.Compare(b.QoS, a.QoS) // lower class ranks higher
		}
		if c := cmp.Compare(over(a), over(b)); c != 0 {
			return c
		}
		return cmp.Compare(b.Name, a.Name) // stable: first name wins
	})
	return best, true
}
