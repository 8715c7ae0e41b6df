package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Usage is what a container consumes of the node, for the kubelet's
// eviction manager.
type Usage struct {
	// DiskBytes is the space its writable layer and its logs take, counted
	// in allocated blocks like du, hard links once.
	DiskBytes int64
	// MemoryBytes is its cgroup's memory use; MemoryKnown is false when it
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
	u.MemoryBytes, u.MemoryKnown = cgroupMemory(st.Cgroups.Dirs)
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

// cgroupMemory reads memory.current (v2) or memory.usage_in_bytes (v1) from
// whichever of the container's cgroup directories has one.
func cgroupMemory(dirs []string) (int64, bool) {
	for _, d := range dirs {
		for _, f := range []string{"memory.current", "memory.usage_in_bytes"} {
			data, err := os.ReadFile(filepath.Join(d, f))
			if err != nil {
				continue
			}
			v, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
			if err == nil {
				return v, true
			}
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
