package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
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
	root    string
	log     *slog.Logger
	cgroups cgroupVersion
	limits  limits
	node    string // the node-level cgroup's name under cgroupParent

	nodeMu    sync.Mutex
	nodeReady bool // the node-level cgroup is set up

	wg sync.WaitGroup // in-flight Starts

	mu     sync.Mutex
	closed bool
	// busy holds the IDs a Start or Remove is working on, so that a Remove
	// cannot delete the directory of a container still being started.
	busy map[string]bool
}

// New returns a Runtime keeping container state under root, created if
// missing, with the default limits (see Config). Containers already there,
// started by an earlier process, are visible through Get and List at once.
func New(root string, log *slog.Logger) (*Runtime, error) {
	return NewWithConfig(root, log, Config{})
}

// NewWithConfig is New with the node-level limits and defaults of cfg.
func NewWithConfig(root string, log *slog.Logger, cfg Config) (*Runtime, error) {
	if !haveNsexec {
		return nil, errors.New("new runtime: built without cgo; the container init needs it (install gcc, CGO_ENABLED=1)")
	}
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
	host, err := readHostCapacity()
	if err != nil {
		return nil, fmt.Errorf("new runtime: %w", err)
	}
	lim, err := resolveLimits(cfg, host)
	if err != nil {
		return nil, fmt.Errorf("new runtime: %w", err)
	}
	r := &Runtime{
		root:    abs,
		log:     log.With("component", "runtime"),
		cgroups: detectCgroups(),
		limits:  lim,
		node:    nodeCgroupName(abs),
		busy:    make(map[string]bool),
	}
	if r.cgroups == cgroupNone {
		r.log.Warn("no cgroup hierarchy: containers run without the node's memory and pids limits")
	}
	return r, nil
}

// ensureNodeCgroup sets up the node-level cgroup once, and again when
// retry says a container's cgroup found it gone.
func (r *Runtime) ensureNodeCgroup(again bool) error {
	if r.cgroups == cgroupNone {
		return nil
	}
	r.nodeMu.Lock()
	defer r.nodeMu.Unlock()
	if r.nodeReady && !again {
		return nil
	}
	if err := setupNodeCgroup(r.cgroups, cgroupRoot, r.node, r.limits.Node); err != nil {
		return err
	}
	r.nodeReady = true
	return nil
}

// containerCgroups sets up a container's cgroups with res, the node's
// defaults applied.
func (r *Runtime) containerCgroups(id string, res Resources) (cgroupSetup, error) {
	if r.cgroups == cgroupNone {
		return setupCgroups(r.cgroups, cgroupRoot, r.node, cgroupLeaf(r.root, id), res)
	}
	if res.Pids == 0 {
		res.Pids = r.limits.PodMaxPids
	}
	for try := 0; ; try++ {
		if err := r.ensureNodeCgroup(try > 0); err != nil {
			return cgroupSetup{}, err
		}
		cg, err := setupCgroups(r.cgroups, cgroupRoot, r.node, cgroupLeaf(r.root, id), res)
		if !errors.Is(err, errNoNodeCgroup) || try == 2 {
			return cg, err
		}
	}
}

// leafDirs are where id's cgroups are, whether or not they exist.
func (r *Runtime) leafDirs(id string) []string {
	dirs := nodeCgroupDirs(r.cgroups, cgroupRoot, r.node)
	for i, d := range dirs {
		dirs[i] = filepath.Join(d, cgroupLeaf(r.root, id))
	}
	return dirs
}

// tmpfsMemory is what a container's memory may reach: its own limit or
// the node's.
func (r *Runtime) tmpfsMemory(res Resources) int64 {
	if res.MemoryBytes > 0 {
		return min(res.MemoryBytes, r.limits.Node.MemoryBytes)
	}
	return r.limits.Node.MemoryBytes
}

// MemoryUsage reports a container's memory use, read from its memory
// cgroup: what an eviction manager ranks pods by.
func (r *Runtime) MemoryUsage(id string) (MemoryStats, error) {
	_, st, err := r.getState(id)
	if err == nil && st.Cgroups.Mem == "" {
		err = errors.New("no memory cgroup")
	}
	var ms MemoryStats
	if err == nil {
		ms, err = readMemoryStats(r.cgroups, st.Cgroups.Mem)
	}
	if err != nil {
		return MemoryStats{}, fmt.Errorf("memory usage of container %s: %w", id, err)
	}
	return ms, nil
}

