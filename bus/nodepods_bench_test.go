package bus_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
)

// benchSize is NODEPODS_NODES × NODEPODS_PODS, default 1,000 × 10,000.
func benchSize() (nodes, pods int) {
	nodes, pods = 1000, 10000
	if v, err := strconv.Atoi(os.Getenv("NODEPODS_NODES")); err == nil && v > 0 {
		nodes = v
	}
	if v, err := strconv.Atoi(os.Getenv("NODEPODS_PODS")); err == nil && v > 0 {
		pods = v
	}
	return nodes, pods
}

// writePods creates pods bound round-robin to nodes node-1..node-M, then
// sets each Running: two writes a pod, as a bind and a kubelet's status
// are. It returns the value bytes and writes of node-1's pods (what its
// kubelet needs to hear) and the elapsed time.
func writePods(b *testing.B, c *bus.Conn, prefix string, nodes, pods int, extra func(p *schemas.Pod)) (needBytes, needMsgs int64, took time.Duration) {
	ctx := context.Background()
	var next atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= pods {
					return
				}
				node := fmt.Sprintf("node-%d", i%nodes+1)
				p := boundPod(fmt.Sprintf("%s-%d", prefix, i), node)
				if err := c.Pods.Create(ctx, p); err != nil {
					b.Error(err)
					return
				}
				if extra != nil {
					extra(p)
				}
				size1, _ := schemas.Marshal(p)
				p.Status = schemas.PodRunning
				if err := c.Pods.Update(ctx, p); err != nil {
					b.Error(err)
					return
				}
				if extra != nil {
					extra(p)
				}
				size2, _ := schemas.Marshal(p)
				if node == "node-1" {
					mu.Lock()
					needBytes += int64(len(size1) + len(size2))
					needMsgs += 2
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return needBytes, needMsgs, time.Since(start)
}

// BenchmarkNodePodsDelivery prints what one kubelet receives while N pods
// start on M nodes: over a whole-bucket watch (what every kubelet ran
// before) and over its node's view (NewNodePodsInformer), against what its
// own pods' writes are. Run it with -benchtime=1x.
func BenchmarkNodePodsDelivery(b *testing.B) {
	nodes, pods := benchSize()
	for range b.N {
		ns, authDir := bustest.SecureServer(b, "node-1")
		url := ns.ClientURL()
		admin := bustest.ConnAs(b, url, authDir, bus.UserAPIServer, false)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() {
			_ = bus.ServeNodeAPI(ctx, admin, bus.NodeAPIConfig{PodStatus: podStatusWriter(admin), Logger: bustest.Logger(b)})
		})
		// Before: a kubelet's informer over the pods bucket (the viewer
		// reads what a kubelet could read).
		old := bustest.ConnAs(b, url, authDir, bus.UserViewer, true)
		oldInf := bus.NewInformer(old, old.Pods, time.Hour, bustest.Logger(b))
		// After: its node's view.
		k1 := bustest.ConnAs(b, url, authDir, bus.KubeletUser("node-1"), true)
		newInf := bus.NewNodePodsInformer(k1, []string{"node-1"}, time.Hour, bustest.Logger(b))
		for _, inf := range []*bus.Informer[schemas.Pod, *schemas.Pod]{oldInf, newInf} {
			wg.Go(func() { _ = inf.Run(ctx) })
			if err := inf.WaitSynced(ctx); err != nil {
				b.Fatal(err)
			}
		}
		oldBefore, newBefore := old.NATS().Stats(), k1.NATS().Stats()

		needBytes, needMsgs, took := writePods(b, admin, "p", nodes, pods, nil)
		mine := (pods + nodes - 1) / nodes
		running := func(inf *bus.Informer[schemas.Pod, *schemas.Pod], want int) func() error {
			return func() error {
				n := 0
				for _, p := range inf.List() {
					if p.Status == schemas.PodRunning {
						n++
					}
				}
				if n != want {
					return fmt.Errorf("%d of %d running", n, want)
				}
				return nil
			}
		}
		bustest.Eventually(b, time.Minute, running(oldInf, pods))
		bustest.Eventually(b, time.Minute, running(newInf, mine))
		oldAfter, newAfter := old.NATS().Stats(), k1.NATS().Stats()
		// A relist, as every resync period and reconnect make one.
		_, _, err := k1.ListNodePods(ctx, "node-1")
		if err != nil {
			b.Fatal(err)
		}
		relist := k1.NATS().Stats()
		cancel()
		wg.Wait()

		oldMsgs, oldBytes := oldAfter.InMsgs-oldBefore.InMsgs, oldAfter.InBytes-oldBefore.InBytes
		newMsgs, newBytes := newAfter.InMsgs-newBefore.InMsgs, newAfter.InBytes-newBefore.InBytes
		b.Logf("%d pods on %d nodes (%d on node-1), written in %v (%.0f pods/s); one kubelet received:", pods, nodes, mine, took.Round(time.Millisecond), float64(pods)/took.Seconds())
		b.Logf("  %-28s %10s %12s", "", "messages", "bytes")
		b.Logf("  %-28s %10d %12d", "its own pods' writes (need)", needMsgs, needBytes)
		b.Logf("  %-28s %10d %12d   %.2fx need", "whole pods bucket (before)", oldMsgs, oldBytes, float64(oldBytes)/float64(needBytes))
		b.Logf("  %-28s %10d %12d   %.2fx need", "node's view (after)", newMsgs, newBytes, float64(newBytes)/float64(needBytes))
		b.Logf("  before/after: %.0fx the messages, %.0fx the bytes; a relist of its view: %d bytes",
			float64(oldMsgs)/float64(newMsgs), float64(oldBytes)/float64(newBytes), relist.InBytes-newAfter.InBytes)
		b.ReportMetric(float64(oldBytes), "before-bytes")
		b.ReportMetric(float64(newBytes), "after-bytes")
		b.ReportMetric(float64(newBytes)/float64(needBytes), "after/need")
	}
}

