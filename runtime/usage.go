package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
)

// Usage is what a container consumes of the node, for the kubelet's
// eviction manager.
type Usage struct {
	// DiskBytes is the space its writable layer and its logs take, counted
	// in allocated blocks like du, hard links once.
	DiskBytes int64
	// MemoryBytes is its memory cgroup's working set (use less the
	// inactive file cache, see cgroupMemory); MemoryKnown is false when it
	// has no memory cgroup.
	MemoryBytes int64
	MemoryKnown bool
	// Rootfs is the image root filesystem under its overlay.
	Rootfs string
}

// Usage measures container id. Walking the writable layer costs a stat per
// file, so callers poll it every few seconds, not per request.
func (r *Runtime) Usage(id string) (Usage, error) {
	_, st, err := r.getState(id)
	if err != nil {
		return Usage{}, fmt.Errorf("usage of container %s: %w", id, err)
	}
	dir := r.dir(id)
	u := Usage{Rootfs: st.Rootfs}
	seen := map[uint64]bool{}
	for _, p := range []string{filepath.Join(dir, "upper"), filepath.Join(dir, logFileName), filepath.Join(dir, logFileName+".1")} {
		n, err := diskUsage(p, seen)
		if err != nil {
			return Usage{}, fmt.Errorf("usage of container %s: %w", id, err)
		}
		u.DiskBytes += n
	}
	u.MemoryBytes, u.MemoryKnown = cgroupMemory(r.cgroups, st.Cgroups.Mem, st.Cgroups.Dirs)
	return u, nil
}

// diskUsage sums the allocated size of everything under p; a missing p is 0
// and files vanishing during the walk are skipped (the container runs).
func diskUsage(p string, seen map[uint64]bool) (int64, error) {
	var total int64
	err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		sys, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			total += fi.Size()
			return nil
		}
		if sys.Nlink > 1 && !fi.IsDir() {
			if seen[sys.Ino] {
				return nil
			}
			seen[sys.Ino] = true
		}
		total += sys.Blocks * 512
		return nil
	})
	return total, err
}

// cgroupMemory is the working set of the container's memory cgroup (mem,
// else whichever of dirs is one): its use less the inactive file cache.
// The page cache of what the container wrote to disk is charged to it but
// is the first thing the kernel reclaims; counting it, a pod that wrote a
// large file would look as if it held that much memory and be evicted
// for memory pressure. The kubelet and cAdvisor evict on the working set.
func cgroupMemory(v cgroupVersion, mem string, dirs []string) (int64, bool) {
	if mem != "" {
		dirs = []string{mem}
	}
	for _, d := range dirs {
		if ms, err := readMemoryStats(v, d); err == nil {
			return ms.WorkingSetBytes, true
		}
	}
	return 0, false
}

// ImageRootfs returns the image root filesystem under container id's overlay.
func (r *Runtime) ImageRootfs(id string) (string, error) {
	_, st, err := r.getState(id)
	if err != nil {
		return "", fmt.Errorf("rootfs of container %s: %w", id, err)
	}
	return st.Rootfs, nil
}
