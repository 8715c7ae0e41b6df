//go:build linux

package cmd

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/services/kubelet"
)

// kubeletNodeFlags are a kubelet's capacity and labels (on `up`, applied to
// every in-process kubelet).
type kubeletNodeFlags struct {
	cpu, memory, labels *string
	maxPods             *int
}

func nodeFlags(fs *flag.FlagSet) kubeletNodeFlags {
	return kubeletNodeFlags{
		cpu:     fs.String("cpu", "", "CPU capacity offered to pods, e.g. 2 or 1500m (default: the host's CPUs)"),
		memory:  fs.String("memory", "", "memory capacity offered to pods, e.g. 4Gi (default: the host's memory)"),
		maxPods: fs.Int("max-pods", kubelet.DefaultMaxPods, "most pods the node takes"),
		labels:  fs.String("labels", "", "node labels for nodeSelector, k=v,k2=v2"),
	}
}

func (f kubeletNodeFlags) info() (kubelet.NodeInfo, error) {
	labels, err := kubelet.ParseLabels(*f.labels)
	if err != nil {
		return kubelet.NodeInfo{}, fmt.Errorf("--labels: %w", err)
	}
	if *f.maxPods < 1 {
		return kubelet.NodeInfo{}, fmt.Errorf("--max-pods must be at least 1")
	}
	info := kubelet.NodeInfo{CPU: *f.cpu, Memory: *f.memory, MaxPods: *f.maxPods, Labels: labels}
	if _, err := info.Capacity(); err != nil {
		return kubelet.NodeInfo{}, fmt.Errorf("--cpu/--memory: %w", err)
	}
	return info, nil
}

// leaderFlags choose whether a scheduler or controller campaigns for a
// lease before working, so only one of several copies is active.
type leaderFlags struct {
	elect *bool
	ttl   *time.Duration
}

func leaseFlags(fs *flag.FlagSet) leaderFlags {
	return leaderFlags{
		elect: fs.Bool("leader-elect", true, "work only while holding the lease, so several copies can run (one active, the rest standby)"),
		ttl:   fs.Duration("lease-ttl", bus.DefaultLeaseTTL, "lease lifetime without renewal (whole seconds): a standby takes over about this long after the leader dies"),
	}
}

// elector returns nil (a nil interface, not a nil *bus.Lease) when leader
// election is off; otherwise a lease on a connection from dial.
func (f leaderFlags) elector(ctx context.Context, dial func() (*bus.Conn, error), name, holder string, log *slog.Logger) (interface {
	Run(context.Context, func(context.Context) error) error
}, error) {
	if !*f.elect {
		return nil, nil
	}
	if *f.ttl < time.Second {
		return nil, fmt.Errorf("--lease-ttl must be at least 1s")
	}
	conn, err := dial()
	if err != nil {
		return nil, fmt.Errorf("connect for the %s lease: %w", name, err)
	}
	l, err := conn.NewLease(ctx, bus.LeaseConfig{Name: name, Holder: holder, TTL: *f.ttl, Logger: log.With("component", name)})
	if err != nil {
		return nil, err
	}
	return l, nil
}
