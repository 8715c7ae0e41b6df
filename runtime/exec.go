package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ExecArg is argv[1] with which Exec executes the runtime's own binary to
// run a command in a container. As with InitArg, nsexec.c's constructor
// takes the process over before the Go runtime starts: it opens the
// namespaces of the container's PID 1 (checking its start time), joins the
// container's cgroups, enters its IPC, UTS, network, PID and mount
// namespaces, and forks; the child takes the identity and capabilities of
// the container's command (no_new_privs, the same capability set, user and
// groups) and execs; the parent forwards signals and exits with the
// child's code, 128+signal for a death by signal. The config comes on fd 3
// ("key\0value\0" pairs: pid, starttime, workdir, arg, env, cgroup), errors
// before the exec as "E<message>" on fd 4, which reaches EOF at the exec.
const ExecArg = "runtime-exec"

// execWaitDelay bounds how long Exec waits, after the command has exited,
// for its output pipes to close: a process it left in the background may
// hold them open for ever.
const execWaitDelay = 2 * time.Second

// Exec runs args in the running container id, as its command runs (same
// namespaces, cgroups, user, capabilities, environment and working
// directory), and returns the command's exit code (128+signal when killed
// by a signal). stdin, stdout and stderr may be nil (/dev/null). Exec
// returns once the command has exited, without waiting for stdin to be
// read to its end: a Read of stdin that blocks is the caller's to end, by
// closing it. Cancelling ctx kills the command.
func (r *Runtime) Exec(ctx context.Context, id string, args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	code, err := r.exec(ctx, id, args, execIO{stdin: stdin, stdout: stdout, stderr: stderr})
	if err != nil {
		return -1, fmt.Errorf("exec in container %s: %w", id, err)
	}
	return code, nil
}

// TerminalSize is a terminal's size in characters.
type TerminalSize struct{ Width, Height uint16 }

// ExecTerminal runs args in the running container id as Exec does, on a
// terminal of its own (a new pty, its controlling terminal, as kubectl
// exec -t asks): what stdin (nil: nothing) has is typed on it, out gets
// all the command writes to it, and each size from resize is set on it
// (TIOCSWINSZ: the command gets SIGWINCH). It returns once the command has
// exited and the terminal's output is read to its end, bounded as Exec's
// pipes are.
func (r *Runtime) ExecTerminal(ctx context.Context, id string, args []string, stdin io.Reader, out io.Writer, resize <-chan TerminalSize) (int, error) {
	code, err := r.exec(ctx, id, args, execIO{stdin: stdin, stdout: out, tty: true, resize: resize})
	if err != nil {
		return -1, fmt.Errorf("exec on a terminal in container %s: %w", id, err)
	}
	return code, nil
}

// execIO is how exec connects its command.
type execIO struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	tty            bool
	resize         <-chan TerminalSize
}

func (r *Runtime) exec(ctx context.Context, id string, args []string, eio execIO) (int, error) {
	if !haveNsexec {
		return -1, errors.New("built without cgo; exec needs it (install gcc, CGO_ENABLED=1)")
	}
	if len(args) == 0 || args[0] == "" {
		return -1, fmt.Errorf("%w: no command", ErrInvalidSpec)
	}
	for _, a := range args {
		if strings.IndexByte(a, 0) >= 0 {
			return -1, fmt.Errorf("%w: argument %q contains NUL", ErrInvalidSpec, a)
		}
	}
	c, st, err := r.getState(id)
	if err != nil {
		return -1, err
	}
	if c.Status != StatusRunning {
		return -1, ErrNotRunning
	}
	if err := ctx.Err(); err != nil {
		return -1, err
	}

	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return -1, err
	}
	defer cfgR.Close()
	defer cfgW.Close()
	resR, resW, err := os.Pipe()
	if err != nil {
		return -1, err
	}
	defer resR.Close()
	defer resW.Close()
	cmd := exec.CommandContext(ctx, "/proc/self/exe", ExecArg, id)
	cmd.Env = []string{}
	cmd.ExtraFiles = []*os.File{cfgR, resW} // fds 3 and 4
	cmd.WaitDelay = execWaitDelay
	// Its own session: terminal signals aimed at the caller stay away.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var term *terminal
	if eio.tty {
		if term, err = openTerminal(cmd); err != nil {
			return -1, err
		}
		defer term.close()
	} else {
		cmd.Stdout, cmd.Stderr = eio.stdout, eio.stderr
	}
	// stdin through a pipe of our own rather than os/exec's, whose Wait
	// would wait for stdin to reach EOF even after the command has exited.
	var stdinW *os.File
	if eio.stdin != nil && term == nil {
		pr, pw, err := os.Pipe()
		if err != nil {
			return -1, err
		}
		defer pr.Close()
		defer pw.Close()
		cmd.Stdin, stdinW = pr, pw
	}
	if err := cmd.Start(); err != nil {
		return -1, err
	}
	cfgR.Close()
	resW.Close()
	if stdinW != nil {
		cmd.Stdin.(*os.File).Close()
		// Ends when stdin does (EOF or error), or at the first write after
		// the command has exited and stdinW is closed.
		go func() {
			io.Copy(stdinW, eio.stdin)
			stdinW.Close()
		}()
	}
	if term != nil {
		term.start(eio.stdin, eio.stdout, eio.resize)
	}
	serr := sendConfig(ctx, cfgW, execConfig(st, args))
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	res, rerr := readExecResult(rctx, resR)
	cancel()
	if serr != nil || rerr != nil || res != "" {
		cmd.Process.Kill()
	}
	werr := cmd.Wait()
	if term != nil {
		term.drain()
	}
	switch {
	case res != "":
		msg := strings.TrimSpace(strings.TrimPrefix(res, "E"))
		if msg == ErrNotRunning.Error() {
			// It exited between the state check and the namespaces' opening.
			return -1, ErrNotRunning
		}
		return -1, errors.New(msg)
	case ctx.Err() != nil:
		return -1, ctx.Err()
	case serr != nil:
		return -1, fmt.Errorf("send exec config: %w", serr)
	case rerr != nil:
		return -1, rerr
	}
	var ee *exec.ExitError
	switch {
	case werr == nil || errors.Is(werr, exec.ErrWaitDelay):
		return cmd.ProcessState.ExitCode(), nil
	case errors.As(werr, &ee) && ee.Exited():
		return ee.ExitCode(), nil
	default:
		return -1, werr
	}
}

// execConfig is what runtime-exec reads on fd 3.
func execConfig(st state, args []string) []byte {
	var b bytes.Buffer
	kv := func(k, v string) {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(v)
		b.WriteByte(0)
	}
	kv("pid", strconv.Itoa(st.Pid))
	kv("starttime", strconv.FormatUint(st.StartTime, 10))
	wd := st.WorkDir
	if wd == "" {
		wd = "/"
	}
	kv("workdir", wd)
	for _, a := range args {
		kv("arg", a)
	}
	for _, e := range withDefaultPath(st.Env) {
		kv("env", e)
	}
	for _, p := range st.Cgroups.Procs {
		kv("cgroup", p)
	}
	return b.Bytes()
}

// readExecResult reads fd 4 of runtime-exec to EOF: empty when the command
// was exec'd, "E<message>" when it could not be.
func readExecResult(ctx context.Context, r *os.File) (string, error) {
	stop := deadlineOn(ctx, r)
	defer stop()
	data, err := io.ReadAll(io.LimitReader(r, 64<<10))
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("read exec result: %w", err)
	}
	return string(data), nil
}
