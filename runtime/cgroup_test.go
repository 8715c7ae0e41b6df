package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func readString(tb testing.TB, path string) string {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return string(data)
}

// The cgroup files written for each version, against a fake hierarchy
// (this machine's v2 hierarchy has no controllers; the real v1 path runs in
// TestMemoryLimitOOMKilled, TestForkBomb, TestNodeLimits and
// TestCleanupCycles).
func TestCgroupFiles(t *testing.T) {
	t.Parallel()
	res := Resources{CPUMilli: 500, MemoryBytes: 16 << 20, Pids: 10}
	node := nodeLimits{Pids: 1000, MemoryBytes: 64 << 20}

	root := t.TempDir()
	if _, err := setupCgroups(cgroupV2, root, "n", "c-1", res); !errors.Is(err, errNoNodeCgroup) {
		t.Errorf("v2 without the node cgroup: %v, want errNoNodeCgroup", err)
	}
	if err := setupNodeCgroup(cgroupV2, root, "n", node); err != nil {
		t.Fatal(err)
	}
	nodeDir := filepath.Join(root, cgroupParent, "n")
	for file, want := range map[string]string{"memory.max": "67108864", "memory.swap.max": "0", "pids.max": "1000"} {
		if got := readString(t, filepath.Join(nodeDir, file)); got != want {
			t.Errorf("v2 node %s = %q, want %q", file, got, want)
		}
	}
	cg, err := setupCgroups(cgroupV2, root, "n", "c-1", res)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(nodeDir, "c-1")
	for file, want := range map[string]string{
		"memory.max": "16777216", "memory.swap.max": "0", "pids.max": "10", "cpu.max": "50000 100000",
	} {
		if got := readString(t, filepath.Join(dir, file)); got != want {
			t.Errorf("v2 %s = %q, want %q", file, got, want)
		}
	}
	for _, d := range []string{root, filepath.Join(root, cgroupParent), nodeDir} {
		if _, err := os.Stat(filepath.Join(d, "cgroup.subtree_control")); err != nil {
			t.Errorf("v2: controllers not enabled in %s: %v", d, err)
		}
	}
	if !slices.Equal(cg.Dirs, []string{dir}) || !slices.Equal(cg.Procs, []string{filepath.Join(dir, "cgroup.procs")}) ||
		cg.OOM != filepath.Join(dir, "memory.events") || cg.Mem != dir {
		t.Errorf("v2 setup %+v", cg)
	}
	// Without limits of its own a container is still in a cgroup of the node.
	if cg, err := setupCgroups(cgroupV2, root, "n", "c-2", Resources{}); err != nil || len(cg.Dirs) != 1 || cg.Mem == "" {
		t.Errorf("v2 without limits: %+v, %v", cg, err)
	}

	root = t.TempDir()
	if _, err := setupCgroups(cgroupV1, root, "n", "c-1", res); !errors.Is(err, errNoNodeCgroup) {
		t.Errorf("v1 without the node cgroup: %v, want errNoNodeCgroup", err)
	}
	if err := setupNodeCgroup(cgroupV1, root, "n", node); err != nil {
		t.Fatal(err)
	}
	cg, err = setupCgroups(cgroupV1, root, "n", "c-1", res)
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"memory/miniku/n/memory.limit_in_bytes":     "67108864",
		"pids/miniku/n/pids.max":                    "1000",
		"memory/miniku/n/c-1/memory.limit_in_bytes": "16777216",
		"pids/miniku/n/c-1/pids.max":                "10",
		"cpu/miniku/n/c-1/cpu.cfs_period_us":        "100000",
		"cpu/miniku/n/c-1/cpu.cfs_quota_us":         "50000",
	} {
		if got := readString(t, filepath.Join(root, file)); got != want {
			t.Errorf("v1 %s = %q, want %q", file, got, want)
		}
	}
	if len(cg.Dirs) != 3 || len(cg.Procs) != 3 || cg.OOM != filepath.Join(root, "memory/miniku/n/c-1/memory.oom_control") ||
		cg.Mem != filepath.Join(root, "memory/miniku/n/c-1") || cg.Procs[0] != filepath.Join(root, "memory/miniku/n/c-1/tasks") {
		t.Errorf("v1 setup %+v", cg)
	}

	// Memory and pids always, cpu only with a CPU limit.
	cg, err = setupCgroups(cgroupV1, root, "n", "c-2", Resources{})
	if err != nil || len(cg.Dirs) != 2 || cg.OOM == "" {
		t.Errorf("no limits: %+v, %v", cg, err)
	}
	if _, err := os.Stat(filepath.Join(root, "pids/miniku/n/c-2/pids.max")); err == nil {
		t.Error("pids.max written without a limit")
	}
	if cg, err := setupCgroups(cgroupNone, root, "n", "c-3", Resources{}); err != nil || len(cg.Dirs) != 0 {
		t.Errorf("no hierarchy, no limits: %+v, %v", cg, err)
	}
	if _, err := setupCgroups(cgroupNone, root, "n", "c-4", res); err == nil {
		t.Error("limits without a cgroup hierarchy: no error")
	}
	if got := cpuQuota(1); got != 1000 {
		t.Errorf("cpuQuota(1m) = %d, want the kernel's minimum 1000", got)
	}
}

