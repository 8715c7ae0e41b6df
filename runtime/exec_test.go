package runtime

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// execOut runs args in container id and returns its exit code, stdout and stderr.
func execOut(tb testing.TB, r *Runtime, id, stdin string, args ...string) (int, string, string) {
	tb.Helper()
	var out, errb bytes.Buffer
	var in *strings.Reader
	if stdin != "" {
		in = strings.NewReader(stdin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var code int
	var err error
	if in != nil {
		code, err = r.Exec(ctx, id, args, in, &out, &errb)
	} else {
		code, err = r.Exec(ctx, id, args, nil, &out, &errb)
	}
	if err != nil {
		tb.Fatalf("exec %q: %v", args, err)
	}
	return code, out.String(), errb.String()
}

// capsScript records the command's own capabilities and privileges where an
// exec can compare its own with them.
const capsScript = `grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp|Uid|Gid|Groups):' /proc/self/status > /tmp/c; mv /tmp/c /tmp/caps; exec sleep 1000`

const capsCmd = `grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp|Uid|Gid|Groups):' /proc/self/status`

func TestExec(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	rootfs := fullRootfs(t)
	for _, tc := range []struct {
		name, user, ids string
	}{
		{"execroot", "", "0 0 0"},
		{"execweb", "web", "1000 1001 1001 1500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustStart(t, r, Spec{ID: tc.name, Rootfs: rootfs, User: tc.user, Hostname: "pod-" + tc.name,
				WorkDir: "/srv", Env: []string{"FOO=bar"}, Args: []string{"sh", "-c", capsScript}})
			var want string
			eventually(t, 30*time.Second, func() error {
				code, out, errs := execOut(t, r, tc.name, "", "cat", "/tmp/caps")
				if code != 0 {
					return fmt.Errorf("cat /tmp/caps: %d %s", code, errs)
				}
				want = out
				return nil
			})
			if code, got, _ := execOut(t, r, tc.name, "", "sh", "-c", capsCmd); code != 0 || got != want {
				t.Errorf("exec's privileges:\n%s\nwant the command's:\n%s", got, want)
			}
			if tc.user == "" && !strings.Contains(want, "CapEff:\t00000000a00405fb") {
				t.Errorf("command's capabilities not the default set: %s", want)
			}
			// The exec's are compared with these above: it has the filter too.
			if !strings.Contains(want, "Seccomp:\t2\n") {
				t.Errorf("command without the seccomp filter: %s", want)
			}
			if _, out, _ := execOut(t, r, tc.name, "", "hostname"); out != "pod-"+tc.name+"\n" {
				t.Errorf("hostname %q", out)
			}
			if _, out, _ := execOut(t, r, tc.name, "", "sh", "-c", "echo $(id -u) $(id -g) $(id -G)"); out != tc.ids+"\n" {
				t.Errorf("ids %q, want %q", out, tc.ids)
			}
			if _, out, _ := execOut(t, r, tc.name, "", "sh", "-c", "pwd; echo $FOO; echo $PATH"); out != "/srv\nbar\n"+DefaultPath+"\n" {
				t.Errorf("cwd, env: %q", out)
			}
			// In every namespace of the container's PID 1.
			for _, ns := range []string{"ipc", "uts", "net", "pid", "mnt"} {
				host, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", c.Pid, ns))
				if err != nil {
					t.Fatal(err)
				}
				if _, out, _ := execOut(t, r, tc.name, "", "readlink", "/proc/self/ns/"+ns); strings.TrimSpace(out) != host {
					t.Errorf("namespace %s: %q, want %q", ns, out, host)
				}
			}
			// The container's processes and no other: init, its command, and
			// the shell (echo is a builtin, cat has exited).
			if _, out, _ := execOut(t, r, tc.name, "", "sh", "-c", "cat /proc/2/comm; echo /proc/[0-9]*"); !strings.HasPrefix(out, "sleep\n") || len(strings.Fields(out)) != 4 || !strings.Contains(out, "/proc/1 ") || !strings.Contains(out, " /proc/2") {
				t.Errorf("pid namespace: %q, want sleep as pid 2 and 3 processes (init, sleep, sh)", out)
			}
			if code, _, _ := execOut(t, r, tc.name, "", "sh", "-c", "exit 5"); code != 5 {
				t.Errorf("exit code %d, want 5", code)
			}
			if code, _, _ := execOut(t, r, tc.name, "", "sh", "-c", "kill -9 $$"); code != 137 {
				t.Errorf("killed: exit code %d, want 137", code)
			}
			if code, out, errs := execOut(t, r, tc.name, "hello\nworld\n", "cat"); code != 0 || out != "hello\nworld\n" || errs != "" {
				t.Errorf("cat: %d %q %q", code, out, errs)
			}
			if _, out, errs := execOut(t, r, tc.name, "", "sh", "-c", "echo out; echo err >&2"); out != "out\n" || errs != "err\n" {
				t.Errorf("streams: %q %q", out, errs)
			}
			// Without stdin the command reads EOF at once.
			if code, out, _ := execOut(t, r, tc.name, "", "cat"); code != 0 || out != "" {
				t.Errorf("cat without stdin: %d %q", code, out)
			}
			if cgroups, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", c.Pid)); err == nil {
				if _, out, _ := execOut(t, r, tc.name, "", "cat", "/proc/self/cgroup"); r.cgroups != cgroupNone && out != string(cgroups) {
					t.Errorf("cgroups %q, want the container's %q", out, cgroups)
				}
			}
		})
	}
}

