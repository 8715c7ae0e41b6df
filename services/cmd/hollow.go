//go:build linux

package cmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/kubelet"
)

// maxHollowNodes bounds --hollow-nodes/--count: Kubernetes' documented
// cluster limit.
const maxHollowNodes = 5000

// startHollow runs n hollow kubelets (simulated nodes: the real kubelet
// code over a fake runtime) on conn, which is logged in as bus.UserHollow.
// startHollow runs n hollow nodes; pods, when set, is the process's shared
// pod cache.
func startHollow(ctx context.Context, g *group, conn *bus.Conn, n int, prefix string, cfg kubelet.Config, pods *bus.Informer[schemas.Pod, *schemas.Pod]) error {
	h, err := kubelet.NewHollow(kubelet.HollowConfig{Count: n, NamePrefix: prefix, Base: cfg, Pods: pods}, conn)
	if err != nil {
		return err
	}
	g.Go(fmt.Sprintf("%d hollow nodes", n), func() error { return h.Run(ctx) })
	return nil
}

func checkHollowCount(flagName string, n int) error {
	if n < 0 || n > maxHollowNodes {
		return fmt.Errorf("%s must be between 0 and %d", flagName, maxHollowNodes)
	}
	return nil
}

// cmdHollowKubelet is `miniku kubelet --hollow`: --count hollow nodes named
// <name-prefix>1..N in this process, logged in to NATS as the hollow user.
func cmdHollowKubelet(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("kubelet --hollow", flag.ContinueOnError)
	var c common
	c.register(fs, true)
	c.registerNATS(fs)
	_ = fs.Bool("hollow", true, "run hollow nodes: the real kubelet over a fake runtime that starts containers instantly")
	count := fs.Int("count", 1, "number of hollow nodes")
	prefix := fs.String("name-prefix", kubelet.HollowNamePrefix, "hollow nodes are named <prefix>1..<prefix>N")
	hb := fs.Duration("heartbeat-interval", kubelet.DefaultHeartbeatInterval, "heartbeat interval")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *count < 1 {
		return errors.New("--count must be at least 1")
	}
	if err := checkHollowCount("--count", *count); err != nil {
		return err
	}
	c.role = bus.UserHollow
	log, stopMetrics, err := c.observe(stderr)
	if err != nil {
		return err
	}
	defer stopMetrics()
	conn, err := c.connect(ctx, "miniku-hollow-"+*prefix, log)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	defer conn.Close()
	g, gctx := newGroup(ctx)
	if err := startHollow(gctx, g, conn, *count, *prefix, kubelet.Config{HeartbeatInterval: *hb, Logger: log}, nil); err != nil {
		return err
	}
	return g.Wait()
}

// isHollow reports whether kubelet args ask for hollow nodes.
func isHollow(args []string) bool {
	for _, a := range args {
		if a == "--hollow" || a == "-hollow" || a == "--hollow=true" || a == "-hollow=true" {
			return true
		}
	}
	return false
}
