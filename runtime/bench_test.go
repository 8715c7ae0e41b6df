package runtime

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/miniku/miniku/runtime/image/imagetest"
)

// BenchmarkContainerStart is the start of a container inside a long-lived
// process (the kubelet): create, start and wait for /bin/true, then remove.
func BenchmarkContainerStart(b *testing.B) {
	r := mustRuntime(b, "")
	rootfs := imagetest.BusyboxRootfs(b)
	ctx := context.Background()
	i := 0
	var times []time.Duration
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
		if err := r.Remove(id); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(t0))
	}
	// The median, as bench/runtime.sh compares it with the CLIs' medians.
	slices.Sort(times)
	b.ReportMetric(times[len(times)/2].Seconds(), "median-s")
}
