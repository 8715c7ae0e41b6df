package runtime

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Resources are a container's limits; 0 means none of its own. Every
// container still has a memory and a pids cgroup under its node's (see
// Config): without a memory limit it shares the node's, without a pids
// limit it gets Config.PodMaxPids.
type Resources struct{ CPUMilli, MemoryBytes, Pids int64 }

// cgroupVersion is what the host runs, detected once by New.
type cgroupVersion int

const (
	cgroupNone cgroupVersion = iota // no usable hierarchy: limits are refused
	cgroupV1                        // per-controller hierarchies (also "hybrid", whose v2 part has no controllers)
	cgroupV2                        // the unified hierarchy
)

func (v cgroupVersion) String() string {
	return [...]string{"none", "v1", "v2"}[v]
}

const cgroupRoot = "/sys/fs/cgroup"

// cgroupParent groups the node-level cgroups of every Runtime on the host.
// It is shared and never limited nor removed: the limits live one level
// down, in the cgroup of each Runtime (nodeCgroupName).
const cgroupParent = "miniku"

// v1Controllers are the v1 hierarchies a node-level cgroup exists in.
var v1Controllers = []string{"memory", "pids", "cpu"}

func detectCgroups() cgroupVersion {
	var st unix.Statfs_t
	if err := unix.Statfs(cgroupRoot, &st); err != nil {
		return cgroupNone
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return cgroupV2
	}
	if _, err := os.Stat(filepath.Join(cgroupRoot, "memory")); err == nil {
		return cgroupV1
	}
	return cgroupNone
}

// cgroupSetup is what init and the shim need: the files through which
// init joins its cgroups (cgroup.procs, or tasks on v1), the file whose oom_kill counter tells an OOM kill, and the
// directories Remove deletes; Mem is the memory cgroup, for MemoryUsage.
type cgroupSetup struct {
	Procs []string `json:"procs,omitempty"`
	OOM   string   `json:"oom,omitempty"`
	Dirs  []string `json:"dirs,omitempty"`
	Mem   string   `json:"mem,omitempty"`
}

// cgroupLeaf names a container's cgroup: the ID alone could collide between
// two Runtimes on one host (tests, several kubelets).
func cgroupLeaf(root, id string) string {
	return fmt.Sprintf("%s-%08x", id, rootHash(root))
}

func rootHash(root string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(root))
	return h.Sum32()
}

// nodeCgroupName names a Runtime's node-level cgroup under cgroupParent,
// from its state root alone, so that every Runtime over one root (the
// kubelet's, a later one that adopts or cleans up its containers) finds
// the same cgroup, and two roots (two test clusters with a node-1 each)
// never share one nor each other's limits. A kubelet's root is
// <data-dir>/nodes/<node>/containers: its cgroup reads <node>-<hash>.
func nodeCgroupName(root string) string {
	label := "rt"
	if filepath.Base(root) == "containers" {
		if node := filepath.Base(filepath.Dir(root)); idRE.MatchString(strings.ReplaceAll(node, "-", "")) {
			label = node
		}
	}
	return fmt.Sprintf("%s-%08x", label, rootHash(root))
}

// nodeLimits are the node-level cgroup's limits; 0: none.
type nodeLimits struct{ Pids, MemoryBytes int64 }

// nodeCgroupDirs are the node-level cgroup's directories, one per v1
// controller or the one of v2.
func nodeCgroupDirs(v cgroupVersion, root, name string) []string {
	switch v {
	case cgroupV1:
		dirs := make([]string, len(v1Controllers))
		for i, c := range v1Controllers {
			dirs[i] = filepath.Join(root, c, cgroupParent, name)
		}
		return dirs
	case cgroupV2:
		return []string{filepath.Join(root, cgroupParent, name)}
	}
	return nil
}

// setupNodeCgroup creates the node-level cgroup (or finds it, from an
// earlier process) and writes its limits.
func setupNodeCgroup(v cgroupVersion, root, name string, lim nodeLimits) error {
	if err := setupNode(v, root, name, lim); err != nil {
		return fmt.Errorf("set up node cgroup %s/%s: %w", cgroupParent, name, err)
	}
	return nil
}

