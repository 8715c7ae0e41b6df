package runtime

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Config sets the limits of a Runtime's node-level cgroup and the defaults
// of its containers; the zero value takes the defaults below. All of a
// Runtime's containers live in one node-level cgroup, as a kubelet's pods
// live in kubepods: whatever the pods ask for, together they cannot take the
// memory or the pids the host itself needs.
type Config struct {
	// PodMaxPids is the pids limit of a container that sets none
	// (Kubernetes' --pod-max-pids); 0: DefaultPodMaxPids; negative: none,
	// the node's limit only.
	PodMaxPids int64
	// NodeMaxPids limits the pids of all containers together; 0: the host's
	// pid capacity less SystemReservedPids.
	NodeMaxPids int64
	// NodeMemoryBytes limits the memory of all containers together (the
	// node's allocatable memory); 0: the host's memory less
	// SystemReservedMemory.
	NodeMemoryBytes int64
	// SystemReservedMemory is the memory kept for the host when
	// NodeMemoryBytes is 0; 0: the larger of 256 MiB and 10% of the host's.
	SystemReservedMemory int64
	// SystemReservedPids is the pids kept for the host when NodeMaxPids is
	// 0; 0: the larger of 1024 and 15% of the host's pid capacity.
	SystemReservedPids int64
}

// DefaultPodMaxPids is the pids limit of a container that sets none: as
// Podman's default pids_limit, room for any ordinary server's processes and
// threads, while a fork bomb stops there.
const DefaultPodMaxPids = 2048

const (
	minReservedMemory = 256 << 20
	minReservedPids   = 1024
)

// hostCapacity is what the host has: MemTotal, and the pid capacity,
// min(kernel.pid_max, kernel.threads-max) as the kubelet counts it.
type hostCapacity struct{ MemoryBytes, Pids int64 }

// limits are Config resolved against the host.
type limits struct {
	Node       nodeLimits
	PodMaxPids int64 // 0: none
}

// resolveLimits applies Config's defaults for a host of capacity host.
func resolveLimits(cfg Config, host hostCapacity) (limits, error) {
	if cfg.PodMaxPids < 0 {
		cfg.PodMaxPids = 0
	} else if cfg.PodMaxPids == 0 {
		cfg.PodMaxPids = DefaultPodMaxPids
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"node max pids", cfg.NodeMaxPids}, {"node memory", cfg.NodeMemoryBytes},
		{"system-reserved memory", cfg.SystemReservedMemory}, {"system-reserved pids", cfg.SystemReservedPids}} {
		if f.v < 0 {
			return limits{}, fmt.Errorf("%s %d: must not be negative", f.name, f.v)
		}
	}
	l := limits{Node: nodeLimits{Pids: cfg.NodeMaxPids, MemoryBytes: cfg.NodeMemoryBytes}, PodMaxPids: cfg.PodMaxPids}
	if l.Node.MemoryBytes == 0 {
		reserved := cfg.SystemReservedMemory
		if reserved == 0 {
			reserved = max(minReservedMemory, host.MemoryBytes/10)
		}
		if reserved >= host.MemoryBytes {
			return limits{}, fmt.Errorf("system-reserved memory %d leaves nothing of the host's %d bytes to pods", reserved, host.MemoryBytes)
		}
		l.Node.MemoryBytes = host.MemoryBytes - reserved
	}
	if l.Node.Pids == 0 {
		reserved := cfg.SystemReservedPids
		if reserved == 0 {
			reserved = max(minReservedPids, host.Pids*15/100)
		}
		if reserved >= host.Pids {
			return limits{}, fmt.Errorf("system-reserved pids %d leave none of the host's %d to pods", reserved, host.Pids)
		}
		l.Node.Pids = host.Pids - reserved
	}
	return l, nil
}

// readHostCapacity reads the host's memory and pid capacity.
func readHostCapacity() (hostCapacity, error) {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return hostCapacity{}, fmt.Errorf("read host memory: %w", err)
	}
	h := hostCapacity{MemoryBytes: int64(si.Totalram) * int64(si.Unit)}
	for _, f := range []string{"/proc/sys/kernel/pid_max", "/proc/sys/kernel/threads-max"} {
		data, err := os.ReadFile(f)
		if err != nil {
			return hostCapacity{}, fmt.Errorf("read host pid capacity: %w", err)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		if err != nil {
			return hostCapacity{}, fmt.Errorf("read host pid capacity: %s: %w", f, err)
		}
		if h.Pids == 0 || n < h.Pids {
			h.Pids = n
		}
	}
	return h, nil
}

// tmpfsSizes are the sizes of a container's /tmp and /dev/shm: a tmpfs
// without a size may grow to half the host's RAM. /tmp may take what the
// container's memory may (its limit, else the node's: what Kubernetes
// gives a memory-backed emptyDir); /dev/shm gets Docker's 64 MiB. The
// pages are charged to the container's memory cgroup as well.
func tmpfsSizes(memLimit int64) (tmp, shm int64) {
	const shmSize = 64 << 20
	return memLimit, min(shmSize, memLimit)
}
