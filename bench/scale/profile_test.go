package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/bus/registry"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/controller"
	"github.com/miniku/miniku/services/kubelet"
	"github.com/miniku/miniku/services/scheduler"
)

// BenchmarkHollowThroughput runs the throughput benchmark's control loops
// (scheduler, controller, hollow kubelets) in this process, so that
// `go test -bench HollowThroughput -cpuprofile cpu.out ./bench/scale/`
// profiles them: one replicaset of 2,000 replicas on 200 hollow nodes per
// iteration.
func BenchmarkHollowThroughput(b *testing.B) {
	const nodes, replicas = 200, 2000
	ns := bustest.Server(b, "127.0.0.1:-1", b.TempDir())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	conn := bustest.Conn(b, ns.ClientURL(), log)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() { cancel(); wg.Wait() })
	sched, err := scheduler.New(scheduler.Config{Logger: log}, conn)
	if err != nil {
		b.Fatal(err)
	}
	ctrl, err := controller.New(controller.Config{Logger: log}, conn)
	if err != nil {
		b.Fatal(err)
	}
	h, err := kubelet.NewHollow(kubelet.HollowConfig{Count: nodes, Base: kubelet.Config{Logger: log}}, conn)
	if err != nil {
		b.Fatal(err)
	}
	// The apiserver's node API, through which kubelets write pod status.
	nodeAPI := func(ctx context.Context) error {
		return bus.ServeNodeAPI(ctx, conn, bus.NodeAPIConfig{PodStatus: registry.For(conn, nil).Pods, Logger: log})
	}
	for _, run := range []func(context.Context) error{nodeAPI, sched.Run, ctrl.Run, h.Run} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = run(ctx) }()
	}
	bustest.Eventually(b, time.Minute, func() error {
		list, err := conn.Nodes.List(ctx)
		if err != nil || len(list) != nodes {
			return fmt.Errorf("%d nodes: %v", len(list), err)
		}
		return nil
	})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("prof-%d", i)
		rs := &schemas.ReplicaSet{ObjectMeta: schemas.ObjectMeta{Name: name}, DesiredCount: replicas,
			Selector: map[string]string{"app": name}, Template: schemas.PodTemplate{PodSpec: schemas.PodSpec{Image: "busybox", Command: []string{"sleep", "1d"}}}}
		if err := conn.ReplicaSets.Create(ctx, rs); err != nil {
			b.Fatal(err)
		}
		bustest.Eventually(b, 10*time.Minute, func() error {
			rs, err := conn.ReplicaSets.Get(ctx, name)
			if err != nil {
				return err
			}
			if rs.ReadyCount != replicas {
				return fmt.Errorf("%d of %d Running", rs.ReadyCount, replicas)
			}
			return nil
		})
	}
	b.ReportMetric(float64(b.N*replicas)/b.Elapsed().Seconds(), "pods/s")
}