func setupNode(v cgroupVersion, root, name string, lim nodeLimits) error {
	dirs := nodeCgroupDirs(v, root, name)
	switch v {
	case cgroupV1:
		for _, d := range dirs {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		if lim.MemoryBytes > 0 {
			if err := writeMemoryV1(dirs[0], lim.MemoryBytes); err != nil {
				return err
			}
		}
		if lim.Pids > 0 {
			return writeFile(dirs[1], "pids.max", strconv.FormatInt(lim.Pids, 10))
		}
		return nil
	case cgroupV2:
		if err := os.MkdirAll(dirs[0], 0o755); err != nil {
			return err
		}
		// Controllers must be enabled down the path; each separately, so
		// that one the host lacks does not block the others.
		for _, dir := range []string{root, filepath.Join(root, cgroupParent), dirs[0]} {
			for _, c := range []string{"+memory", "+pids", "+cpu"} {
				_ = writeFile(dir, "cgroup.subtree_control", c)
			}
		}
		if lim.MemoryBytes > 0 {
			if err := writeFile(dirs[0], "memory.max", strconv.FormatInt(lim.MemoryBytes, 10)); err != nil {
				return err
			}
			_ = writeFile(dirs[0], "memory.swap.max", "0") // absent without swap accounting
		}
		if lim.Pids > 0 {
			return writeFile(dirs[0], "pids.max", strconv.FormatInt(lim.Pids, 10))
		}
		return nil
	}
	return errors.New("no cgroup hierarchy on this host")
}

// removeNodeCgroup deletes the node-level cgroup if no container is left in
// it; a busy one stays, for the Runtime that still has containers there.
func removeNodeCgroup(v cgroupVersion, root, name string) error {
	var errs []error
	for _, d := range nodeCgroupDirs(v, root, name) {
		if err := unix.Rmdir(d); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.EBUSY) {
			errs = append(errs, &os.PathError{Op: "rmdir", Path: d, Err: err})
		}
	}
	return errors.Join(errs...)
}

// writeMemoryV1 sets memory and memory+swap to the same limit: no swapping
// past it. memsw must never be below the memory limit, so on a lowered limit
// memory goes first, on a raised one memsw does. The memsw file exists only
// where swap accounting is on.
func writeMemoryV1(dir string, limit int64) error {
	v := strconv.FormatInt(limit, 10)
	if _, err := os.Stat(filepath.Join(dir, "memory.memsw.limit_in_bytes")); err != nil {
		return writeFile(dir, "memory.limit_in_bytes", v)
	}
	if err := writeFile(dir, "memory.limit_in_bytes", v); err == nil {
		return writeFile(dir, "memory.memsw.limit_in_bytes", v)
	}
	if err := writeFile(dir, "memory.memsw.limit_in_bytes", v); err != nil {
		return err
	}
	return writeFile(dir, "memory.limit_in_bytes", v)
}

// errNoNodeCgroup: the node-level cgroup is gone (a Close of another
// Runtime on the same root removed it while empty); the caller sets it up
// again and retries.
var errNoNodeCgroup = errors.New("node cgroup missing")

// setupCgroups creates a container's cgroups under the node-level cgroup
// node (a name under cgroupParent) and writes the limits: a memory and a
// pids cgroup always, so that the node's limits hold the container and
// its usage can be read; a cpu cgroup only for a CPU limit.
func setupCgroups(v cgroupVersion, root, node, leaf string, res Resources) (cgroupSetup, error) {
	var cg cgroupSetup
	var err error
	switch v {
	case cgroupV1:
		err = cg.v1(root, node, leaf, res)
	case cgroupV2:
		err = cg.v2(root, node, leaf, res)
	default:
		if res == (Resources{}) {
			return cg, nil
		}
		err = errors.New("no cgroup hierarchy on this host")
	}
	if err != nil {
		removeCgroups(cg.Dirs)
		if errors.Is(err, errNoNodeCgroup) {
			return cgroupSetup{}, err
		}
		return cgroupSetup{}, fmt.Errorf("set up cgroups: %w", err)
	}
	return cg, nil
}

func writeFile(dir, name, value string) error {
	return os.WriteFile(filepath.Join(dir, name), []byte(value), 0)
}

// mkdir creates a container's cgroup directory, never its parent: a
// parent created here would lack the node's limits. join is the file
// through which init enters it.
func (cg *cgroupSetup) mkdir(dir, join string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errNoNodeCgroup
		}
		return err
	}
	cg.Dirs = append(cg.Dirs, dir)
	cg.Procs = append(cg.Procs, filepath.Join(dir, join))
	return nil
}

// v1Join is how init (and an exec) enters a v1 cgroup: by its one thread,
// through tasks. Both are single-threaded C, so the thread is the whole
// process, and the kernel moves the calling thread alone without the
// global lock whose every write through cgroup.procs waits for an RCU
// grace period: milliseconds, on every container start.
const v1Join = "tasks"

