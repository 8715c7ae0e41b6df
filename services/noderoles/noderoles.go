// Package noderoles puts Kubernetes' role label on the nodes a server runs,
// so `kubectl get nodes` (ROLES) and `miniku nodes` tell servers from
// agents, as k3s labels its servers. The server sets the label, not the
// kubelet: Kubernetes' NodeRestriction keeps node-role.kubernetes.io/*
// labels out of a kubelet's own hands.
package noderoles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas"
)

// ControlPlane is the label of a node whose host runs the control plane
// (k3s's and kubeadm's name; the value is k3s's).
const ControlPlane = "node-role.kubernetes.io/control-plane"

// Unlabelled returns the nodes among mine that exist and lack the label:
// the ones to label. Pure: what exists comes from the cache.
func Unlabelled(mine []string, existing []*schemas.Node) []string {
	var out []string
	for _, n := range existing {
		if slices.Contains(mine, n.Name) && n.Labels[ControlPlane] != "true" {
			out = append(out, n.Name)
		}
	}
	return out
}

// Cache is the nodes informer.
type Cache interface {
	WaitSynced(ctx context.Context) error
	List() []*schemas.Node
	JoinEventHandler(ctx context.Context, h bus.Handler[*schemas.Node]) (remove func(), err error)
}

// Writer updates a node through its kind's rules (registry.Store).
type Writer interface {
	Update(ctx context.Context, name string, fn func(*schemas.Node) error) (*schemas.Node, error)
}

// Run labels mine as they register, and again whenever the label is
// removed or a pass (every) finds it missing: level-triggered.
func Run(ctx context.Context, mine []string, cache Cache, w Writer, every time.Duration, log *slog.Logger) error {
	if len(mine) == 0 {
		// Nothing to label; return only when stopped, as up's group
		// ends every part when one returns.
		<-ctx.Done()
		return nil
	}
	if err := cache.WaitSynced(ctx); err != nil {
		return nil // ctx ended
	}
	kick := make(chan struct{}, 1)
	poke := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	remove, err := cache.JoinEventHandler(ctx, bus.HandlerFuncs[*schemas.Node]{
		Add:    func(*schemas.Node) { poke() },
		Update: func(_, _ *schemas.Node) { poke() },
	})
	if err != nil {
		return fmt.Errorf("node roles: %w", err)
	}
	defer remove()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for _, name := range Unlabelled(mine, cache.List()) {
			_, err := w.Update(ctx, name, func(n *schemas.Node) error {
				if n.Labels == nil {
					n.Labels = map[string]string{}
				}
				n.Labels[ControlPlane] = "true"
				return nil
			})
			if err != nil && !errors.Is(err, bus.ErrNotFound) && ctx.Err() == nil {
				log.Warn("label node as control-plane", "node", name, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-kick:
		case <-t.C:
		}
	}
}
