package runtime

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Resources are a container's limits; 0 means unlimited.
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

// cgroupParent groups every container of every Runtime on the host.
const cgroupParent = "miniku"

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

// cgroupSetup is what init and the shim need: the cgroup.procs files init
// joins, the file whose oom_kill counter tells an OOM kill, and the
// directories Remove deletes.
type cgroupSetup struct {
	Procs []string `json:"procs,omitempty"`
	OOM   string   `json:"oom,omitempty"`
	Dirs  []string `json:"dirs,omitempty"`
}

// cgroupLeaf names a container's cgroup: the ID alone could collide between
// two Runtimes on one host (tests, several kubelets).
func cgroupLeaf(root, id string) string {
	h := fnv.New32a()
	h.Write([]byte(root))
	return fmt.Sprintf("%s-%08x", id, h.Sum32())
}

// setupCgroups creates the cgroups for res and writes the limits. Only the
// controllers that limit something are used: a container without limits
// costs no cgroup work at start.
func setupCgroups(v cgroupVersion, root, leaf string, res Resources) (cgroupSetup, error) {
	var cg cgroupSetup
	if res == (Resources{}) {
		return cg, nil
	}
	var err error
	switch v {
	case cgroupV1:
		err = cg.v1(root, leaf, res)
	case cgroupV2:
		err = cg.v2(root, leaf, res)
	default:
		err = errors.New("no cgroup hierarchy on this host")
	}
	if err != nil {
		removeCgroups(cg.Dirs)
		return cgroupSetup{}, fmt.Errorf("set up cgroups: %w", err)
	}
	return cg, nil
}

func writeFile(dir, name, value string) error {
	return os.WriteFile(filepath.Join(dir, name), []byte(value), 0)
}

func (cg *cgroupSetup) mkdir(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	cg.Dirs = append(cg.Dirs, dir)
	cg.Procs = append(cg.Procs, filepath.Join(dir, "cgroup.procs"))
	return nil
}

func (cg *cgroupSetup) v1(root, leaf string, res Resources) error {
	if res.MemoryBytes > 0 {
		dir := filepath.Join(root, "memory", cgroupParent, leaf)
		if err := cg.mkdir(dir); err != nil {
			return err
		}
		limit := strconv.FormatInt(res.MemoryBytes, 10)
		if err := writeFile(dir, "memory.limit_in_bytes", limit); err != nil {
			return err
		}
		// Memory+swap at the same limit: no swapping past it. The file
		// exists only where swap accounting is on.
		if _, err := os.Stat(filepath.Join(dir, "memory.memsw.limit_in_bytes")); err == nil {
			if err := writeFile(dir, "memory.memsw.limit_in_bytes", limit); err != nil {
				return err
			}
		}
		cg.OOM = filepath.Join(dir, "memory.oom_control")
	}
	if res.Pids > 0 {
		dir := filepath.Join(root, "pids", cgroupParent, leaf)
		if err := cg.mkdir(dir); err != nil {
			return err
		}
		if err := writeFile(dir, "pids.max", strconv.FormatInt(res.Pids, 10)); err != nil {
			return err
		}
	}
	if res.CPUMilli > 0 {
		dir := filepath.Join(root, "cpu", cgroupParent, leaf)
		if err := cg.mkdir(dir); err != nil {
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

func (cg *cgroupSetup) v2(root, leaf string, res Resources) error {
	parent := filepath.Join(root, cgroupParent)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	// Controllers must be enabled down the path; each separately, so that
	// one the host lacks does not block the others.
	for _, dir := range []string{root, parent} {
		for _, c := range []string{"+memory", "+pids", "+cpu"} {
			_ = writeFile(dir, "cgroup.subtree_control", c)
		}
	}
	dir := filepath.Join(parent, leaf)
	if err := cg.mkdir(dir); err != nil {
		return err
	}
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
	cg.OOM = filepath.Join(dir, "memory.events")
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
