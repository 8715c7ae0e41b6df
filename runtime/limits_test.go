package runtime

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// configRuntime is mustRuntime with cfg. Its node-level cgroup is its own
// (named after its fresh root): the limits set on it reach no other
// test's containers. The test fails if Close leaves it behind.
func configRuntime(tb testing.TB, cfg Config) *Runtime {
	tb.Helper()
	requireRoot(tb)
	r, err := NewWithConfig(tb.TempDir(), testLogger(tb), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	requireCgroups(tb, r)
	tb.Cleanup(func() {
		if err := r.Close(); err != nil {
			tb.Error(err)
		}
		for _, d := range nodeCgroupDirs(r.cgroups, cgroupRoot, r.node) {
			if _, err := os.Stat(d); !os.IsNotExist(err) {
				tb.Errorf("node cgroup %s left after Close: %v", d, err)
			}
		}
	})
	return r
}

// cgroupFile reads file from the container's or the node's cgroup directory
// that has it.
func cgroupFile(tb testing.TB, dirs []string, file string) string {
	tb.Helper()
	for _, d := range dirs {
		if data, err := os.ReadFile(filepath.Join(d, file)); err == nil {
			return strings.TrimSpace(string(data))
		}
	}
	tb.Fatalf("no %s in %q", file, dirs)
	return ""
}

func containerCgroupDirs(tb testing.TB, r *Runtime, id string) []string {
	tb.Helper()
	var st state
	if err := readJSON(filepath.Join(r.dir(id), stateFileName), &st); err != nil {
		tb.Fatal(err)
	}
	return st.Cgroups.Dirs
}

// refusedForks is the count of forks the pids cgroup refused.
func refusedForks(tb testing.TB, dirs []string) int {
	tb.Helper()
	f := strings.Fields(cgroupFile(tb, dirs, "pids.events"))
	if len(f) < 2 || f[0] != "max" {
		tb.Fatalf("pids.events %q", f)
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// hostAnswers checks that the host can still fork and the runtime answers.
func hostAnswers(t *testing.T, r *Runtime) {
	t.Helper()
	if err := exec.Command("true").Run(); err != nil {
		t.Errorf("host cannot run a process: %v", err)
	}
	if _, err := r.List(); err != nil {
		t.Errorf("runtime does not answer: %v", err)
	}
}

// TestForkBombDefaultLimits: a fork bomb in a container without a pids
// limit of its own stops at the default pod limit; with no pod limit, at
// the node's; the host keeps forking all along.
func TestForkBombDefaultLimits(t *testing.T) {
	t.Parallel()
	bomb := []string{"sh", "-c", "b() { b | b & }; b; sleep 1000"}
	t.Run("pod", func(t *testing.T) {
		t.Parallel()
		const podLimit = 32
		r := configRuntime(t, Config{PodMaxPids: podLimit})
		// The CPU limit spares the machine's other users.
		c := mustStart(t, r, Spec{ID: "bomb", Args: bomb, Resources: Resources{CPUMilli: 200}})
		logContains(t, c, "can't fork")
		dirs := containerCgroupDirs(t, r, "bomb")
		if got := cgroupFile(t, dirs, "pids.max"); got != strconv.Itoa(podLimit) {
			t.Errorf("pids.max %s, want the default pod limit %d", got, podLimit)
		}
		if n, _ := strconv.Atoi(cgroupFile(t, dirs, "pids.current")); n > podLimit || n < 1 {
			t.Errorf("pids.current %d with the bomb at the limit %d", n, podLimit)
		}
		if refusedForks(t, dirs) == 0 {
			t.Error("the pod limit refused no fork")
		}
		hostAnswers(t, r)
	})
	t.Run("node", func(t *testing.T) {
		t.Parallel()
		const nodeLimit = 48
		r := configRuntime(t, Config{PodMaxPids: -1, NodeMaxPids: nodeLimit})
		c := mustStart(t, r, Spec{ID: "bomb", Args: bomb, Resources: Resources{CPUMilli: 200}})
		logContains(t, c, "can't fork")
		if got := cgroupFile(t, containerCgroupDirs(t, r, "bomb"), "pids.max"); got != "max" {
			t.Errorf("pod pids.max %s, want none with PodMaxPids -1", got)
		}
		node := nodeCgroupDirs(r.cgroups, cgroupRoot, r.node)
		if got := cgroupFile(t, node, "pids.max"); got != strconv.Itoa(nodeLimit) {
			t.Errorf("node pids.max %s, want %d", got, nodeLimit)
		}
		if n, _ := strconv.Atoi(cgroupFile(t, node, "pids.current")); n > nodeLimit || n < 1 {
			t.Errorf("node pids.current %d with the bomb at the limit %d", n, nodeLimit)
		}
		// The pod has no limit of its own: the forks refused in it were
		// refused by the node's. (Which of the two counts them depends on
		// the kernel and cgroup version.)
		if refusedForks(t, node)+refusedForks(t, containerCgroupDirs(t, r, "bomb")) == 0 {
			t.Error("the node limit refused no fork")
		}
		hostAnswers(t, r)
	})
}

// TestNodeMemoryLimit: a container without a memory limit cannot take more
// than the node's, in /tmp (a tmpfs, sized) or in its own memory (its
// memory cgroup, under the node's, gets it OOM-killed).
func TestNodeMemoryLimit(t *testing.T) {
	t.Parallel()
	const nodeMem = 64 << 20
	r := configRuntime(t, Config{NodeMemoryBytes: nodeMem})
	rootfs := fullRootfs(t)
	c, out := run(t, r, Spec{ID: "tmpfill", Rootfs: rootfs, Args: []string{"sh", "-c",
		`grep -E ' /(tmp|dev/shm) ' /proc/mounts; head -c 134217728 /dev/zero > /tmp/fill; echo "rc=$?"; du -k /tmp/fill`}})
	if strings.Contains(out, "rc=0") {
		t.Errorf("wrote 128 MiB into /tmp with a node limit of 64 MiB:\n%s", out)
	}
	if !strings.Contains(out, " /tmp tmpfs rw,nosuid,nodev,relatime,size=65536k") ||
		!strings.Contains(out, " /dev/shm tmpfs rw,nosuid,nodev,noexec,relatime,size=65536k") {
		t.Errorf("tmpfs sizes: want /tmp and /dev/shm at 64 MiB:\n%s", out)
	}
	t.Logf("exit %d, OOM-killed %v:\n%s", c.ExitCode, c.OOMKilled, out)
	node := nodeCgroupDirs(r.cgroups, cgroupRoot, r.node)
	peakFile := "memory.max_usage_in_bytes"
	if r.cgroups == cgroupV2 {
		peakFile = "memory.peak"
	}
	if peak, _ := strconv.ParseInt(cgroupFile(t, node, peakFile), 10, 64); peak > nodeMem || peak == 0 {
		t.Errorf("node memory peak %d, want at most the limit %d", peak, nodeMem)
	}

	c, _ = run(t, r, Spec{ID: "hog", Rootfs: rootfs, Args: []string{"sh", "-c", "x=a; while true; do x=$x$x; done"}})
	if !c.OOMKilled {
		t.Errorf("memory hog without a limit: %+v, want OOM-killed at the node's limit", c)
	}
	hostAnswers(t, r)
}

// TestMemoryUsage: the usage of a running container's memory cgroup, which
// the eviction manager ranks pods by, and the node's.
func TestMemoryUsage(t *testing.T) {
	t.Parallel()
	r := configRuntime(t, Config{})
	c := mustStart(t, r, Spec{ID: "user", Args: []string{"sh", "-c", "head -c 8388608 /dev/zero > /tmp/f; echo ready; exec sleep 1000"}})
	logContains(t, c, "ready")
	var ms MemoryStats
	eventually(t, 10*time.Second, func() error {
		var err error
		if ms, err = r.MemoryUsage("user"); err != nil {
			return err
		}
		// The 8 MiB in /tmp are charged to the container.
		if ms.UsageBytes < 8<<20 || ms.WorkingSetBytes < 8<<20 || ms.WorkingSetBytes > ms.UsageBytes {
			return fmt.Errorf("usage %+v, want at least the 8 MiB in /tmp", ms)
		}
		return nil
	})
	node, limit, err := r.NodeMemoryUsage()
	if err != nil || node.UsageBytes < ms.UsageBytes || limit != r.limits.Node.MemoryBytes {
		t.Errorf("node usage %+v limit %d, %v; want at least the container's %+v", node, limit, err, ms)
	}
	if _, err := r.MemoryUsage("nosuch"); err == nil {
		t.Error("usage of an unknown container: no error")
	}
	if err := r.Stop(context.Background(), "user", 0); err != nil {
		t.Fatal(err)
	}
}

// TestUsageIsWorkingSet: Usage, what the eviction manager measures pods
// by, counts a container's tmpfs (memory it holds) but not the page cache
// of a file it wrote to disk, which its cgroup is charged for as well.
func TestUsageIsWorkingSet(t *testing.T) {
	t.Parallel()
	r := configRuntime(t, Config{})
	c := mustStart(t, r, Spec{ID: "writer", Rootfs: fullRootfs(t), Args: []string{"sh", "-c",
		"head -c 67108864 /dev/zero > /fill && head -c 8388608 /dev/zero > /tmp/f && echo ready; exec sleep 1000"}})
	logContains(t, c, "ready")
	ms, err := r.MemoryUsage("writer")
	if err != nil {
		t.Fatal(err)
	}
	u, err := r.Usage("writer")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cgroup %+v, Usage %d bytes, disk %d bytes", ms, u.MemoryBytes, u.DiskBytes)
	if ms.UsageBytes < 64<<20 {
		t.Skipf("the kernel charged only %d bytes for 64 MiB written and 8 MiB in tmpfs: nothing to tell apart", ms.UsageBytes)
	}
	if !u.MemoryKnown || u.MemoryBytes < 8<<20 || u.MemoryBytes > 32<<20 ||
		// Read apart in time: a few pages may have moved between the two.
		max(u.MemoryBytes, ms.WorkingSetBytes)-min(u.MemoryBytes, ms.WorkingSetBytes) > 1<<20 {
		t.Errorf("Usage counts %d bytes (known %v) for 8 MiB in tmpfs and 64 MiB written to disk, want the working set %d",
			u.MemoryBytes, u.MemoryKnown, ms.WorkingSetBytes)
	}
}

// TestCgroupMembership: a container's command, what it forks, and an exec
// are in the container's memory and pids cgroups under the node's, though
// init joins them by its thread alone (v1).
func TestCgroupMembership(t *testing.T) {
	t.Parallel()
	r := configRuntime(t, Config{})
	c := mustStart(t, r, Spec{ID: "member", Args: []string{"sh", "-c", "sleep 1000 & cat /proc/$!/cgroup; echo ready; wait"}})
	logContains(t, c, "ready")
	raw, err := os.ReadFile(c.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	_, exec, _ := execOut(t, r, "member", "", "cat", "/proc/self/cgroup")
	leaf := "/" + cgroupParent + "/" + r.node + "/" + cgroupLeaf(r.root, "member") + "\n"
	for how, out := range map[string]string{"command's child": logText(t, string(raw)), "exec": exec} {
		for _, ctl := range []string{"memory", "pids"} {
			if r.cgroups == cgroupV2 {
				ctl = ""
			}
			if !strings.Contains(out, ":"+ctl+":"+leaf) {
				t.Errorf("%s not in the %s cgroup %s:\n%s", how, ctl, leaf, out)
			}
		}
	}
}
