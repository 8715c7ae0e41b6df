package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// SweepInterrupted stops and removes the containers of starts that were
// interrupted: a process killed after the shim launched the container but
// before state.json was written leaves a running container that List cannot
// see and nothing would ever stop. Only the owner of root may call it, before
// it starts containers (the kubelet, at rediscovery): a start in progress in
// another process would look the same. It returns the IDs it swept.
func (r *Runtime) SweepInterrupted() ([]string, error) {
	entries, err := os.ReadDir(r.root)
	if err != nil {
		return nil, fmt.Errorf("sweep interrupted starts: %w", err)
	}
	var swept []string
	for _, e := range entries {
		if !e.IsDir() || !idRE.MatchString(e.Name()) {
			continue
		}
		dir := r.dir(e.Name())
		if _, err := os.Stat(filepath.Join(dir, stateFileName)); !errors.Is(err, os.ErrNotExist) {
			continue
		}
		for _, shim := range shimsOf(dir) {
			// The container's PID 1 first: SIGKILL to it ends every
			// process of its PID namespace; then the shim.
			for _, child := range childrenOfPid(shim) {
				_ = unix.Kill(child, unix.SIGKILL)
			}
			_ = unix.Kill(shim, unix.SIGKILL)
		}
		if err := r.Remove(e.Name()); err != nil {
			return swept, fmt.Errorf("sweep interrupted start %s: %w", e.Name(), err)
		}
		r.log.Warn("removed the container of an interrupted start", "container", e.Name())
		swept = append(swept, e.Name())
	}
	return swept, nil
}

// shimsOf finds the shim processes launched for dir: their command line is
// "<exe> runtime-init <dir>".
func shimsOf(dir string) []int {
	procs, _ := os.ReadDir("/proc")
	want := []byte(InitArg + "\x00" + dir + "\x00")
	var out []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if i := bytes.IndexByte(cmdline, 0); i >= 0 && bytes.Equal(cmdline[i+1:], want) {
			out = append(out, pid)
		}
	}
	return out
}

func childrenOfPid(pid int) []int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(data)) {
		if c, err := strconv.Atoi(f); err == nil {
			out = append(out, c)
		}
	}
	return out
}
