package runtime

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miniku/miniku/runtime/image/imagetest"
)

// requireRoot skips tests that need to create namespaces and mounts.
func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("runtime tests need root to create namespaces and mounts (CI runs them as root)")
	}
}

type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Helper()
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// mustRuntime returns a Runtime over root (a fresh directory when empty),
// closed when the test ends.
func mustRuntime(tb testing.TB, root string) *Runtime {
	tb.Helper()
	requireRoot(tb)
	if root == "" {
		root = tb.TempDir()
	}
	r, err := New(root, testLogger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	return r
}

// mustStart starts a container from spec, with a busybox rootfs unless set,
// and stops and removes it when the test ends, whatever its outcome.
func mustStart(tb testing.TB, r *Runtime, spec Spec) Container {
	tb.Helper()
	if spec.Rootfs == "" {
		spec.Rootfs = imagetest.BusyboxRootfs(tb)
	}
	c, err := r.Start(context.Background(), spec)
	if err != nil {
		tb.Fatalf("start: %v", err)
	}
	cleanupContainer(tb, r, spec.ID)
	return c
}

func cleanupContainer(tb testing.TB, r *Runtime, id string) {
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Stop(ctx, id, 0); err != nil && !errors.Is(err, ErrNotFound) {
			tb.Errorf("cleanup: %v", err)
		}
		if err := r.Remove(id); err != nil {
			tb.Errorf("cleanup: %v", err)
		}
	})
}