// NodeMemoryUsage reports the memory use of all the Runtime's containers
// together, and the node-level limit it counts against.
func (r *Runtime) NodeMemoryUsage() (MemoryStats, int64, error) {
	dirs := nodeCgroupDirs(r.cgroups, cgroupRoot, r.node)
	if len(dirs) == 0 {
		return MemoryStats{}, 0, errors.New("node memory usage: no cgroup hierarchy on this host")
	}
	ms, err := readMemoryStats(r.cgroups, dirs[0])
	if errors.Is(err, fs.ErrNotExist) {
		return MemoryStats{}, r.limits.Node.MemoryBytes, nil // no container started yet
	}
	if err != nil {
		return MemoryStats{}, 0, fmt.Errorf("node memory usage: %w", err)
	}
	return ms, r.limits.Node.MemoryBytes, nil
}

// CgroupVersion reports the cgroup hierarchy New detected: "v1", "v2" or "none".
func (r *Runtime) CgroupVersion() string { return r.cgroups.String() }

// Close waits for in-flight Starts and refuses new ones. Containers keep
// running, and their shims keep recording their exits. Safe to call more
// than once.
func (r *Runtime) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.wg.Wait()
	// The node-level cgroup goes with the last container; while containers
	// run it is busy and stays.
	if err := removeNodeCgroup(r.cgroups, cgroupRoot, r.node); err != nil {
		return fmt.Errorf("close runtime: %w", err)
	}
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
	user, err := resolveUser(spec.Rootfs, spec.User)
	if err != nil {
		return Container{}, fmt.Errorf("%w: %w", ErrInvalidSpec, err)
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
	var cg cgroupSetup
	started := false
	defer func() {
		if !started {
			if err := removeCgroups(cg.Dirs); err != nil {
				r.log.Warn("clean up failed start", "container", spec.ID, "err", err)
			}
			if err := os.RemoveAll(dir); err != nil {
				r.log.Warn("clean up failed start", "container", spec.ID, "err", err)
			}
		}
	}()
	cfg := initConfig{
		Dir:   dir,
		Lower: spec.Rootfs,
		Upper: filepath.Join(dir, "upper"),
		Work:  filepath.Join(dir, "work"),
		// The overlay is mounted over the container's own directory, in
		// the container's mount namespace only: one directory fewer to
		// create and delete per container, which on a busy disk is felt.
		Rootfs:   dir,
		Args:     spec.Args,
		Env:      withDefaultPath(spec.Env),
		WorkDir:  spec.WorkDir,
		Hostname: spec.Hostname,
		User:     user,
		NetNS:    !spec.HostNetwork,
		LogMax:   spec.LogMaxBytes,
	}
	for _, d := range []string{cfg.Upper, cfg.Work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return Container{}, err
		}
	}
	cg, err = r.containerCgroups(spec.ID, spec.Resources)
	if err != nil {
		return Container{}, err
	}
	cfg.Cgroups = cg
	cfg.TmpSize, cfg.ShmSize = tmpfsSizes(r.tmpfsMemory(spec.Resources))

	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return Container{}, err
	}
	defer cfgR.Close()
	defer cfgW.Close()
	resR, resW, err := os.Pipe()
	if err != nil {
		return Container{}, err
	}
	defer resR.Close()
	defer resW.Close()

	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return Container{}, err
	}
	defer devNull.Close()
	// The launched process forks the shim and exits at once; the shim runs
	// the container and outlives this process. syscall.ForkExec rather than
	// os/exec: the latter's first use in a process probes pidfd support
	// with an extra fork, which `miniku runtime run` would pay every time.
	launcher, err := syscall.ForkExec("/proc/self/exe", []string{"/proc/self/exe", InitArg, dir}, &syscall.ProcAttr{
		// The host environment has no business in the container; the
		// command's own environment comes with the config.
		Env: []string{},
		// 3 and 4: initConfigFD, initResultFD.
		Files: []uintptr{devNull.Fd(), devNull.Fd(), devNull.Fd(), cfgR.Fd(), resW.Fd()},
		// Its own session keeps terminal signals aimed at the kubelet away
		// from the shim and the container.
		Sys: &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		return Container{}, &os.PathError{Op: "fork/exec", Path: "/proc/self/exe", Err: err}
	}
	// Only the child may hold these ends: resW must close when the shim
	// has reported, or the read below would never see EOF.
	cfgR.Close()
	resW.Close()
	err = sendConfig(ctx, cfgW, cfg.encode())
	// Not ctx: once the shim has its config it runs the container whatever
	// happens here, and a container must not run without its state.json.
	// The result comes in milliseconds; the timeout only bounds a hung mount.
	rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	res, rerr := readResult(rctx, resR)
	cancel()
	reapLauncher(launcher)
	if rerr != nil {
		return Container{}, rerr
	}
	if strings.HasPrefix(res, "E") {
		return Container{}, errors.New(strings.TrimSpace(res[1:]))
	}
	if err != nil {
		return Container{}, fmt.Errorf("send init config: %w", err)
	}
	var shimPid, pid int
	var shimStart, startTime uint64
	if _, err := fmt.Sscanf(res, "O%d %d %d %d", &shimPid, &shimStart, &pid, &startTime); err != nil {
		return Container{}, fmt.Errorf("init result %q: %w", res, err)
	}
	// UTC without a monotonic reading: what Get decodes from state.json
	// compares equal to what Start returns.
	createdAt := t0.UTC().Round(0)
	st := state{
		ID:            spec.ID,
		Pid:           pid,
		StartTime:     startTime,
		CreatedAt:     createdAt,
		Labels:        spec.Labels,
		Rootfs:        spec.Rootfs,
		Args:          spec.Args,
		Env:           spec.Env,
		WorkDir:       spec.WorkDir,
		Hostname:      spec.Hostname,
		ShimPid:       shimPid,
		ShimStartTime: shimStart,
		Cgroups:       cg,
	}
	if err := writeJSONAtomic(filepath.Join(dir, stateFileName), &st); err != nil {
		if p, perr := openPidfd(pid, startTime); perr == nil {
			p.signal(unix.SIGKILL)
			p.Close()
		}
		waitShim(context.Background(), st)
		return Container{}, err
	}
	started = true
	r.log.Debug("container started", "container", spec.ID, "pid", pid, "duration", time.Since(t0))
	return Container{
		ID:        spec.ID,
		Pid:       pid,
		StartTime: startTime,
		Labels:    maps.Clone(spec.Labels),
		LogPath:   filepath.Join(dir, logFileName),
		CreatedAt: createdAt,
		Status:    StatusRunning,
	}, nil
}

