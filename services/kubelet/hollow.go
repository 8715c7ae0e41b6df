package kubelet

import (
	"context"
	"fmt"
	"sync"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/runtime/fake"
	"github.com/miniku/miniku/schemas"
)

// Hollow node defaults: a big machine, Kubernetes' pod limit.
const (
	HollowCPU        = "32"
	HollowMemory     = "128Gi"
	HollowNamePrefix = "hollow-"
)

// HollowConfig describes a group of hollow nodes.
type HollowConfig struct {
	Count      int
	NamePrefix string // nodes are <prefix>1..<prefix>Count
	// Base is every hollow kubelet's config; NodeName is set per node and
	// empty Node capacity fields take the hollow defaults.
	Base Config
	// Pods, when set, is a pod cache the caller runs and shares with other
	// components of the process (miniku up --hollow-nodes); nil: the group
	// runs its own.
	Pods *bus.Informer[schemas.Pod, *schemas.Pod]
}

// Hollow runs many kubelets in one process, each with the real kubelet
// code and its own fake runtime (containers "start" at once), to simulate
// big clusters on one machine.
//
// They share one pod informer: one informer per kubelet would each
// subscribe and list apart. The shared one dispatches each
// change to the kubelet of the pod's node, and of its previous node when it
// moved or was deleted.
type Hollow struct {
	pods       *bus.Informer[schemas.Pod, *schemas.Pod]
	sharedPods bool
	kubelets   map[string]*Kubelet
}

// NewHollow builds cfg.Count hollow kubelets on conn.
func NewHollow(cfg HollowConfig, conn *bus.Conn) (*Hollow, error) {
	if cfg.Count < 1 {
		return nil, fmt.Errorf("hollow nodes: count %d must be at least 1", cfg.Count)
	}
	if cfg.NamePrefix == "" {
		cfg.NamePrefix = HollowNamePrefix
	}
	base := cfg.Base
	if base.Node.CPU == "" {
		base.Node.CPU = HollowCPU
	}
	if base.Node.Memory == "" {
		base.Node.Memory = HollowMemory
	}
	if base.Workers <= 0 {
		base.Workers = 2 // the fake runtime never blocks
	}
	h := &Hollow{kubelets: make(map[string]*Kubelet, cfg.Count)}
	names := make([]string, 0, cfg.Count)
	for i := 1; i <= cfg.Count; i++ {
		c := base
		c.NodeName = fmt.Sprintf("%s%d", cfg.NamePrefix, i)
		k, err := New(c, conn, fake.New(), fake.Images{})
		if err != nil {
			return nil, fmt.Errorf("hollow node %s: %w", c.NodeName, err)
		}
		h.kubelets[c.NodeName] = k
		names = append(names, c.NodeName)
	}
	if cfg.Pods != nil {
		h.pods, h.sharedPods = cfg.Pods, true
	} else {
		// The group's nodes' pods, as a kubelet gets its own (podsOf).
		k := h.kubelets[names[0]]
		h.pods = podsOf(conn, names, k.cfg.Resync, k.cfg.Logger.With("component", "hollow"))
		h.pods.AddEventHandler(h.handler())
	}
	for _, k := range h.kubelets {
		k.pods, k.sharedPods = h.pods, true
	}
	return h, nil
}

// Nodes returns the hollow nodes' names.
func (h *Hollow) Nodes() []string {
	out := make([]string, 0, len(h.kubelets))
	for n := range h.kubelets {
		out = append(out, n)
	}
	return out
}

// handler dispatches a pod's change to its node's kubelet, and to its
// previous node's when it moved or was deleted.
func (h *Hollow) handler() bus.Handler[*schemas.Pod] {
	return bus.HandlerFuncs[*schemas.Pod]{
		Add: func(p *schemas.Pod) { h.dispatch(p.Name, p.NodeName) },
		Update: func(old, p *schemas.Pod) {
			h.dispatch(p.Name, p.NodeName)
			if old.NodeName != p.NodeName {
				h.dispatch(p.Name, old.NodeName)
			}
		},
		Delete: func(old *schemas.Pod) { h.dispatch(old.Name, old.NodeName) },
	}
}

func (h *Hollow) dispatch(pod, node string) {
	if k := h.kubelets[node]; k != nil {
		k.q.Add(pod)
	}
}

// Run runs the group's pod informer (or joins the shared one) and every
// kubelet until ctx ends.
func (h *Hollow) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	if h.sharedPods {
		// Join the running cache: every pod bound to these nodes is
		// dispatched once it holds every write made before now.
		remove, err := h.pods.JoinEventHandler(ctx, h.handler())
		if err != nil {
			return nil // ctx ended
		}
		defer remove()
	} else {
		wg.Add(1)
		go func() { defer wg.Done(); _ = h.pods.Run(ctx) }()
	}
	errs := make(chan error, len(h.kubelets))
	for _, k := range h.kubelets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := k.Run(ctx); err != nil {
				errs <- fmt.Errorf("hollow node %s: %w", k.cfg.NodeName, err)
				cancel()
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}
