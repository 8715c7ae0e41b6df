package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// benchThroughputAndAPI is benchmark 1 (and 3 on the same cluster: the API
// under a store of 10,000 pods).
func benchThroughputAndAPI(withAPI bool) func(context.Context, config) ([]row, error) {
	return func(ctx context.Context, cfg config) ([]row, error) {
		dir, err := workDir(cfg, "throughput")
		if err != nil {
			return nil, err
		}
		args := []string{"--nodes", "0"}
		if cfg.hollowInUp {
			args = append(args, "--hollow-nodes", fmt.Sprint(cfg.nodes))
		}
		cl, err := startCluster(cfg, dir, args...)
		if err != nil {
			return nil, err
		}
		defer cl.stop()
		if !cfg.hollowInUp {
			if _, err := cl.addHollow(cfg.nodes, "hollow-"); err != nil {
				return nil, err
			}
		}
		if err := cl.waitNodes(cfg.nodes, 5*time.Minute); err != nil {
			return nil, err
		}
		w, err := cl.c.watchPods()
		if err != nil {
			return nil, err
		}
		defer w.stop()
		name := fmt.Sprintf("1. Throughput: %d hollow nodes, %d replicas", cfg.nodes, cfg.replicas)
		cpu0, self0 := cl.cpu(), selfCPU()
		t0 := time.Now()
		profiled := cl.startProfiles(cfg.profileDir, cfg.profileFor)
		if err := cl.c.post("/replicasets", fmt.Sprintf(`{"name":"bench","desiredCount":%d,"selector":{"app":"bench"},"template":{"image":"busybox","command":["sleep","1d"]}}`, cfg.replicas)); err != nil {
			return nil, err
		}
		waitErr := w.waitRunning(cfg.replicas, 20*time.Minute)
		cpu1, self1 := cl.cpu(), selfCPU()
		w.mu.Lock()
		var lastRun, lastBind time.Time
		for _, at := range w.runAt {
			lastRun = later(lastRun, at)
		}
		for _, at := range w.boundAt {
			lastBind = later(lastBind, at)
		}
		running, bound := w.running, len(w.boundAt)
		series := append([]sample(nil), w.series...)
		runAt := make([]time.Time, 0, len(w.runAt))
		for _, at := range w.runAt {
			runAt = append(runAt, at)
		}
		stages := fmt.Sprintf("  seen (s after POST, 10/50/90/100%%): created %s, bound %s, Running %s; startedAt %s",
			milestones(t0, w.addAt), milestones(t0, w.boundAt), milestones(t0, runAt), milestones(t0, w.started))
		w.mu.Unlock()
		fmt.Fprintln(cfg.out, stages)
		// The benchmark's own watch client shares the two cores.
		fmt.Fprintf(cfg.out, "  CPU of this benchmark process (its watch client) meanwhile: %.1f s\n", (self1 - self0).Seconds())
		cpuFigure := fmt.Sprintf("up %.1f s + hollow kubelets %.1f s = %.0f µs a pod",
			(cpu1[0] - cpu0[0]).Seconds(), (cpu1[1] - cpu0[1]).Seconds(),
			float64((cpu1[0]+cpu1[1]-cpu0[0]-cpu0[1]).Microseconds())/float64(cfg.replicas))
		_, peak, _, _ := procStats(cl.up.pid())
		if err := profiled(); err != nil {
			return nil, err
		}
		if cfg.plot != "" {
			if err := writePlot(cfg.plot, series, t0, fmt.Sprintf("%d replicas on %d hollow nodes", cfg.replicas, cfg.nodes)); err != nil {
				return nil, err
			}
		}
		if waitErr != nil {
			return []row{{name, fmt.Sprintf("%d of %d Running after 20 min", running, cfg.replicas), "≥ 4,000 pods/s", "", "no"}}, waitErr
		}
		total := lastRun.Sub(t0)
		rate := float64(cfg.replicas) / total.Seconds()
		bindRate := float64(bound) / lastBind.Sub(t0).Seconds()
		rows := []row{
			{name + ": POST to all Running", fmt.Sprintf("%.1f s = %.0f pods/s", total.Seconds(), rate), "≥ 4,000 pods/s",
				"C1M (Nomad): ≈ 3,750/s on 5,000 hosts, 5 servers", met(rate >= 4000)},
			{"1. Throughput: scheduler binds", fmt.Sprintf("%.0f binds/s", bindRate), "-", "kube-scheduler: ≈ 100 pods/s at 5,000 nodes", "-"},
			{"1. Throughput: control plane peak RSS", mib(peak), "-", "-", "-"},
			{"1. Throughput: CPU from POST to all Running", cpuFigure, "-", "-", "-"},
		}
		if withAPI {
			api, err := benchAPI(cl, w)
			rows = append(rows, api...)
			if err != nil {
				return rows, err
			}
		}
		return rows, nil
	}
}