func TestResolveLimits(t *testing.T) {
	t.Parallel()
	const gi = int64(1) << 30
	host := hostCapacity{MemoryBytes: 24 * gi, Pids: 32768}
	for _, tc := range []struct {
		name string
		cfg  Config
		host hostCapacity
		want limits
		err  bool
	}{
		{name: "defaults", host: host,
			want: limits{Node: nodeLimits{Pids: 32768 - 4915, MemoryBytes: 24*gi - 24*gi/10}, PodMaxPids: DefaultPodMaxPids}},
		{name: "small host keeps the minimum reserves", host: hostCapacity{MemoryBytes: gi, Pids: 4096},
			want: limits{Node: nodeLimits{Pids: 4096 - 1024, MemoryBytes: gi - 256<<20}, PodMaxPids: DefaultPodMaxPids}},
		{name: "explicit node limits", host: host, cfg: Config{NodeMaxPids: 500, NodeMemoryBytes: 64 << 20, PodMaxPids: 100},
			want: limits{Node: nodeLimits{Pids: 500, MemoryBytes: 64 << 20}, PodMaxPids: 100}},
		{name: "reserves", host: host, cfg: Config{SystemReservedMemory: gi, SystemReservedPids: 768, PodMaxPids: -1},
			want: limits{Node: nodeLimits{Pids: 32000, MemoryBytes: 23 * gi}}},
		{name: "reserve above memory", host: host, cfg: Config{SystemReservedMemory: 24 * gi}, err: true},
		{name: "reserve above pids", host: host, cfg: Config{SystemReservedPids: 40000}, err: true},
		{name: "negative", host: host, cfg: Config{NodeMemoryBytes: -1}, err: true},
	} {
		got, err := resolveLimits(tc.cfg, tc.host)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v, error %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

func TestNodeCgroupName(t *testing.T) {
	t.Parallel()
	a, b := nodeCgroupName("/a/nodes/node-1/containers"), nodeCgroupName("/b/nodes/node-1/containers")
	if !strings.HasPrefix(a, "node-1-") || !strings.HasPrefix(b, "node-1-") || a == b {
		t.Errorf("kubelet roots: %q and %q, want node-1-<hash>, different", a, b)
	}
	if a != nodeCgroupName("/a/nodes/node-1/containers") {
		t.Error("not a function of the root alone")
	}
	for _, root := range []string{"/run/miniku/runtime", "/x/nodes/Bad_Name/containers"} {
		if got := nodeCgroupName(root); !strings.HasPrefix(got, "rt-") {
			t.Errorf("%s: %q, want rt-<hash>", root, got)
		}
	}
}