// reapLauncher waits for the launched process, which exits as soon as it
// has forked the shim (or failed to).
func reapLauncher(pid int) {
	var ws syscall.WaitStatus
	for {
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
			return
		}
	}
}

// deadlineOn makes blocking I/O on f (a pipe, so pollable) fail once ctx is done.
func deadlineOn(ctx context.Context, f *os.File) (stop func() bool) {
	return context.AfterFunc(ctx, func() { f.SetDeadline(time.Unix(1, 0)) })
}

func sendConfig(ctx context.Context, w *os.File, data []byte) error {
	stop := deadlineOn(ctx, w)
	defer stop()
	_, err := w.Write(data)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// readResult reads the launched process's result pipe to EOF.
func readResult(ctx context.Context, r *os.File) (string, error) {
	stop := deadlineOn(ctx, r)
	defer stop()
	// Success is one line: no need to wait for the shim to close the pipe.
	var data []byte
	buf := make([]byte, 4096)
	for len(data) < 64<<10 && !(len(data) > 0 && data[0] == 'O' && data[len(data)-1] == '\n') {
		n, err := r.Read(buf)
		data = append(data, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			return "", fmt.Errorf("read init result: %w", err)
		}
	}
	if len(data) == 0 {
		return "", errors.New("init exited without a result")
	}
	return string(data), nil
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
	c, _, err := r.getState(id)
	return c, err
}

// getState reads a container's state. The shim records the exit before it
// exits, so while the shim is alive the container counts as running, and
// once it is gone exit.json is there, unless the shim was killed.
func (r *Runtime) getState(id string) (Container, state, error) {
	if !idRE.MatchString(id) {
		return Container{}, state{}, ErrNotFound
	}
	dir := r.dir(id)
	var st state
	if err := readJSON(filepath.Join(dir, stateFileName), &st); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Container{}, state{}, ErrNotFound
		}
		return Container{}, state{}, err
	}
	c := Container{
		ID:        st.ID,
		Pid:       st.Pid,
		StartTime: st.StartTime,
		Labels:    st.Labels,
		LogPath:   filepath.Join(dir, logFileName),
		CreatedAt: st.CreatedAt,
	}
	for range 2 {
		var rec exitRecord
		err := readJSON(filepath.Join(dir, exitFileName), &rec)
		if err == nil {
			c.Status, c.ExitKnown, c.ExitCode, c.FinishedAt, c.OOMKilled = StatusExited, true, rec.ExitCode, rec.FinishedAt.UTC(), rec.OOMKilled
			return c, st, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return Container{}, state{}, err
		}
		shim, err := alive(st.ShimPid, st.ShimStartTime)
		if err != nil {
			return Container{}, state{}, err
		}
		if shim {
			c.Status = StatusRunning
			return c, st, nil
		}
		// The shim may have written exit.json and exited between the two
		// checks: read it once more before calling the exit lost.
	}
	// Without its shim (killed) the container may still run, unrecorded.
	live, err := alive(st.Pid, st.StartTime)
	if err != nil {
		return Container{}, state{}, err
	}
	c.Status = StatusExited
	if live {
		c.Status = StatusRunning
	}
	return c, st, nil
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

