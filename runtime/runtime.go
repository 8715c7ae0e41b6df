package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Runtime starts and tracks the containers whose state lives under one root
// directory. It is safe for concurrent use.
type Runtime struct {
	root string
	log  *slog.Logger

	// ctx is cancelled by Close and stops the reapers, which leave their
	// containers running.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // reapers and in-flight Starts

	mu     sync.Mutex
	closed bool
	// busy holds the IDs a Start or Remove is working on, so that a Remove
	// cannot delete the directory of a container still being started.
	busy map[string]bool
	// children are the containers this Runtime started and is reaping.
	children map[string]*child
}

// child is a container this process is the parent of.
type child struct {
	// done is closed when the reaper returns: exit.json is written, or
	// Close stopped the reaper.
	done chan struct{}
}

// New returns a Runtime keeping container state under root, created if
// missing. Containers already there, started by an earlier process, are
// visible through Get and List at once.
func New(root string, log *slog.Logger) (*Runtime, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("new runtime: %w", err)
	}
	// upper and work dirs under root go into overlay mount options.
	if err := checkMountPath("root", abs); err != nil {
		return nil, fmt.Errorf("new runtime: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("new runtime: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Runtime{
		root:     abs,
		log:      log.With("component", "runtime"),
		ctx:      ctx,
		cancel:   cancel,
		busy:     make(map[string]bool),
		children: make(map[string]*child),
	}, nil
}

// Close stops the goroutines of r and waits for them. Containers keep
// running; those that exit afterwards are reported exited with ExitKnown
// false, and stay zombies until this process exits, since nothing reaps
// them. Safe to call more than once.
func (r *Runtime) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	return nil
}

func (r *Runtime) dir(id string) string { return filepath.Join(r.root, id) }

// lock marks id busy, failing with busyErr if it already is; track also
// counts the caller as an in-flight Start.
func (r *Runtime) lock(id string, track bool, busyErr error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if track && r.closed {
		return ErrClosed
	}
	if r.busy[id] {
		return fmt.Errorf("%w: another start or remove is in progress", busyErr)
	}
	r.busy[id] = true
	if track {
		r.wg.Add(1)
	}
	return nil
}

func (r *Runtime) unlock(id string, track bool) {
	r.mu.Lock()
	delete(r.busy, id)
	r.mu.Unlock()
	if track {
		r.wg.Done()
	}
}

// Start creates and starts a container, returning once its command has been
// exec'd (or failed to be: then the error carries init's message and nothing
// is left behind).
func (r *Runtime) Start(ctx context.Context, spec Spec) (Container, error) {
	spec.Labels = maps.Clone(spec.Labels)
	c, err := r.start(ctx, spec)
	if err != nil {
		return Container{}, fmt.Errorf("start container %s: %w", spec.ID, err)
	}
	return c, nil
}

