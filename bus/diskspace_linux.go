package bus

import (
	"fmt"
	"syscall"
)

func diskSpace(dir string) (free, total uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	// Bavail: what an unprivileged writer may use; root's reserved blocks
	// are no room to count on.
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}