func TestExecErrors(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	rootfs := fullRootfs(t)
	ctx := context.Background()
	if _, err := r.Exec(ctx, "nosuch", []string{"true"}, nil, nil, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown container: %v, want ErrNotFound", err)
	}
	mustStart(t, r, Spec{ID: "execdone", Rootfs: rootfs, Args: []string{"true"}})
	mustWait(t, r, "execdone")
	if _, err := r.Exec(ctx, "execdone", []string{"true"}, nil, nil, nil); !errors.Is(err, ErrNotRunning) {
		t.Errorf("exited container: %v, want ErrNotRunning", err)
	}
	mustStart(t, r, Spec{ID: "execerr", Rootfs: rootfs, Args: []string{"sleep", "1000"}})
	if _, err := r.Exec(ctx, "execerr", []string{"nosuchcmd"}, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "executable file not found") {
		t.Errorf("missing command: %v", err)
	}
	if _, err := r.Exec(ctx, "execerr", []string{"/etc/passwd"}, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("not executable: %v", err)
	}
	if _, err := r.Exec(ctx, "execerr", nil, nil, nil, nil); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("no command: %v", err)
	}
}

// TestExecCancel: cancelling the context kills the command, and nothing of
// the exec stays behind in the container or on the host.
func TestExecCancel(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	mustStart(t, r, Spec{ID: "execcancel", Rootfs: fullRootfs(t), Args: []string{"sleep", "1000"}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	// stdin that never ends: Exec must not wait for it.
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdinW.Close()
	defer stdinR.Close()
	go func() {
		_, err := r.Exec(ctx, "execcancel", []string{"sleep", "4711"}, stdinR, nil, nil)
		done <- err
	}()
	eventually(t, 30*time.Second, func() error {
		if n := countProcs("sleep\x004711\x00"); n != 1 {
			return fmt.Errorf("%d exec'd processes", n)
		}
		return nil
	})
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled exec: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("exec did not return after cancel")
	}
	eventually(t, 30*time.Second, func() error {
		if n := countProcs("sleep\x004711\x00"); n != 0 {
			return fmt.Errorf("%d exec'd processes left", n)
		}
		if n := countProcs(ExecArg + "\x00execcancel\x00"); n != 0 {
			return fmt.Errorf("%d runtime-exec processes left", n)
		}
		return nil
	})
	stdinW.Close()
}

// countProcs counts the host's processes whose cmdline contains s.
func countProcs(s string) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	n := 0
	for _, d := range dirs {
		if data, err := os.ReadFile(d + "/cmdline"); err == nil && bytes.Contains(data, []byte(s)) {
			n++
		}
	}
	return n
}

