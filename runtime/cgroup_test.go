package runtime

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The cgroup files written for each version, against a fake hierarchy
// (this machine's v2 hierarchy has no controllers; the real v1 path runs in
// TestMemoryLimitOOMKilled, TestForkBomb and TestCleanupCycles).
func TestCgroupFiles(t *testing.T) {
	t.Parallel()
	res := Resources{CPUMilli: 500, MemoryBytes: 16 << 20, Pids: 10}
	read := func(path string) string {
		t.Helper()
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}

	root := t.TempDir()
	cg, err := setupCgroups(cgroupV2, root, "c-1", res)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, cgroupParent, "c-1")
	for file, want := range map[string]string{
		"memory.max": "16777216", "memory.swap.max": "0", "pids.max": "10", "cpu.max": "50000 100000",
	} {
		if got := read(filepath.Join(dir, file)); got != want {
			t.Errorf("v2 %s = %q, want %q", file, got, want)
		}
	}
	for _, d := range []string{root, filepath.Join(root, cgroupParent)} {
		if _, err := os.Stat(filepath.Join(d, "cgroup.subtree_control")); err != nil {
			t.Errorf("v2: controllers not enabled in %s: %v", d, err)
		}
	}
	if !slices.Equal(cg.Dirs, []string{dir}) || !slices.Equal(cg.Procs, []string{filepath.Join(dir, "cgroup.procs")}) ||
		cg.OOM != filepath.Join(dir, "memory.events") {
		t.Errorf("v2 setup %+v", cg)
	}

	root = t.TempDir()
	cg, err = setupCgroups(cgroupV1, root, "c-1", res)
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"memory/miniku/c-1/memory.limit_in_bytes": "16777216",
		"pids/miniku/c-1/pids.max":                "10",
		"cpu/miniku/c-1/cpu.cfs_period_us":        "100000",
		"cpu/miniku/c-1/cpu.cfs_quota_us":         "50000",
	} {
		if got := read(filepath.Join(root, file)); got != want {
			t.Errorf("v1 %s = %q, want %q", file, got, want)
		}
	}
	if len(cg.Dirs) != 3 || len(cg.Procs) != 3 || cg.OOM != filepath.Join(root, "memory/miniku/c-1/memory.oom_control") {
		t.Errorf("v1 setup %+v", cg)
	}

	// Only the controllers that limit something.
	root = t.TempDir()
	if cg, err := setupCgroups(cgroupV1, root, "c-2", Resources{Pids: 5}); err != nil || len(cg.Dirs) != 1 || cg.OOM != "" {
		t.Errorf("pids only: %+v, %v", cg, err)
	}
	if cg, err := setupCgroups(cgroupNone, root, "c-3", Resources{}); err != nil || len(cg.Dirs) != 0 {
		t.Errorf("no limits: %+v, %v", cg, err)
	}
	if _, err := setupCgroups(cgroupNone, root, "c-4", res); err == nil {
		t.Error("limits without a cgroup hierarchy: no error")
	}
	if got := cpuQuota(1); got != 1000 {
		t.Errorf("cpuQuota(1m) = %d, want the kernel's minimum 1000", got)
	}
}