func (r *Runtime) start(ctx context.Context, spec Spec) (Container, error) {
	t0 := time.Now()
	if err := spec.validate(); err != nil {
		return Container{}, err
	}
	if err := ctx.Err(); err != nil {
		return Container{}, err
	}
	if err := r.lock(spec.ID, true, ErrExists); err != nil {
		return Container{}, err
	}
	defer r.unlock(spec.ID, true)

	dir := r.dir(spec.ID)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return Container{}, ErrExists
		}
		return Container{}, err
	}
	started := false
	defer func() {
		if !started {
			if err := os.RemoveAll(dir); err != nil {
				r.log.Warn("clean up failed start", "container", spec.ID, "err", err)
			}
		}
	}()
	cfg := initConfig{
		Lower:    spec.Rootfs,
		Upper:    filepath.Join(dir, "upper"),
		Work:     filepath.Join(dir, "work"),
		Rootfs:   filepath.Join(dir, "rootfs"),
		Args:     spec.Args,
		Env:      withDefaultPath(spec.Env),
		WorkDir:  spec.WorkDir,
		Hostname: spec.Hostname,
	}
	for _, d := range []string{cfg.Upper, cfg.Work, cfg.Rootfs} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return Container{}, err
		}
	}
	logPath := filepath.Join(dir, logFileName)
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return Container{}, err
	}
	defer logf.Close() // the container has its own descriptor
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return Container{}, err
	}
	defer cfgR.Close()
	defer cfgW.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		return Container{}, err
	}
	defer errR.Close()
	defer errW.Close()

	cmd := exec.Command("/proc/self/exe", InitArg)
	// Giving the log file itself, not a writer, means no copying goroutine:
	// output keeps reaching the file after this process dies.
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{cfgR, errW} // initConfigFD, initErrorFD
	// Init gets its config from the pipe; the host environment has no
	// business in it, and the command's own environment is set at exec.
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own session keeps terminal signals aimed at the kubelet away
		// from the container, and no Pdeathsig lets it outlive the kubelet.
		Setsid:     true,
		Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC,
	}
	if err := cmd.Start(); err != nil {
		return Container{}, err
	}
	pid := cmd.Process.Pid
	kill := func() {
		cmd.Process.Kill()
		cmd.Wait()
	}
	// Only the child may hold these ends: errW must close when init execs,
	// or the read below would never see EOF.
	cfgR.Close()
	errW.Close()

	if err := sendConfig(ctx, cfgW, &cfg); err != nil {
		// A broken pipe means init died early; its message (if any) is
		// more useful than ours.
		if msg, _ := readInitError(ctx, errR); msg != "" {
			cmd.Wait()
			return Container{}, errors.New(msg)
		}
		kill()
		return Container{}, fmt.Errorf("send init config: %w", err)
	}
	msg, err := readInitError(ctx, errR)
	if err != nil {
		kill()
		return Container{}, err
	}
	if msg != "" {
		cmd.Wait()
		return Container{}, errors.New(msg)
	}

	// The child is not reaped yet, so the pid cannot have been reused and
	// /proc/<pid>/stat exists even if the command already exited.
	ps, err := readProcStat(pid)
	if err != nil {
		kill()
		return Container{}, err
	}
	// UTC without a monotonic reading: what Get decodes from state.json
	// compares equal to what Start returns.
	createdAt := t0.UTC().Round(0)
	pfd, err := openPidfd(pid, ps.StartTime)
	if err != nil {
		kill()
		return Container{}, err
	}
	st := state{
		ID:        spec.ID,
		Pid:       pid,
		StartTime: ps.StartTime,
		CreatedAt: createdAt,
		Labels:    spec.Labels,
		Rootfs:    spec.Rootfs,
		Args:      spec.Args,
		Env:       spec.Env,
		WorkDir:   spec.WorkDir,
		Hostname:  spec.Hostname,
	}
	if err := writeJSONAtomic(filepath.Join(dir, stateFileName), &st); err != nil {
		pfd.Close()
		kill()
		return Container{}, err
	}
	started = true

	ch := &child{done: make(chan struct{})}
	r.mu.Lock()
	r.children[spec.ID] = ch
	r.mu.Unlock()
	r.wg.Add(1) // cannot race Close's Wait: this Start is counted in r.wg
	go r.reap(spec.ID, cmd, pfd, ch)

	r.log.Info("container started", "container", spec.ID, "pid", pid, "duration", time.Since(t0))
	return Container{
		ID:        spec.ID,
		Pid:       pid,
		StartTime: ps.StartTime,
		Labels:    maps.Clone(spec.Labels),
		LogPath:   logPath,
		CreatedAt: createdAt,
		Status:    StatusRunning,
	}, nil
}

// deadlineOn makes blocking I/O on f (a pipe, so pollable) fail once ctx is done.
func deadlineOn(ctx context.Context, f *os.File) (stop func() bool) {
	return context.AfterFunc(ctx, func() { f.SetDeadline(time.Unix(1, 0)) })
}