// selfCPU is the CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// milestones gives when 10, 50, 90 and 100 % of the times had passed, in
// seconds after t0.
func milestones(t0 time.Time, at []time.Time) string {
	if len(at) == 0 {
		return "-"
	}
	s := append([]time.Time(nil), at...)
	sort.Slice(s, func(i, j int) bool { return s[i].Before(s[j]) })
	var parts []string
	for _, q := range []float64{0.1, 0.5, 0.9, 1} {
		i := min(len(s)-1, int(q*float64(len(s)))-1)
		parts = append(parts, fmt.Sprintf("%.1f", s[max(i, 0)].Sub(t0).Seconds()))
	}
	return strings.Join(parts, "/")
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// load calls fn at a fixed rate for d (open loop: a slow call does not
// delay the next) and returns the sorted latencies.
func load(rate int, d time.Duration, fn func(i int) error) ([]time.Duration, error) {
	var (
		mu   sync.Mutex
		lats []time.Duration
		errs []error
		wg   sync.WaitGroup
	)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	end := time.Now().Add(d)
	for i := 0; time.Now().Before(end); i++ {
		<-tick.C
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			start := time.Now()
			err := fn(i)
			lat := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			lats = append(lats, lat)
		}(i)
	}
	wg.Wait()
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	if len(errs) > 0 {
		return lats, fmt.Errorf("%d of %d requests failed, first: %w", len(errs), len(errs)+len(lats), errs[0])
	}
	return lats, nil
}

// benchAPI is benchmark 3: fixed-rate load on a cluster holding the
// throughput benchmark's pods.
func benchAPI(cl *cluster, w *podWatch) ([]row, error) {
	w.mu.Lock()
	names := make([]string, 0, len(w.pods))
	for n := range w.pods {
		names = append(names, n)
	}
	w.mu.Unlock()
	sort.Strings(names)
	status := func(method, path, body string, want int) error {
		code, resp, err := cl.c.do(method, path, body)
		if err != nil {
			return err
		}
		if code != want {
			return fmt.Errorf("%s %s: %d %s", method, path, code, resp)
		}
		return nil
	}
	var rows []row
	single := func(what string, lats []time.Duration) row {
		p99 := percentile(lats, 0.99)
		return row{what, fmt.Sprintf("p50 %s, p99 %s", ms(percentile(lats, 0.5)), ms(p99)), "p99 ≤ 10 ms",
			"Kubernetes SLO: p99 ≤ 1 s", met(p99 <= 10*time.Millisecond)}
	}
	get, err := load(200, 10*time.Second, func(i int) error {
		return status("GET", "/pods/"+names[i%len(names)], "", 200)
	})
	rows = append(rows, single(fmt.Sprintf("3. API: GET /pods/{name}, 200/s, %d pods stored", len(names)), get))
	if err != nil {
		return rows, err
	}
	post, err := load(100, 10*time.Second, func(i int) error {
		return status("POST", "/pods", fmt.Sprintf(`{"name":"api-%d","image":"busybox","command":["sleep","1d"]}`, i), 201)
	})
	rows = append(rows, single("3. API: POST /pods, 100/s", post))
	if err != nil {
		return rows, err
	}
	var n int
	list, err := load(2, 10*time.Second, func(int) error {
		code, body, err := cl.c.do("GET", "/pods", "")
		if err != nil {
			return err
		}
		if code != 200 {
			return fmt.Errorf("GET /pods: %d", code)
		}
		n = strings.Count(string(body), `"uid"`)
		return nil
	})
	p99 := percentile(list, 0.99)
	rows = append(rows, row{fmt.Sprintf("3. API: GET /pods (list of %d), 2/s", n),
		fmt.Sprintf("p50 %s, p99 %s", ms(percentile(list, 0.5)), ms(p99)), "≤ 200 ms",
		"Kubernetes SLO: p99 ≤ 30 s (list)", met(p99 <= 200*time.Millisecond)})
	return rows, err
}

