// Command scale runs MiniKu's scale benchmarks against real `miniku`
// processes on loopback and prints one table, each figure beside its
// target and a reference from Kubernetes or Nomad. Hollow nodes (the real
// kubelet over a fake runtime) stand in for machines; the pod startup
// benchmark runs real containers and needs root. See docs/scale.md.
//
//	go run ./bench/scale -bin .bin/miniku                 # benchmarks 1 and 3-6
//	go run ./bench/scale -bin .bin/miniku -only large     # benchmark 2 (minutes)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

type row struct {
	name, figure, target, reference string
	met                             string // "yes", "no" or "-"
}

type config struct {
	bin, dir, plot, table string
	keep                  bool
	nodes, replicas       int
	largeNodes, largePods int
	largeBudget           time.Duration
	startupPods           int
	natsSync              string
	upArgs                []string
	profileDir            string
	hollowInUp            bool
	out                   io.Writer // progress lines
	profileFor            time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench/scale:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	var cfg config
	fs.StringVar(&cfg.bin, "bin", ".bin/miniku", "the miniku binary")
	only := fs.String("only", "throughput,api,startup,idle,failover", "benchmarks to run, comma-separated: throughput, large, api, startup, idle, failover (api runs on throughput's cluster)")
	fs.StringVar(&cfg.plot, "plot", "", "write the pods-Running-over-time plot of the throughput benchmark to this PNG")
	fs.StringVar(&cfg.table, "table", "", "also write the table (markdown) to this file")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the work directory (logs, data)")
	fs.StringVar(&cfg.natsSync, "nats-sync", "", "pass --nats-sync to miniku up (empty: its default)")
	fs.StringVar(&cfg.profileDir, "profile", "", "throughput: write CPU profiles of miniku up and the hollow kubelets, taken from the POST on, into this directory")
	fs.DurationVar(&cfg.profileFor, "profile-for", 10*time.Second, "length of the -profile CPU profiles")
	upArgs := fs.String("up-args", "", "more flags for miniku up, space-separated (e.g. \"--metrics-addr 127.0.0.1:9191 --pprof\")")
	fs.BoolVar(&cfg.hollowInUp, "hollow-in-up", false, "throughput: run the hollow nodes inside miniku up (--hollow-nodes) rather than in their own process")
	fs.IntVar(&cfg.nodes, "nodes", 1000, "hollow nodes of the throughput benchmark")
	fs.IntVar(&cfg.replicas, "replicas", 10000, "replicas of the throughput benchmark")
	fs.IntVar(&cfg.largeNodes, "large-nodes", 5000, "hollow nodes of the large benchmark")
	fs.IntVar(&cfg.largePods, "large-pods", 150000, "pods of the large benchmark")
	fs.DurationVar(&cfg.largeBudget, "large-budget", 15*time.Minute, "time the large benchmark waits for all pods Running")
	fs.IntVar(&cfg.startupPods, "startup-pods", 100, "pods of the real-container startup benchmark")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.upArgs = strings.Fields(*upArgs)
	cfg.out = stdout
	bin, err := filepath.Abs(cfg.bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("miniku binary: %w (make build)", err)
	}
	cfg.bin = bin
	if cfg.dir, err = os.MkdirTemp("", "miniku-bench-"); err != nil {
		return err
	}
	if !cfg.keep {
		defer os.RemoveAll(cfg.dir)
	} else {
		fmt.Fprintln(stdout, "work directory:", cfg.dir)
	}

	want := map[string]bool{}
	for _, b := range strings.Split(*only, ",") {
		want[strings.TrimSpace(b)] = true
	}
	var rows []row
	add := func(r ...row) {
		rows = append(rows, r...)
		for _, x := range r {
			fmt.Fprintf(stdout, "  %-36s %-28s target %-20s met %s\n", x.name, x.figure, x.target, x.met)
		}
	}
	steps := []struct {
		name string
		fn   func(context.Context, config) ([]row, error)
	}{
		{"throughput", benchThroughputAndAPI(want["api"])},
		{"large", benchLarge},
		{"startup", benchStartup},
		{"idle", benchIdle},
		{"failover", benchFailover},
	}
	var failed []string
	for _, s := range steps {
		if !want[s.name] && !(s.name == "throughput" && want["api"]) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(stdout, "== %s\n", s.name)
		start := time.Now()
		r, err := s.fn(ctx, cfg)
		add(r...)
		if err != nil {
			fmt.Fprintf(stdout, "  FAILED after %s: %v\n", time.Since(start).Round(time.Second), err)
			failed = append(failed, s.name)
		}
	}
	table := markdown(rows)
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, table)
	if cfg.table != "" {
		if err := os.WriteFile(cfg.table, []byte(table), 0o644); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		sort.Strings(failed)
		return errors.New("benchmarks failed: " + strings.Join(failed, ", "))
	}
	return ctx.Err()
}

func markdown(rows []row) string {
	var b strings.Builder
	b.WriteString("| Benchmark | MiniKu (this machine) | Target | Reference | Met |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.name, r.figure, r.target, r.reference, r.met)
	}
	return b.String()
}

func met(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}

func workDir(cfg config, name string) (string, error) {
	d := filepath.Join(cfg.dir, name)
	return d, os.MkdirAll(d, 0o755)
}

// percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p)
	return sorted[i]
}