func sendConfig(ctx context.Context, w *os.File, cfg *initConfig) error {
	data, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	stop := deadlineOn(ctx, w)
	defer stop()
	_, err = w.Write(data)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// readInitError reads init's error pipe to EOF: empty means the exec succeeded.
func readInitError(ctx context.Context, r *os.File) (string, error) {
	stop := deadlineOn(ctx, r)
	defer stop()
	data, err := io.ReadAll(io.LimitReader(r, 64<<10))
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("read init result: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
}

// reap waits for a container this process started and records its exit code.
func (r *Runtime) reap(id string, cmd *exec.Cmd, p *pidfd, ch *child) {
	defer r.wg.Done()
	defer close(ch.done)
	defer func() {
		r.mu.Lock()
		delete(r.children, id)
		r.mu.Unlock()
	}()
	err := p.wait(r.ctx)
	p.Close()
	if err != nil {
		// Close: leave the container running; its exit code will be lost.
		return
	}
	cmd.Wait()
	if cmd.ProcessState == nil {
		r.log.Error("reap container: no exit status", "container", id)
		return
	}
	rec := exitRecord{ExitCode: exitCode(cmd.ProcessState), FinishedAt: time.Now().UTC().Round(0)}
	if err := writeJSONAtomic(filepath.Join(r.dir(id), exitFileName), &rec); err != nil {
		r.log.Error("record container exit", "container", id, "err", err)
		return
	}
	r.log.Info("container exited", "container", id, "exitCode", rec.ExitCode)
}

// exitCode maps death by signal to 128+signo, as shells do.
func exitCode(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// Get returns the container with its status as of now. An unknown id gives
// an error wrapping ErrNotFound.
func (r *Runtime) Get(id string) (Container, error) {
	c, err := r.get(id)
	if err != nil {
		return Container{}, fmt.Errorf("get container %s: %w", id, err)
	}
	return c, nil
}

func (r *Runtime) get(id string) (Container, error) {
	if !idRE.MatchString(id) {
		return Container{}, ErrNotFound
	}
	// Look the reaper up before reading exit.json: it records the exit
	// before leaving r.children, so one of the two is always seen.
	r.mu.Lock()
	ch := r.children[id]
	r.mu.Unlock()

	dir := r.dir(id)
	var st state
	if err := readJSON(filepath.Join(dir, stateFileName), &st); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Container{}, ErrNotFound
		}
		return Container{}, err
	}
	c := Container{
		ID:        st.ID,
		Pid:       st.Pid,
		StartTime: st.StartTime,
		Labels:    st.Labels,
		LogPath:   filepath.Join(dir, logFileName),
		CreatedAt: st.CreatedAt,
	}
	for {
		var rec exitRecord
		err := readJSON(filepath.Join(dir, exitFileName), &rec)
		if err == nil {
			c.Status, c.ExitKnown, c.ExitCode, c.FinishedAt = StatusExited, true, rec.ExitCode, rec.FinishedAt
			return c, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return Container{}, err
		}
		live, err := alive(st.Pid, st.StartTime)
		if err != nil {
			return Container{}, err
		}
		if live {
			c.Status = StatusRunning
			return c, nil
		}
		if ch == nil {
			c.Status = StatusExited
			return c, nil
		}
		// Our own child has just exited: its reaper is about to record the
		// exit code, so wait for it rather than report it unknown.
		<-ch.done
		ch = nil
	}
}

// List returns every container under the root, oldest first. Directories
// without a state.json (a start in progress or interrupted) are skipped.
func (r *Runtime) List() ([]Container, error) {
	entries, err := os.ReadDir(r.root)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var out []Container
	for _, e := range entries {
		if !e.IsDir() || !idRE.MatchString(e.Name()) {
			continue
		}
		c, err := r.get(e.Name())
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list containers: %s: %w", e.Name(), err)
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Container) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Wait blocks until the container has exited and returns it. It works for
// containers started by an earlier process too, through a pidfd.
func (r *Runtime) Wait(ctx context.Context, id string) (Container, error) {
	for {
		c, err := r.get(id)
		if err != nil {
			return Container{}, fmt.Errorf("wait container %s: %w", id, err)
		}
		if c.Status == StatusExited {
			return c, nil
		}
		if err := waitExit(ctx, c); err != nil {
			return Container{}, fmt.Errorf("wait container %s: %w", id, err)
		}
		// get again: for our own child it waits for the exit code.
	}
}

// waitExit waits for c's process to exit; a pid that is gone or reused
// counts as exited.
func waitExit(ctx context.Context, c Container) error {
	p, err := openPidfd(c.Pid, c.StartTime)
	if errors.Is(err, errGone) {
		return nil
	}
	if err != nil {
		return err
	}
	defer p.Close()
	return p.wait(ctx)
}

// Stop sends SIGTERM, waits up to grace for the container to exit, then
// sends SIGKILL and waits for it; grace <= 0 kills at once. It returns as
// soon as the container has exited, and nil if it already had. Note that
// PID 1 of a PID namespace ignores SIGTERM unless it installed a handler.
func (r *Runtime) Stop(ctx context.Context, id string, grace time.Duration) error {
	if err := r.stop(ctx, id, grace); err != nil {
		return fmt.Errorf("stop container %s: %w", id, err)
	}
	return nil
}

func (r *Runtime) stop(ctx context.Context, id string, grace time.Duration) error {
	c, err := r.get(id)
	if err != nil {
		return err
	}
	if c.Status == StatusExited {
		return nil
	}
	// Signals go through the pidfd: kill(pid) could hit a process that
	// reused the pid after the container exited.
	p, err := openPidfd(c.Pid, c.StartTime)
	if errors.Is(err, errGone) {
		_, err = r.get(id) // for our own child: wait for the exit record
		return err
	}
	if err != nil {
		return err
	}
	defer p.Close()
	log := r.log.With("container", id, "pid", c.Pid)
	exited := false
	if grace > 0 {
		if err := p.signal(unix.SIGTERM); err != nil {
			return err
		}
		gctx, cancel := context.WithTimeout(ctx, grace)
		err := p.wait(gctx)
		cancel()
		if err == nil {
			exited = true
		} else if ctx.Err() != nil {
			return ctx.Err()
		} else if !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
	if !exited {
		log.Info("grace period over, killing container", "grace", grace)
		if err := p.signal(unix.SIGKILL); err != nil {
			return err
		}
		if err := p.wait(ctx); err != nil {
			return err
		}
	}
	_, err = r.get(id)
	log.Info("container stopped")
	return err
}

// Remove deletes an exited container and everything under its directory. It
// fails with ErrRunning for a running container and returns nil for an
// unknown one.
func (r *Runtime) Remove(id string) error {
	if err := r.remove(id); err != nil {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	return nil
}

func (r *Runtime) remove(id string) error {
	if !idRE.MatchString(id) {
		return nil // cannot exist; and must never reach RemoveAll
	}
	if err := r.lock(id, false, ErrBusy); err != nil {
		return err
	}
	defer r.unlock(id, false)
	c, getErr := r.get(id)
	if getErr != nil && !errors.Is(getErr, ErrNotFound) {
		return getErr
	}
	if getErr == nil && c.Status == StatusRunning {
		return ErrRunning
	}
	// Without state.json the directory is a start that died before
	// finishing; no Start can be using it now, as id is locked.
	if err := os.RemoveAll(r.dir(id)); err != nil {
		return err
	}
	if getErr == nil {
		r.log.Info("container removed", "container", id)
	}
	return nil
}