// benchLarge is benchmark 2: Kubernetes' documented limits in one up, as
// far as it gets within cfg.largeBudget.
func benchLarge(ctx context.Context, cfg config) ([]row, error) {
	dir, err := workDir(cfg, "large")
	if err != nil {
		return nil, err
	}
	cl, err := startCluster(cfg, dir, "--nodes", "0", "--hollow-nodes", fmt.Sprint(cfg.largeNodes))
	if err != nil {
		return nil, err
	}
	defer cl.stop()
	name := fmt.Sprintf("2. Limits: %d nodes, %d pods in one up", cfg.largeNodes, cfg.largePods)
	if err := cl.waitNodes(cfg.largeNodes, 10*time.Minute); err != nil {
		return nil, err
	}
	w, err := cl.c.watchPods()
	if err != nil {
		return nil, err
	}
	defer w.stop()
	t0 := time.Now()
	// Replicasets of 10,000, as a cluster that size holds many workloads.
	for i := 0; i*10000 < cfg.largePods; i++ {
		n := min(10000, cfg.largePods-i*10000)
		if err := cl.c.post("/replicasets", fmt.Sprintf(`{"name":"large-%d","desiredCount":%d,"selector":{"app":"large-%d"},"template":{"image":"busybox","command":["sleep","1d"]}}`, i, n, i)); err != nil {
			return nil, err
		}
	}
	waitErr := w.waitRunning(cfg.largePods, cfg.largeBudget)
	_, running, _ := w.counts()
	rss, peak, _, _ := procStats(cl.up.pid())
	if waitErr != nil {
		return []row{{name, fmt.Sprintf("%d Running after %s; peak RSS %s", running, cfg.largeBudget, mib(peak)),
			"all Running, < 8 GiB", "Kubernetes: 5,000 nodes, 150,000 pods", "no"}}, nil
	}
	took := time.Since(t0)
	share, _ := cpuShare(cl.up.pid(), 20*time.Second)
	return []row{{name, fmt.Sprintf("all Running in %.0f s; peak RSS %s (now %s); steady CPU %.0f%% of a core", took.Seconds(), mib(peak), mib(rss), share*100),
		"all Running, < 8 GiB", "Kubernetes: 5,000 nodes, 150,000 pods", met(peak < 8<<30)}}, nil
}

// benchIdle is benchmark 5: up with 2 real nodes and no pods.
func benchIdle(ctx context.Context, cfg config) ([]row, error) {
	dir, err := workDir(cfg, "idle")
	if err != nil {
		return nil, err
	}
	cl, err := startCluster(cfg, dir, "--nodes", "2")
	if err != nil {
		return nil, err
	}
	defer cl.stop()
	if err := cl.waitNodes(2, time.Minute); err != nil {
		return nil, err
	}
	time.Sleep(10 * time.Second) // settle: start-up work is not idle
	share, err := cpuShare(cl.up.pid(), 30*time.Second)
	if err != nil {
		return nil, err
	}
	rss, _, _, err := procStats(cl.up.pid())
	if err != nil {
		return nil, err
	}
	return []row{{"5. Idle: up, 2 nodes, no pods", fmt.Sprintf("RSS %s, CPU %.2f%% of a core", mib(rss), share*100),
		"≤ 50 MiB, < 1%", "k3s: ≈ 500 MB+ idle", met(rss <= 50<<20 && share < 0.01)}}, nil
}

// benchFailover is benchmark 6: a node's kubelet dies (kill -9 of its
// process); time until its pods' replacements run elsewhere, with
// default settings.
func benchFailover(ctx context.Context, cfg config) ([]row, error) {
	dir, err := workDir(cfg, "failover")
	if err != nil {
		return nil, err
	}
	cl, err := startCluster(cfg, dir, "--nodes", "0")
	if err != nil {
		return nil, err
	}
	defer cl.stop()
	doomed, err := cl.addHollow(1, "a-")
	if err != nil {
		return nil, err
	}
	if _, err := cl.addHollow(1, "b-"); err != nil {
		return nil, err
	}
	if err := cl.waitNodes(2, time.Minute); err != nil {
		return nil, err
	}
	w, err := cl.c.watchPods()
	if err != nil {
		return nil, err
	}
	defer w.stop()
	const n = 20
	if err := cl.c.post("/replicasets", fmt.Sprintf(`{"name":"fo","desiredCount":%d,"selector":{"app":"fo"},"template":{"image":"busybox","command":["sleep","1d"]}}`, n)); err != nil {
		return nil, err
	}
	if err := w.waitRunning(n, 2*time.Minute); err != nil {
		return nil, err
	}
	onB := func() int {
		w.mu.Lock()
		defer w.mu.Unlock()
		c := 0
		for _, p := range w.pods {
			if p.NodeName == "b-1" && isRunning(p) {
				c++
			}
		}
		return c
	}
	if onB() == n {
		return nil, fmt.Errorf("all %d pods landed on b-1: nothing to fail over", n)
	}
	_ = syscall.Kill(-doomed.pid(), syscall.SIGKILL)
	t0 := time.Now()
	err = poll(5*time.Minute, func() error {
		if c := onB(); c != n {
			return fmt.Errorf("%d of %d pods Running on the surviving node", c, n)
		}
		return nil
	})
	name := "6. Node failure to replacement Running (defaults)"
	ref := "Kubernetes defaults: 40 s NotReady + 5 min eviction"
	if err != nil {
		return []row{{name, "not within 5 min", "-", ref, "-"}}, err
	}
	took := time.Since(t0)
	return []row{{name, fmt.Sprintf("%.1f s", took.Seconds()), "-", ref, "-"}}, nil
}
