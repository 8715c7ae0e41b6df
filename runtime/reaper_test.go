package runtime

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// procEntry is what the reaper tests need from /proc/<pid>/stat.
type procEntry struct {
	pid, ppid int
	state     byte
	comm      string
}

// hostProcs lists every process of the host (and so of every container).
func hostProcs(tb testing.TB) []procEntry {
	tb.Helper()
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		tb.Fatal(err)
	}
	var ps []procEntry
	for _, d := range dirs {
		data, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		open, end := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
		if open < 0 || end < open {
			continue
		}
		f := bytes.Fields(data[end+1:])
		if len(f) < 2 {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		ppid, _ := strconv.Atoi(string(f[1]))
		ps = append(ps, procEntry{pid: pid, ppid: ppid, state: f[0][0], comm: string(data[open+1 : end])})
	}
	return ps
}

// childrenOf returns the processes whose parent is pid, zombies included.
func childrenOf(tb testing.TB, pid int) []procEntry {
	tb.Helper()
	var cs []procEntry
	for _, p := range hostProcs(tb) {
		if p.ppid == pid {
			cs = append(cs, p)
		}
	}
	return cs
}

// TestReaperReapsOrphans: the command is not PID 1 but its child, and
// PID 1 reaps what is re-parented to it, even when the command itself
// (here sleep) never calls wait.
func TestReaperReapsOrphans(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	// Each subshell exits at once, orphaning its sleep to PID 1; the
	// sleeps exit while the command, exec'd into sleep, waits for nothing.
	c := mustStart(t, r, Spec{ID: "orphans", Args: []string{"sh", "-c",
		`for i in 1 2 3 4 5 6 7 8 9 10; do (sleep 0.2 &); done; echo ready; exec sleep 1000`}})
	logContains(t, c, "ready")
	eventually(t, 30*time.Second, func() error {
		cs := childrenOf(t, c.Pid)
		if len(cs) != 1 || cs[0].comm != "sleep" || cs[0].state == 'Z' {
			return fmt.Errorf("children of the container's PID 1: %+v, want only the command, running", cs)
		}
		return nil
	})
	if got, err := r.Get("orphans"); err != nil || got.Status != StatusRunning {
		t.Fatalf("container after its orphans exited: %+v, %v; want running", got, err)
	}

	// Seen from inside: no zombie in the namespace once the orphan exited.
	_, out := run(t, r, Spec{ID: "orphansps", Args: []string{"sh", "-c",
		`(sleep 0.1 &); sleep 1; ps -o stat,comm | grep -c "^Z" || true`}})
	if strings.TrimSpace(out) != "0" {
		t.Errorf("zombies in the container: %q, want 0", out)
	}
}

// TestReaperExitStatus: the container's exit is the command's, exactly as
// when the command was PID 1: its code, or 128+signal with the signal
// recorded when it was killed.
func TestReaperExitStatus(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	for _, tc := range []struct {
		id       string
		script   string
		code     int
		signaled int
	}{
		{"exit3", "exit 3", 3, 0},
		{"exit0", "true", 0, 0},
		{"killed", "kill -KILL $$", 137, 9},
		{"segv", "kill -SEGV $$", 128 + int(syscall.SIGSEGV), int(syscall.SIGSEGV)},
	} {
		c, _ := run(t, r, Spec{ID: tc.id, Args: []string{"sh", "-c", tc.script}})
		var rec exitRecord
		if err := readJSON(filepath.Join(r.dir(tc.id), exitFileName), &rec); err != nil {
			t.Fatal(err)
		}
		if c.ExitCode != tc.code || rec.ExitCode != tc.code || rec.Signal != tc.signaled || c.OOMKilled {
			t.Errorf("%s: container %+v, exit.json %+v; want code %d, signal %d", tc.script, c, rec, tc.code, tc.signaled)
		}
	}
}

// TestReaperForwardsTERM: SIGTERM reaches the command as an ordinary
// process, so a shell without a trap dies of it at once (as with docker
// run --init), and one with a trap runs it.
func TestReaperForwardsTERM(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	c := mustStart(t, r, Spec{ID: "term", Args: []string{"sh", "-c", "echo ready; while true; do sleep 0.1; done"}})
	logContains(t, c, "ready")
	if err := r.Stop(context.Background(), "term", 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	got, err := r.Get("term")
	if err != nil || !got.ExitKnown || got.ExitCode != 128+int(syscall.SIGTERM) {
		t.Errorf("shell without a trap after SIGTERM: %+v, %v; want exit code 143", got, err)
	}
	c = mustStart(t, r, Spec{ID: "trapped", Args: []string{"sh", "-c", `trap "echo bye; exit 0" TERM; echo ready; sleep 1000 & wait`}})
	logContains(t, c, "ready")
	if err := r.Stop(context.Background(), "trapped", 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	got, err = r.Get("trapped")
	if err != nil || !got.ExitKnown || got.ExitCode != 0 {
		t.Errorf("shell with a TERM trap after SIGTERM: %+v, %v; want exit code 0", got, err)
	}
	logContains(t, got, "bye")
}

// TestReaperUnprivileged: the container's PID 1 keeps no capability, no
// descriptor but the one to its shim, and cannot be ptraced by the command.
func TestReaperUnprivileged(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	rootfs := fullRootfs(t)
	for _, user := range []string{"", "nobody"} {
		id := "unpriv" + user
		c := mustStart(t, r, Spec{ID: id, Rootfs: rootfs, User: user, Args: []string{"sh", "-c", "echo ready; exec sleep 1000"}})
		logContains(t, c, "ready")
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.Pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"CapPrm:\t0000000000000000", "CapEff:\t0000000000000000", "CapInh:\t0000000000000000", "NoNewPrivs:\t1"} {
			if !strings.Contains(string(status), want+"\n") {
				t.Errorf("user %q: PID 1 status lacks %q:\n%s", user, want, status)
			}
		}
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", c.Pid))
		if err != nil {
			t.Fatal(err)
		}
		if len(fds) != 1 {
			t.Errorf("user %q: PID 1 has %d descriptors, want 1 (its status pipe)", user, len(fds))
		}
		// The command's own user and credentials are unchanged.
		cs := childrenOf(t, c.Pid)
		if len(cs) != 1 {
			t.Fatalf("user %q: children of PID 1: %+v, want the command", user, cs)
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cs[0].pid))
		for _, want := range []string{"NoNewPrivs:\t1", "SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000"} {
			if !strings.Contains(string(cmd), want+"\n") {
				t.Errorf("user %q: command's status lacks %q:\n%s", user, want, cmd)
			}
		}
		if err := r.Stop(context.Background(), id, 0); err != nil {
			t.Fatal(err)
		}
	}
}