// BenchmarkNodePodsWriteCost compares the pods path's writes/s, same run:
// the bucket alone; with the apiserver pushing each change to its node
// (this design); with each change also put to a derived <node>.<pod>
// bucket (the design not chosen), which a kubelet would watch filtered.
func BenchmarkNodePodsWriteCost(b *testing.B) {
	nodes, pods := benchSize()
	pods = max(pods/2, 1)
	for range b.N {
		ns := bustest.Server(b, "", "")
		c := bustest.Conn(b, ns.ClientURL(), nil)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup

		_, _, plain := writePods(b, c, "plain", nodes, pods, nil)

		served := make(chan struct{})
		inf := bus.NewInformer(c, c.Pods, time.Hour, bustest.Logger(b))
		wg.Go(func() { _ = inf.Run(ctx) })
		if err := inf.WaitSynced(ctx); err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			close(served)
			_ = bus.ServeNodeAPI(ctx, c, bus.NodeAPIConfig{PodStatus: podStatusWriter(c), Pods: inf, Logger: bustest.Logger(b)})
		})
		<-served
		time.Sleep(100 * time.Millisecond)
		start := time.Now()
		writePods(b, c, "pushed", nodes, pods, nil)
		// The pushes are made as the cache hears the writes: until it
		// has heard them all.
		if err := inf.WaitCurrent(ctx); err != nil {
			b.Fatal(err)
		}
		pushed := time.Since(start)
		cancel()
		wg.Wait()

		js, err := jetstream.New(c.NATS())
		if err != nil {
			b.Fatal(err)
		}
		mirror, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "nodepods_mirror", History: 1, Storage: jetstream.FileStorage})
		if err != nil {
			b.Fatal(err)
		}
		_, _, mirrored := writePods(b, c, "mirrored", nodes, pods, func(p *schemas.Pod) {
			data, _ := schemas.Marshal(p)
			if _, err := mirror.Put(context.Background(), p.NodeName+"."+p.Name, data); err != nil {
				b.Error(err)
			}
		})
		rate := func(d time.Duration) float64 { return float64(pods) / d.Seconds() }
		b.Logf("pods/s (%d pods, 2 writes each): bucket alone %.0f; + node pushes %.0f (%.2fx); + derived <node>.<pod> bucket %.0f (%.2fx)",
			pods, rate(plain), rate(pushed), rate(pushed)/rate(plain), rate(mirrored), rate(mirrored)/rate(plain))
		b.ReportMetric(rate(pushed)/rate(plain), "pushed/plain")
		b.ReportMetric(rate(mirrored)/rate(plain), "mirrored/plain")
	}
}
