package runtime

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

const (
	stateFileName = "state.json"
	exitFileName  = "exit.json"
	logFileName   = "container.log"
)

// state is state.json: everything needed to find the container's process
// again after the kubelet restarts, plus the spec for debugging.
type state struct {
	ID        string            `json:"id"`
	Pid       int               `json:"pid"`
	StartTime uint64            `json:"startTime"`
	CreatedAt time.Time         `json:"createdAt"`
	Labels    map[string]string `json:"labels,omitempty"`
	Rootfs    string            `json:"rootfs"`
	Args      []string          `json:"args"`
	Env       []string          `json:"env,omitempty"`
	WorkDir   string            `json:"workDir"`
	Hostname  string            `json:"hostname"`
	// The shim: alive while the container's exit is not yet recorded.
	ShimPid       int         `json:"shimPid"`
	ShimStartTime uint64      `json:"shimStartTime"`
	Cgroups       cgroupSetup `json:"cgroups,omitzero"`
}

// exitRecord is exit.json, written by the shim when it has reaped the
// container and drained its output.
type exitRecord struct {
	ExitCode   int       `json:"exitCode"` // 128+signal when killed
	Signal     int       `json:"signal"`
	FinishedAt time.Time `json:"finishedAt"`
	OOMKilled  bool      `json:"oomKilled"`
}

// writeJSONAtomic replaces path with v's encoding so that readers see the old
// file or the new one, never a torn write. There is no fsync: these files
// must survive a crash of the kubelet, which the page cache does; after a
// machine crash the containers they describe are gone anyway, and a sync
// would cost milliseconds on every container start.
func writeJSONAtomic(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// readJSON decodes path into v; a missing file is reported as fs.ErrNotExist.
func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

// procStat is the part of /proc/<pid>/stat the runtime needs.
type procStat struct {
	State     byte   // field 3: R, S, D, Z, X, ...
	StartTime uint64 // field 22, in clock ticks after boot
}

// readProcStat reads /proc/<pid>/stat; fs.ErrNotExist means no such process.
func readProcStat(pid int) (procStat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) {
			return procStat{}, fs.ErrNotExist
		}
		return procStat{}, err
	}
	// comm (field 2) is in parentheses and may itself contain spaces and
	// parentheses, so the fields start after the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat: no ')'", pid)
	}
	fields := bytes.Fields(data[i+1:])
	if len(fields) < 20 {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(fields)+2)
	}
	st, err := strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat start time: %w", pid, err)
	}
	return procStat{State: fields[0][0], StartTime: st}, nil
}

// alive reports whether pid is still the process that had startTime and has
// not exited. A zombie has exited: it only waits for its parent to reap it.
func alive(pid int, startTime uint64) (bool, error) {
	if pid <= 0 {
		return false, nil
	}
	ps, err := readProcStat(pid)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return ps.StartTime == startTime && ps.State != 'Z' && ps.State != 'X', nil
}
