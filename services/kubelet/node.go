package kubelet

import (
	"fmt"
	goruntime "runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/miniku/miniku/schemas"
)

// DefaultMaxPods is Kubernetes' default --max-pods.
const DefaultMaxPods = 110

// NodeInfo is what the kubelet reports about its node besides liveness:
// the capacity the scheduler may fill and labels for nodeSelector. Zero
// fields default to the host's CPUs and memory and 110 pods.
type NodeInfo struct {
	CPU     string // Kubernetes quantity, e.g. "2" or "1500m"
	Memory  string // e.g. "4Gi"
	MaxPods int
	Labels  map[string]string
}

// Capacity resolves the defaults and checks the quantities.
func (ni NodeInfo) Capacity() (schemas.ResourceList, error) {
	cpu, err := int64(goruntime.NumCPU())*1000, error(nil)
	if ni.CPU != "" {
		if cpu, err = schemas.ParseCPU(ni.CPU); err != nil || cpu < 1 {
			return schemas.ResourceList{}, fmt.Errorf("node cpu %q: must be a positive quantity such as 2 or 1500m", ni.CPU)
		}
	}
	var mem int64
	if ni.Memory != "" {
		if mem, err = schemas.ParseMemory(ni.Memory); err != nil || mem < 1 {
			return schemas.ResourceList{}, fmt.Errorf("node memory %q: must be a positive quantity such as 4Gi", ni.Memory)
		}
	} else {
		var si unix.Sysinfo_t
		if err := unix.Sysinfo(&si); err != nil {
			return schemas.ResourceList{}, fmt.Errorf("read host memory: %w", err)
		}
		mem = int64(si.Totalram) * int64(si.Unit)
	}
	pods := ni.MaxPods
	if pods < 0 {
		return schemas.ResourceList{}, fmt.Errorf("node max pods %d: must not be negative", pods)
	}
	if pods == 0 {
		pods = DefaultMaxPods
	}
	return schemas.ResourceList{CPU: schemas.FormatCPU(cpu), Memory: schemas.FormatMemory(mem), Pods: pods}, nil
}

// Validate checks the capacity and the labels.
func (ni NodeInfo) Validate() error {
	if _, err := ni.Capacity(); err != nil {
		return err
	}
	return schemas.ValidateLabels("labels", ni.Labels)
}

// ParseLabels reads the --labels flag: "k=v,k2=v2".
func ParseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("label %q: want key=value", kv)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if err := schemas.ValidateLabels("labels", out); err != nil {
		return nil, err
	}
	return out, nil
}

// describe writes the node's capacity and labels into n at each heartbeat,
// so a kubelet restarted with new flags updates them. Labels set by others
// are kept; the kubelet's own win.
func (k *Kubelet) describe(n *schemas.Node) {
	if k.capacity != (schemas.ResourceList{}) {
		n.Capacity = k.capacity
	}
	if conds := k.nodeConditions(); conds != nil {
		n.Conditions = conds
	}
}

// labelled says n has the configured labels.
func (k *Kubelet) labelled(n *schemas.Node) bool {
	for key, v := range k.cfg.Node.Labels {
		if cur, ok := n.Labels[key]; !ok || cur != v {
			return false
		}
	}
	return true
}

// label puts the configured labels on n (not status: an update's, as a
// Kubernetes kubelet's registration patches them); it reports whether n
// changed.
func (k *Kubelet) label(n *schemas.Node) bool {
	changed := false
	for key, v := range k.cfg.Node.Labels {
		if cur, ok := n.Labels[key]; ok && cur == v {
			continue
		}
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[key] = v
		changed = true
	}
	return changed
}