// eventually retries f until it succeeds or timeout passes, then fails with
// f's last error.
func eventually(tb testing.TB, timeout time.Duration, f func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not true after %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustWait(tb testing.TB, r *Runtime, id string) Container {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := r.Wait(ctx, id)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// run starts a container, waits for it and returns it with its output.
func run(tb testing.TB, r *Runtime, spec Spec) (Container, string) {
	tb.Helper()
	mustStart(tb, r, spec)
	c := mustWait(tb, r, spec.ID)
	out, err := os.ReadFile(c.LogPath)
	if err != nil {
		tb.Fatal(err)
	}
	return c, logText(tb, string(out))
}

// logText returns the content of a CRI-format log, both streams, as the
// container wrote it (P parts joined, a newline after each F line).
func logText(tb testing.TB, raw string) string {
	tb.Helper()
	var b strings.Builder
	for _, l := range strings.SplitAfter(raw, "\n") {
		if l == "" {
			continue
		}
		ts, rest, ok1 := strings.Cut(l, " ")
		stream, rest, ok2 := strings.Cut(rest, " ")
		tag, content, ok3 := strings.Cut(rest, " ")
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !ok1 || !ok2 || !ok3 ||
			(stream != "stdout" && stream != "stderr") || (tag != "F" && tag != "P") || !strings.HasSuffix(content, "\n") {
			tb.Fatalf("log line %q is not in the CRI format", l)
		}
		content = strings.TrimSuffix(content, "\n")
		b.WriteString(content)
		if tag == "F" {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// logContains waits until the container's log holds s.
func logContains(tb testing.TB, c Container, s string) {
	tb.Helper()
	eventually(tb, 10*time.Second, func() error {
		out, err := os.ReadFile(c.LogPath)
		if err != nil {
			return err
		}
		if !strings.Contains(string(out), s) {
			return fmt.Errorf("log %q does not contain %q", out, s)
		}
		return nil
	})
}

const (
	trapLoop = `trap "exit 0" TERM; echo ready; while true; do sleep 0.1; done`
	// ignoreTERM: SIGTERM reaches the command (PID 1 only forwards it),
	// so a container that outlives it must ignore it; sleep inherits that.
	ignoreTERM = `trap "" TERM; echo ready; exec sleep 1000`
)

func TestExitCode(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	c, _ := run(t, r, Spec{ID: "exit3", Args: []string{"sh", "-c", "exit 3"}})
	if c.Status != StatusExited || !c.ExitKnown || c.ExitCode != 3 {
		t.Fatalf("got status %s known %v code %d, want exited with known code 3", c.Status, c.ExitKnown, c.ExitCode)
	}
	if c.FinishedAt.IsZero() || c.FinishedAt.Before(c.CreatedAt) {
		t.Errorf("FinishedAt %v, CreatedAt %v", c.FinishedAt, c.CreatedAt)
	}
	got, err := r.Get("exit3")
	if err != nil || got.ExitCode != 3 || !got.ExitKnown {
		t.Errorf("Get after Wait: %+v, %v", got, err)
	}
}

func TestHostname(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	host, _ := os.Hostname()
	_, out := run(t, r, Spec{ID: "host", Hostname: "web-0", Args: []string{"hostname"}})
	if strings.TrimSpace(out) != "web-0" {
		t.Errorf("hostname inside = %q, want web-0", out)
	}
	if h, _ := os.Hostname(); h != host {
		t.Errorf("host hostname changed from %q to %q", host, h)
	}
	_, out = run(t, r, Spec{ID: "defaulthost", Args: []string{"hostname"}})
	if strings.TrimSpace(out) != "defaulthost" {
		t.Errorf("default hostname inside = %q, want the ID", out)
	}
}

func TestPIDNamespace(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	_, out := run(t, r, Spec{ID: "pidns", Args: []string{"sh", "-c", "echo $$; ps -o pid,comm; true"}}) // true: or sh execs ps
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// The command is the first child of the container's init (PID 1).
	if len(lines) < 2 || lines[0] != "2" {
		t.Fatalf("output %q: want $$ = 2 first", out)
	}
	// Header, then only the init, the shell and ps itself: no host process.
	procs := lines[2:]
	for i := range procs {
		procs[i] = strings.Join(strings.Fields(procs[i]), " ")
	}
	if len(procs) != 3 || procs[0] != "1 init" || procs[1] != "2 sh" || !strings.HasSuffix(procs[2], " ps") {
		t.Errorf("ps inside the container lists %q, want only 1 init, 2 sh and ps", procs)
	}
}

func TestRootfsNotModified(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	lower := imagetest.BusyboxRootfs(t)
	c, out := run(t, r, Spec{ID: "cow", Rootfs: lower, Args: []string{"sh", "-c",
		"echo data > /newfile && rm /bin/true && cat /newfile && test ! -e /bin/true && echo ok"}})
	if c.ExitCode != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("container failed: code %d, output %q", c.ExitCode, out)
	}
	if _, err := os.Lstat(filepath.Join(lower, "newfile")); !os.IsNotExist(err) {
		t.Errorf("newfile written to the lower dir: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(lower, "bin", "true")); err != nil {
		t.Errorf("bin/true removed from the lower dir: %v", err)
	}
	upper := filepath.Join(r.root, "cow", "upper")
	if data, err := os.ReadFile(filepath.Join(upper, "newfile")); err != nil || string(data) != "data\n" {
		t.Errorf("upper/newfile = %q, %v", data, err)
	}
	if fi, err := os.Lstat(filepath.Join(upper, "bin", "true")); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Errorf("upper/bin/true is not a whiteout: %v, %v", fi, err)
	}
}

func TestLogOutput(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	c, out := run(t, r, Spec{ID: "logs", Args: []string{"sh", "-c", "echo to-stdout; echo to-stderr >&2"}})
	if c.LogPath != filepath.Join(r.root, "logs", "container.log") {
		t.Errorf("LogPath = %s", c.LogPath)
	}
	if out != "to-stdout\nto-stderr\n" {
		t.Errorf("log = %q", out)
	}
	raw, _ := os.ReadFile(c.LogPath)
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], " stdout F to-stdout") || !strings.Contains(lines[1], " stderr F to-stderr") {
		t.Errorf("log lines %q, want one stdout and one stderr line tagged F", lines)
	}
}

func TestEnvAndWorkDir(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	_, out := run(t, r, Spec{ID: "env", Env: []string{"FOO=bar"}, WorkDir: "/srv/app",
		Args: []string{"sh", "-c", `echo "$FOO $PATH"; pwd`}})
	want := "bar " + DefaultPath + "\n/srv/app\n"
	if out != want {
		t.Errorf("output %q, want %q", out, want)
	}
}

func TestBadCommand(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	rootfs := imagetest.BusyboxRootfs(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"/bin/nope"}, `start container bad: exec "/bin/nope": no such file or directory`},
		{[]string{"nope"}, `start container bad: exec "nope": executable file not found in $PATH`},
	} {
		_, err := r.Start(context.Background(), Spec{ID: "bad", Rootfs: rootfs, Args: tc.args})
		if err == nil {
			cleanupContainer(t, r, "bad")
			t.Fatalf("Start(%q) succeeded", tc.args)
		}
		if err.Error() != tc.want {
			t.Errorf("Start(%q) = %q, want %q", tc.args, err, tc.want)
		}
		if _, err := os.Stat(filepath.Join(r.root, "bad")); !os.IsNotExist(err) {
			t.Errorf("failed start left its directory: %v", err)
		}
	}
	if _, err := r.Get("bad"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after failed start: %v, want ErrNotFound", err)
	}
}

