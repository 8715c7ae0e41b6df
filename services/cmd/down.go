//go:build linux

package cmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	mkrt "github.com/miniku/miniku/runtime"
)

// Containers outlive the control plane by design (a restart of `up`
// adopts them), so stopping them is a command of its own, as k3s has
// k3s-killall.sh. A kubelet holds its node directory's lock while it runs:
// `down` and `up` never stop the containers of a node a live kubelet owns.

// nodeLockName is the lock file a kubelet holds in its node directory.
const nodeLockName = "kubelet.lock"

// storeLockName is the lock file the NATS server of `up`/`nats` holds in
// the data dir.
const storeLockName = "store.lock"

// errLocked says another process holds a lock.
var errLocked = errors.New("in use by another process")

// dirLock is a held flock(2) lock; the kernel drops it when the process
// dies, so a kill -9 leaves nothing stale behind.
type dirLock struct{ f *os.File }

// tryLock takes the lock file path without waiting. The file holds the
// holder's PID, for the message of whoever finds it taken.
func tryLock(path string) (*dirLock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			holder, _ := os.ReadFile(path)
			if pid := strings.TrimSpace(string(holder)); pid != "" {
				return nil, fmt.Errorf("%s: %w (pid %s)", path, errLocked, pid)
			}
			return nil, fmt.Errorf("%s: %w", path, errLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// The PID is only for messages: the flock is the lock.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dirLock{f: f}, nil
}

func (l *dirLock) Release() {
	if l != nil && l.f != nil {
		_ = l.f.Close() // closing drops the flock
		l.f = nil
	}
}

func nodesDir(dataDir string) string { return filepath.Join(dataDir, "nodes") }

func nodeContainersDir(dataDir, node string) string {
	return filepath.Join(nodesDir(dataDir), node, "containers")
}

func lockNode(dataDir, node string) (*dirLock, error) {
	l, err := tryLock(filepath.Join(nodesDir(dataDir), node, nodeLockName))
	if errors.Is(err, errLocked) {
		return nil, fmt.Errorf("node %s of %s is run by a kubelet (a 'miniku up' or 'miniku kubelet'): %w", node, dataDir, err)
	}
	return l, err
}

// lockStore takes the data dir's store lock for the NATS server of `up`
// or `nats`, so that `down --purge` never removes a store in use.
func lockStore(dataDir string) (*dirLock, error) {
	l, err := tryLock(filepath.Join(dataDir, storeLockName))
	if errors.Is(err, errLocked) {
		return nil, fmt.Errorf("the store of %s is in use by another 'miniku up' or 'miniku nats': %w", dataDir, err)
	}
	return l, err
}

// knownNodes lists the node directories under dataDir, sorted.
func knownNodes(dataDir string) ([]string, error) {
	entries, err := os.ReadDir(nodesDir(dataDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list nodes of %s: %w", dataDir, err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out, nil
}

// stopNodeContainers stops and removes every container of node (the
// caller holds the node's lock): the shims outlive their kubelet, so
// through the runtime's Stop, which signals by pidfd and waits for the
// shim to record the exit; Remove then deletes the cgroups and the
// container's directory (its mounts live in the container's own mount
// namespace and go with its last process). Starts interrupted by a kill
// are swept as the kubelet's rediscovery does. It returns how many
// containers were running.
func stopNodeContainers(ctx context.Context, dataDir, node string, grace time.Duration, log *slog.Logger) (running int, err error) {
	root := nodeContainersDir(dataDir, node)
	if _, err := os.Stat(root); errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	rt, err := mkrt.New(root, log.With("node", node))
	if err != nil {
		return 0, fmt.Errorf("node %s: %w", node, err)
	}
	// Close removes the node's cgroup once its last container is gone.
	defer func() {
		if cerr := rt.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("node %s: %w", node, cerr))
		}
	}()
	swept, err := rt.SweepInterrupted()
	if err != nil {
		return 0, fmt.Errorf("node %s: %w", node, err)
	}
	list, err := rt.List()
	if err != nil {
		return 0, fmt.Errorf("node %s: list containers: %w", node, err)
	}
	running = len(swept)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, c := range list {
		if c.Status == mkrt.StatusRunning {
			running++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := rt.Stop(ctx, c.ID, grace)
			if err == nil {
				err = rt.Remove(c.ID)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("node %s: %w", node, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return running, errors.Join(errs...)
}

// runningContainers counts the running containers of nodes under dataDir.
func runningContainers(dataDir string, nodes []string) (int, error) {
	n := 0
	var errs []error
	for _, node := range nodes {
		root := nodeContainersDir(dataDir, node)
		if _, err := os.Stat(root); errors.Is(err, os.ErrNotExist) {
			continue
		}
		rt, err := mkrt.New(root, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", node, err))
			continue
		}
		list, err := rt.List()
		if err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", node, err))
		}
		if err := rt.Close(); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", node, err))
		}
		for _, c := range list {
			if c.Status == mkrt.StatusRunning {
				n++
			}
		}
	}
	return n, errors.Join(errs...)
}

// upNodeName says whether node is a name `up --nodes` gives (node-N):
// other node directories belong to kubelets started on their own, which
// adopt their containers when they start again.
func upNodeName(node string) bool {
	n, ok := strings.CutPrefix(node, "node-")
	i, err := strconv.Atoi(n)
	return ok && err == nil && i > 0 && strconv.Itoa(i) == n
}

// staleNodeGrace is how long a container of a node `up` no longer runs
// has to exit after SIGTERM.
const staleNodeGrace = 5 * time.Second

// stopStaleNodes stops the containers of the up nodes (node-N) that
// dataDir has and this `up` no longer runs (it ran with more --nodes
// before): nothing else would ever stop them. A node whose kubelet runs in
// another process is left alone.
func stopStaleNodes(ctx context.Context, dataDir string, keep []string, grace time.Duration, log *slog.Logger) error {
	nodes, err := knownNodes(dataDir)
	if err != nil {
		return err
	}
	var errs []error
	for _, node := range nodes {
		if slices.Contains(keep, node) || !upNodeName(node) {
			continue
		}
		l, err := lockNode(dataDir, node)
		if errors.Is(err, errLocked) {
			log.Info("leaving the containers of a node another kubelet runs", "node", node, "err", err)
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n, err := stopNodeContainers(ctx, dataDir, node, grace, log)
		l.Release()
		if err != nil {
			errs = append(errs, err)
		}
		if n > 0 {
			log.Warn("stopped the containers of a node this up no longer runs", "node", node, "containers", n, "nodes", strings.Join(keep, ","))
		}
	}
	return errors.Join(errs...)
}

func cmdDown(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("down", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "/var/lib/miniku", "data dir of the 'miniku up' whose containers to stop")
	purge := fs.Bool("purge", false, "also remove the data dir: the store (every object), images, tokens and credentials")
	grace := fs.Duration("grace", 5*time.Second, "time each container has to exit after SIGTERM before SIGKILL")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	if err := parse(fs, args); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: %w", *logLevel, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	if _, err := os.Stat(*dataDir); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(stderr, "no data dir %s: nothing to stop\n", *dataDir)
		return nil
	} else if err != nil {
		return fmt.Errorf("down: data dir: %w", err)
	}
	nodes, err := knownNodes(*dataDir)
	if err != nil {
		return fmt.Errorf("down: %w", err)
	}
	// Every lock first: with a kubelet still running, it would restart
	// what we stop, so refuse before stopping anything.
	var locks []*dirLock
	defer func() {
		for _, l := range locks {
			l.Release()
		}
	}()
	for _, node := range nodes {
		l, err := lockNode(*dataDir, node)
		if err != nil {
			return fmt.Errorf("down: %w: stop it first (Ctrl-C)", err)
		}
		locks = append(locks, l)
	}
	if *purge {
		l, err := lockStore(*dataDir)
		if err != nil {
			return fmt.Errorf("down --purge: %w: stop it first", err)
		}
		locks = append(locks, l)
	}
	total := 0
	var errs []error
	for _, node := range nodes {
		n, err := stopNodeContainers(ctx, *dataDir, node, *grace, log)
		total += n
		log.Info("stopped the containers of a node", "node", node, "containers", n)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("down: %w", err)
	}
	fmt.Fprintf(stderr, "stopped %d containers on %d nodes of %s\n", total, len(nodes), *dataDir)
	if *purge {
		if err := os.RemoveAll(*dataDir); err != nil {
			return fmt.Errorf("down --purge: %w", err)
		}
		fmt.Fprintf(stderr, "removed %s\n", *dataDir)
	}
	return nil
}