// BenchmarkExec is one exec of /bin/true into a running container, from
// the call to the exit code.
func BenchmarkExec(b *testing.B) {
	r := mustRuntime(b, "")
	mustStart(b, r, Spec{ID: "benchexec", Args: []string{"sleep", "100000"}})
	ctx := context.Background()
	var times []time.Duration
	for b.Loop() {
		t0 := time.Now()
		code, err := r.Exec(ctx, "benchexec", []string{"/bin/true"}, nil, nil, nil)
		if err != nil || code != 0 {
			b.Fatalf("exec: %d %v", code, err)
		}
		times = append(times, time.Since(t0))
	}
	b.ReportMetric(median(times).Seconds(), "median-s")
}

// TestExecForwardsSignals: a signal to the runtime-exec process reaches
// the command, whose exit code comes back.
func TestExecForwardsSignals(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	mustStart(t, r, Spec{ID: "execsig", Rootfs: fullRootfs(t), Args: []string{"sleep", "1000"}})
	outR, outW := io.Pipe()
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := r.Exec(context.Background(), "execsig", []string{"sh", "-c", `trap "echo got TERM; exit 9" TERM; echo ready; while true; do sleep 0.1; done`}, nil, outW, nil)
		outW.Close()
		done <- result{code, err}
	}()
	rd := bufio.NewReader(outR)
	if l, err := rd.ReadString('\n'); err != nil || l != "ready\n" {
		t.Fatalf("first line %q, %v", l, err)
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var parent int
	for _, d := range dirs {
		// argv[1] and argv[2]: runtime-exec execsig.
		if data, err := os.ReadFile(d + "/cmdline"); err == nil && bytes.Contains(data, []byte("\x00"+ExecArg+"\x00execsig\x00")) {
			parent, _ = strconv.Atoi(filepath.Base(d))
		}
	}
	if parent == 0 {
		t.Fatal("no runtime-exec process found")
	}
	if err := syscall.Kill(parent, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(rd)
	res := <-done
	if res.err != nil || res.code != 9 || string(rest) != "got TERM\n" {
		t.Errorf("after SIGTERM: %d %v %q", res.code, res.err, rest)
	}
}

// TestExecTerminal: the command runs on a terminal of its own, with the
// size it was given, reads what is typed and leaves nothing behind.
func TestExecTerminal(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	mustStart(t, r, Spec{ID: "execterm", Rootfs: fullRootfs(t), Args: []string{"sleep", "1000"}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stdinR, stdinW := io.Pipe()
	defer stdinW.Close()
	resize := make(chan TerminalSize)
	var out bytes.Buffer
	done := make(chan error, 1)
	var code int
	go func() {
		var err error
		code, err = r.ExecTerminal(ctx, "execterm", []string{"sh", "-c",
			`test -t 0 && test -t 1 && test -t 2 && echo on-a-tty; read x; stty size; echo "got $x"; exit 5`}, stdinR, &out, resize)
		done <- err
	}()
	// The second size is taken once the first is set: then it is there
	// before the command reads its line and asks for it.
	for range 2 {
		select {
		case resize <- TerminalSize{Width: 101, Height: 33}:
		case err := <-done:
			t.Fatalf("exec ended before the resize: %v", err)
		}
	}
	if _, err := io.WriteString(stdinW, "hello\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("exec on a terminal did not return")
	}
	got := out.String()
	for _, want := range []string{"on-a-tty\r\n", "33 101\r\n", "got hello\r\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("output %q lacks %q", got, want)
		}
	}
	if code != 5 {
		t.Errorf("exit code %d, want 5", code)
	}
	if n := countProcs(ExecArg + "\x00execterm\x00"); n != 0 {
		t.Errorf("%d runtime-exec processes left", n)
	}
}