func (cg *cgroupSetup) v1(root, node, leaf string, res Resources) error {
	dir := filepath.Join(root, "memory", cgroupParent, node, leaf)
	if err := cg.mkdir(dir, v1Join); err != nil {
		return err
	}
	cg.Mem = dir
	cg.OOM = filepath.Join(dir, "memory.oom_control")
	if res.MemoryBytes > 0 {
		if err := writeMemoryV1(dir, res.MemoryBytes); err != nil {
			return err
		}
	}
	dir = filepath.Join(root, "pids", cgroupParent, node, leaf)
	if err := cg.mkdir(dir, v1Join); err != nil {
		return err
	}
	if res.Pids > 0 {
		if err := writeFile(dir, "pids.max", strconv.FormatInt(res.Pids, 10)); err != nil {
			return err
		}
	}
	if res.CPUMilli > 0 {
		dir := filepath.Join(root, "cpu", cgroupParent, node, leaf)
		if err := cg.mkdir(dir, v1Join); err != nil {
			return err
		}
		if err := writeFile(dir, "cpu.cfs_period_us", "100000"); err != nil {
			return err
		}
		if err := writeFile(dir, "cpu.cfs_quota_us", strconv.FormatInt(cpuQuota(res.CPUMilli), 10)); err != nil {
			return err
		}
	}
	return nil
}

// cpuQuota is the CFS quota in µs per 100 ms period; the kernel's minimum is 1 ms.
func cpuQuota(milli int64) int64 { return max(milli*100, 1000) }

func (cg *cgroupSetup) v2(root, node, leaf string, res Resources) error {
	dir := filepath.Join(root, cgroupParent, node, leaf)
	if err := cg.mkdir(dir, "cgroup.procs"); err != nil {
		return err
	}
	cg.Mem = dir
	cg.OOM = filepath.Join(dir, "memory.events")
	if res.MemoryBytes > 0 {
		if err := writeFile(dir, "memory.max", strconv.FormatInt(res.MemoryBytes, 10)); err != nil {
			return err
		}
		_ = writeFile(dir, "memory.swap.max", "0") // absent without swap accounting
	}
	if res.Pids > 0 {
		if err := writeFile(dir, "pids.max", strconv.FormatInt(res.Pids, 10)); err != nil {
			return err
		}
	}
	if res.CPUMilli > 0 {
		if err := writeFile(dir, "cpu.max", fmt.Sprintf("%d 100000", cpuQuota(res.CPUMilli))); err != nil {
			return err
		}
	}
	return nil
}

// removeCgroups deletes the container's cgroups. Processes of a container
// whose PID 1 has died are still being killed for a moment, so a busy
// cgroup is retried briefly.
func removeCgroups(dirs []string) error {
	var errs []error
	for _, dir := range dirs {
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := unix.Rmdir(dir)
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				break
			}
			if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
				errs = append(errs, &os.PathError{Op: "rmdir", Path: dir, Err: err})
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return errors.Join(errs...)
}

// MemoryStats is a container's memory use as its cgroup counts it. Usage
// includes the page cache and tmpfs; WorkingSet is Usage less the inactive
// file cache, which the kernel reclaims first: what the kubelet and
// cAdvisor call the working set and evict on.
type MemoryStats struct{ UsageBytes, WorkingSetBytes int64 }

// readMemoryStats reads the memory cgroup dir of the given version.
func readMemoryStats(v cgroupVersion, dir string) (MemoryStats, error) {
	usageFile, inactiveKey := "memory.usage_in_bytes", "total_inactive_file"
	if v == cgroupV2 {
		usageFile, inactiveKey = "memory.current", "inactive_file"
	}
	data, err := os.ReadFile(filepath.Join(dir, usageFile))
	if err != nil {
		return MemoryStats{}, err
	}
	usage, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return MemoryStats{}, fmt.Errorf("parse %s: %w", usageFile, err)
	}
	data, err = os.ReadFile(filepath.Join(dir, "memory.stat"))
	if err != nil {
		return MemoryStats{}, err
	}
	var inactive int64
	for line := range strings.SplitSeq(string(data), "\n") {
		if k, val, ok := strings.Cut(line, " "); ok && k == inactiveKey {
			inactive, _ = strconv.ParseInt(val, 10, 64)
		}
	}
	return MemoryStats{UsageBytes: usage, WorkingSetBytes: max(usage-inactive, 0)}, nil
}