func TestInvalidSpec(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	rootfs := imagetest.BusyboxRootfs(t)
	for _, spec := range []Spec{
		{ID: "Upper", Rootfs: rootfs, Args: []string{"true"}},
		{ID: "../x", Rootfs: rootfs, Args: []string{"true"}},
		{ID: strings.Repeat("a", 65), Rootfs: rootfs, Args: []string{"true"}},
		{ID: "noargs", Rootfs: rootfs},
		{ID: "relroot", Rootfs: "rootfs", Args: []string{"true"}},
		{ID: "noroot", Rootfs: "/nonexistent", Args: []string{"true"}},
		{ID: "badenv", Rootfs: rootfs, Args: []string{"true"}, Env: []string{"NOEQUALS"}},
		{ID: "relwd", Rootfs: rootfs, Args: []string{"true"}, WorkDir: "srv"},
		{ID: "badhost", Rootfs: rootfs, Args: []string{"true"}, Hostname: "a/b"},
	} {
		if _, err := r.Start(context.Background(), spec); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("Start(%+v) = %v, want ErrInvalidSpec", spec, err)
		}
	}
	mustStart(t, r, Spec{ID: "dup", Rootfs: rootfs, Args: []string{"sleep", "1000"}})
	if _, err := r.Start(context.Background(), Spec{ID: "dup", Rootfs: rootfs, Args: []string{"true"}}); !errors.Is(err, ErrExists) {
		t.Errorf("second Start with the same ID = %v, want ErrExists", err)
	}
}

func TestStopGraceful(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	c := mustStart(t, r, Spec{ID: "graceful", Args: []string{"sh", "-c", trapLoop}})
	logContains(t, c, "ready") // the trap is installed: without one SIGTERM kills the shell
	t0 := time.Now()
	if err := r.Stop(context.Background(), "graceful", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("Stop took %v although the container exits on SIGTERM", d)
	}
	got, err := r.Get("graceful")
	if err != nil || got.Status != StatusExited || !got.ExitKnown || got.ExitCode != 0 {
		t.Errorf("after Stop: %+v, %v; want exited with code 0", got, err)
	}
	if err := r.Stop(context.Background(), "graceful", time.Second); err != nil {
		t.Errorf("Stop of an exited container: %v", err)
	}
}