// Wait blocks until the container has exited and returns it. It works the
// same for containers started by an earlier process: it waits for the shim,
// which records the exit code before it exits.
func (r *Runtime) Wait(ctx context.Context, id string) (Container, error) {
	for {
		c, st, err := r.getState(id)
		if err != nil {
			return Container{}, fmt.Errorf("wait container %s: %w", id, err)
		}
		if c.Status == StatusExited {
			return c, nil
		}
		if err := waitShim(ctx, st); err != nil {
			return Container{}, fmt.Errorf("wait container %s: %w", id, err)
		}
	}
}

// waitShim waits for the shim to exit or, when the shim is already gone
// (killed), for the container's process; a pid that is gone or reused
// counts as exited.
func waitShim(ctx context.Context, st state) error {
	p, err := openPidfd(st.ShimPid, st.ShimStartTime)
	if errors.Is(err, errGone) {
		p, err = openPidfd(st.Pid, st.StartTime)
	}
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
// soon as the container has exited and its exit is recorded, and nil if it
// already had. SIGTERM goes to the container's init, which forwards it to
// the command; SIGKILL kills the init and with it the whole namespace.
func (r *Runtime) Stop(ctx context.Context, id string, grace time.Duration) error {
	if err := r.stop(ctx, id, grace); err != nil {
		return fmt.Errorf("stop container %s: %w", id, err)
	}
	return nil
}

func (r *Runtime) stop(ctx context.Context, id string, grace time.Duration) error {
	c, st, err := r.getState(id)
	if err != nil {
		return err
	}
	if c.Status == StatusExited {
		return nil
	}
	// Signals go through a pidfd: kill(pid) could hit a process that
	// reused the pid after the container exited.
	p, err := openPidfd(c.Pid, c.StartTime)
	if errors.Is(err, errGone) {
		return waitShim(ctx, st) // exited; the shim is recording it
	}
	if err != nil {
		return err
	}
	defer p.Close()
	log := r.log.With("container", id, "pid", c.Pid)
	if grace > 0 {
		if err := p.signal(unix.SIGTERM); err != nil {
			return err
		}
		gctx, cancel := context.WithTimeout(ctx, grace)
		err := waitShim(gctx, st)
		cancel()
		if err == nil {
			log.Info("container stopped")
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		log.Info("grace period over, killing container", "grace", grace)
	}
	if err := p.signal(unix.SIGKILL); err != nil {
		return err
	}
	if err := waitShim(ctx, st); err != nil {
		return err
	}
	log.Info("container stopped")
	return nil
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
	c, st, getErr := r.getState(id)
	if getErr != nil && !errors.Is(getErr, ErrNotFound) {
		return getErr
	}
	if getErr == nil && c.Status == StatusRunning {
		return ErrRunning
	}
	// Without state.json (an interrupted start) the cgroups are found by
	// their names.
	if err := removeCgroups(append(st.Cgroups.Dirs, r.leafDirs(id)...)); err != nil {
		return err
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
