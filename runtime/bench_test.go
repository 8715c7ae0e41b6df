package runtime

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/miniku/miniku/runtime/image/imagetest"
)

// crunBundleEnv names an OCI bundle (running /bin/true) for
// BenchmarkContainerStart to time `crun run` with, interleaved with its own
// starts, so that both figures see the same machine load.
const crunBundleEnv = "MINIKU_BENCH_CRUN_BUNDLE"

// benchRootEnv names a directory under which BenchmarkContainerStart keeps
// its containers' state instead of a temporary directory.
const benchRootEnv = "MINIKU_BENCH_ROOT"

// BenchmarkContainerStart is the start of a container inside a long-lived
// process (the kubelet): create, start and wait for /bin/true. Removing it
// afterwards is not timed.
func BenchmarkContainerStart(b *testing.B) {
	// The state root: a directory on the same file system as crun's state
	// makes the comparison fair; the default is a temporary one.
	root := os.Getenv(benchRootEnv)
	if root != "" {
		root = filepath.Join(root, fmt.Sprint(os.Getpid()))
		b.Cleanup(func() { os.RemoveAll(root) })
	}
	r := mustRuntime(b, root)
	rootfs := imagetest.BusyboxRootfs(b)
	bundle := os.Getenv(crunBundleEnv)
	ctx := context.Background()
	i := 0
	var times, crun []time.Duration
	for b.Loop() {
		t0 := time.Now()
		id := fmt.Sprintf("bench%d", i)
		i++
		if _, err := r.Start(ctx, Spec{ID: id, Rootfs: rootfs, Args: []string{"/bin/true"}}); err != nil {
			b.Fatal(err)
		}
		c, err := r.Wait(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		if c.ExitCode != 0 {
			b.Fatalf("exit code %d", c.ExitCode)
		}
		times = append(times, time.Since(t0))
		b.StopTimer() // the start is timed; the clean-up is not
		if err := r.Remove(id); err != nil {
			b.Fatal(err)
		}
		if bundle != "" {
			t0 := time.Now()
			if out, err := exec.Command("crun", "run", "--bundle", bundle, fmt.Sprintf("gobench%d-%d", os.Getpid(), i)).CombinedOutput(); err != nil {
				b.Fatalf("crun run: %v: %s", err, out)
			}
			crun = append(crun, time.Since(t0))
		}
		b.StartTimer()
	}
	// Medians, as bench/runtime.sh compares them with the CLIs' medians.
	b.ReportMetric(median(times).Seconds(), "median-s")
	if len(crun) > 0 {
		b.ReportMetric(median(crun).Seconds(), "crun-median-s")
	}
}

func median(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}