func TestStopKillsAfterGrace(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	c := mustStart(t, r, Spec{ID: "stubborn", Args: []string{"sh", "-c", ignoreTERM}})
	logContains(t, c, "ready")
	const grace = 300 * time.Millisecond
	t0 := time.Now()
	if err := r.Stop(context.Background(), "stubborn", grace); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d < grace || d > 5*time.Second {
		t.Errorf("Stop took %v, want a little over the %v grace", d, grace)
	}
	got, err := r.Get("stubborn")
	if err != nil || got.Status != StatusExited || !got.ExitKnown || got.ExitCode != 128+int(syscall.SIGKILL) {
		t.Errorf("after Stop: %+v, %v; want exited with code 137", got, err)
	}
}

func TestWaitContext(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	mustStart(t, r, Spec{ID: "waitctx", Args: []string{"sleep", "1000"}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := r.Wait(ctx, "waitctx"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait = %v, want DeadlineExceeded", err)
	}
	if _, err := r.Wait(context.Background(), "unknown"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Wait for unknown = %v, want ErrNotFound", err)
	}
}

// TestPIDReuseGuard uses the test process itself as "a process that reused
// the container's pid": only the start time tells them apart.
func TestPIDReuseGuard(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	ps, err := readProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	write := func(startTime uint64) {
		t.Helper()
		if err := os.MkdirAll(r.dir("reuse"), 0o700); err != nil {
			t.Fatal(err)
		}
		st := state{ID: "reuse", Pid: os.Getpid(), StartTime: startTime, CreatedAt: time.Now()}
		if err := writeJSONAtomic(filepath.Join(r.dir("reuse"), stateFileName), &st); err != nil {
			t.Fatal(err)
		}
	}
	write(ps.StartTime + 1)
	t.Cleanup(func() { os.RemoveAll(r.dir("reuse")) })
	c, err := r.Get("reuse")
	if err != nil || c.Status != StatusExited || c.ExitKnown {
		t.Fatalf("Get with a reused pid: %+v, %v; want exited, code unknown", c, err)
	}
	if c, err := r.Wait(context.Background(), "reuse"); err != nil || c.Status != StatusExited {
		t.Errorf("Wait with a reused pid: %+v, %v", c, err)
	}
	// Must not signal the test process.
	if err := r.Stop(context.Background(), "reuse", 0); err != nil {
		t.Errorf("Stop with a reused pid: %v", err)
	}

	write(ps.StartTime)
	if c, err := r.Get("reuse"); err != nil || c.Status != StatusRunning {
		t.Errorf("Get with the right start time: %+v, %v; want running", c, err)
	}
	if err := r.Remove("reuse"); !errors.Is(err, ErrRunning) {
		t.Errorf("Remove of a running container = %v, want ErrRunning", err)
	}
	write(ps.StartTime + 1)
	if err := r.Remove("reuse"); err != nil {
		t.Errorf("Remove: %v", err)
	}
}

func mountsUnder(tb testing.TB, dir string) []string {
	tb.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, dir) {
			out = append(out, l)
		}
	}
	return out
}

func TestRemoveLeavesNothing(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	c := mustStart(t, r, Spec{ID: "gone", Args: []string{"sh", "-c", "echo ready; exec sleep 1000"}})
	logContains(t, c, "ready")
	if m := mountsUnder(t, r.root); len(m) > 0 {
		t.Errorf("container mounts visible on the host: %q", m)
	}
	if err := r.Remove("gone"); !errors.Is(err, ErrRunning) {
		t.Errorf("Remove of a running container = %v, want ErrRunning", err)
	}
	if err := r.Stop(context.Background(), "gone", 0); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove("gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(r.dir("gone")); !os.IsNotExist(err) {
		t.Errorf("container dir still there: %v", err)
	}
	if m := mountsUnder(t, r.root); len(m) > 0 {
		t.Errorf("mounts left on the host: %q", m)
	}
	if _, err := r.Get("gone"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Remove = %v, want ErrNotFound", err)
	}
	if err := r.Remove("gone"); err != nil {
		t.Errorf("second Remove = %v, want nil", err)
	}
	if err := r.Remove("neverexisted"); err != nil {
		t.Errorf("Remove of unknown = %v, want nil", err)
	}
}

func TestConcurrentStartAndList(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	rootfs := imagetest.BusyboxRootfs(t)
	const n = 4
	for i := range n {
		cleanupContainer(t, r, fmt.Sprintf("c%d", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := r.Start(context.Background(), Spec{ID: fmt.Sprintf("c%d", i), Rootfs: rootfs,
				Args: []string{"sleep", "1000"}, Labels: map[string]string{"pod": fmt.Sprint(i)}})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	list, err := r.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != n {
		t.Fatalf("List returned %d containers, want %d", len(list), n)
	}
	for i, c := range list {
		if c.Status != StatusRunning || c.Labels["pod"] != strings.TrimPrefix(c.ID, "c") {
			t.Errorf("container %d: %+v", i, c)
		}
		if i > 0 && c.CreatedAt.Before(list[i-1].CreatedAt) {
			t.Errorf("List not sorted by creation time")
		}
	}
}

// TestCloseKeepsContainers: closing a Runtime must not stop its containers.
func TestCloseKeepsContainers(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	r1 := mustRuntime(t, root)
	r2 := mustRuntime(t, root)
	// Registered before Start's own cleanup so that it runs after it.
	mustStart(t, r2, Spec{ID: "survivor", Args: []string{"sleep", "1000"}})
	if err := r2.Close(); err != nil {
		t.Fatal(err)
	}
	r2.Close()
	if c, err := r1.Get("survivor"); err != nil || c.Status != StatusRunning {
		t.Fatalf("after Close: %+v, %v; want running", c, err)
	}
	if _, err := r2.Start(context.Background(), Spec{ID: "late", Rootfs: imagetest.BusyboxRootfs(t), Args: []string{"true"}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
	if err := r1.Stop(context.Background(), "survivor", 0); err != nil {
		t.Fatal(err)
	}
	// The shim, not the Runtime, records the exit: it is known all the same.
	if c := mustWait(t, r1, "survivor"); !c.ExitKnown || c.ExitCode != 137 {
		t.Errorf("after a kill with its Runtime closed: %+v, want exit code 137 known", c)
	}
}

const (
	helperRootEnv   = "MINIKU_RUNTIME_TEST_HELPER_ROOT"
	helperRootfsEnv = "MINIKU_RUNTIME_TEST_HELPER_ROOTFS"
)

// TestHelperKubelet is not a test: TestRediscovery runs the test binary
// with it as a stand-in kubelet that starts containers and is then killed.
func TestHelperKubelet(t *testing.T) {
	root := os.Getenv(helperRootEnv)
	if root == "" {
		t.Skip("helper process for TestRediscovery")
	}
	r, err := New(root, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		t.Fatal(err)
	}
	rootfs := os.Getenv(helperRootfsEnv)
	for id, args := range map[string][]string{
		"graceful": {"sh", "-c", trapLoop},
		"stubborn": {"sh", "-c", ignoreTERM},
		"orphan":   {"sh", "-c", `trap "exit 7" USR1; echo ready; while true; do sleep 0.1; done`},
	} {
		spec := Spec{ID: id, Rootfs: rootfs, Args: args, Labels: map[string]string{"pod": id}}
		if _, err := r.Start(context.Background(), spec); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Println("started")
	select {} // until killed
}

// TestRediscovery kills -9 a process that started containers and checks
// that a new Runtime over the same root finds, waits for and stops them.
func TestRediscovery(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	root := t.TempDir()
	rootfs := imagetest.BusyboxRootfs(t)
	helper := exec.Command(os.Args[0], "-test.run=^TestHelperKubelet$", "-test.v")
	helper.Env = append(os.Environ(), helperRootEnv+"="+root, helperRootfsEnv+"="+rootfs)
	helper.Stderr = testWriter{t}
	stdout, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { helper.Process.Kill(); helper.Wait() })
	r := mustRuntime(t, root)
	cleanupContainer(t, r, "graceful")
	cleanupContainer(t, r, "stubborn")
	cleanupContainer(t, r, "orphan")
	sc := bufio.NewScanner(stdout)
	started := false
	for !started && sc.Scan() {
		started = sc.Text() == "started"
	}
	if !started {
		t.Fatalf("helper kubelet exited before starting its containers: %v", sc.Err())
	}
	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	helper.Wait()

	list, err := r.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Fatalf("List after the kubelet died: %+v, want 3 containers", list)
	}
	for _, c := range list {
		if c.Status != StatusRunning || c.Labels["pod"] != c.ID {
			t.Errorf("container %s after the kubelet died: %+v, want running with its labels", c.ID, c)
		}
	}

	// A container that exits while no kubelet runs: its shim records the code.
	orphan, _ := r.Get("orphan")
	logContains(t, orphan, "ready")
	if err := syscall.Kill(orphan.Pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if c := mustWait(t, r, "orphan"); !c.ExitKnown || c.ExitCode != 7 || c.FinishedAt.Before(c.CreatedAt) {
		t.Errorf("container that exited while its kubelet was dead: %+v, want exit code 7 and a finish time", c)
	}

	graceful, _ := r.Get("graceful")
	logContains(t, graceful, "ready")
	waited := make(chan Container, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() {
		c, err := r.Wait(ctx, "graceful")
		if err != nil {
			t.Error(err)
		}
		waited <- c
	}()
	t0 := time.Now()
	if err := r.Stop(ctx, "graceful", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("Stop of an adopted container took %v although it exits on SIGTERM", d)
	}
	if c := <-waited; c.Status != StatusExited || !c.ExitKnown || c.ExitCode != 0 {
		t.Errorf("Wait for an adopted container: %+v, want exited with code 0", c)
	}

	stubborn, _ := r.Get("stubborn")
	logContains(t, stubborn, "ready")
	const grace = 200 * time.Millisecond
	t0 = time.Now()
	if err := r.Stop(ctx, "stubborn", grace); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d < grace || d > 5*time.Second {
		t.Errorf("Stop took %v, want a little over the %v grace", d, grace)
	}
	if c, err := r.Get("stubborn"); err != nil || c.Status != StatusExited {
		t.Errorf("after Stop: %+v, %v", c, err)
	}
}

// TestNoLeakedFDs: descriptors the kubelet inherited without close-on-exec
// must not reach the container. Not parallel: the stray fd would reach
// other tests' processes too.
func TestNoLeakedFDs(t *testing.T) {
	r := mustRuntime(t, "")
	fd, err := syscall.Dup(2) // dup clears close-on-exec
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	_, out := run(t, r, Spec{ID: "fds", Args: []string{"ls", "/proc/self/fd"}})
	// 0-2 are /dev/null and the shim's two pipes; 3 is ls reading the directory.
	if got := strings.Fields(out); strings.Join(got, " ") != "0 1 2 3" {
		t.Errorf("open fds in the container: %q, want 0 1 2 3", got)
	}
}

func TestLargeConfig(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	var env []string
	for i := range 100 {
		env = append(env, fmt.Sprintf("VAR%d=%s", i, strings.Repeat("x", 2048)))
	}
	_, out := run(t, r, Spec{ID: "bigenv", Env: env, Args: []string{"sh", "-c", "env | grep -c ^VAR"}})
	if strings.TrimSpace(out) != "100" {
		t.Errorf("container saw %q VAR variables, want 100", out)
	}
}

// TestInitRefusesOutsideContainer: run by hand, runtime-init must not
// remount or pivot the caller's root.
func TestInitRefusesOutsideContainer(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(os.Args[0], InitArg).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "must be started by the runtime") {
		t.Errorf("runtime-init outside a container: %v, %q", err, out)
	}
}
