package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// InitArg is argv[1] with which the miniku binary re-execs itself as a
// container's init. main must call Init when it sees it, before anything else.
const InitArg = "runtime-init"

// File descriptors of the pipes Start passes to Init through cmd.ExtraFiles.
const (
	initConfigFD = 3 // Start writes initConfig as JSON, then closes
	initErrorFD  = 4 // close-on-exec: EOF means the exec succeeded, bytes are the failure
)

// initConfig is what Init needs to build the container, sent by Start.
type initConfig struct {
	Lower    string   `json:"lower"`
	Upper    string   `json:"upper"`
	Work     string   `json:"work"`
	Rootfs   string   `json:"rootfs"` // the overlay mountpoint
	Args     []string `json:"args"`
	Env      []string `json:"env"`
	WorkDir  string   `json:"workDir"`
	Hostname string   `json:"hostname"`
}

// Init is the container's init, run as PID 1 of the new namespaces by the
// re-executed binary. It never returns: it either execs the container's
// command or reports the failure to Start and exits 1.
func Init() {
	// Mounts, chdir and exec must all happen from one thread so that
	// nothing else runs in between on this process's behalf.
	goruntime.LockOSThread()
	errPipe := os.NewFile(initErrorFD, "init-error")
	err := errors.New("runtime-init must be started by the runtime, in new namespaces")
	// Anywhere but PID 1 of a fresh PID namespace this would remount and
	// pivot the caller's own root: a mistyped command line must not do that.
	if os.Getpid() == 1 {
		err = initContainer()
	}
	if err != nil {
		if _, werr := errPipe.WriteString(err.Error()); werr != nil {
			// No Start is listening: the log is the only place left.
			fmt.Fprintf(os.Stderr, "miniku init: %v\n", err)
		}
		os.Exit(1)
	}
	// unix.Exec only returns on failure, which initContainer reported.
	os.Exit(1)
}

func initContainer() error {
	var cfg initConfig
	f := os.NewFile(initConfigFD, "init-config")
	err := json.NewDecoder(f).Decode(&cfg)
	f.Close()
	if err != nil {
		return fmt.Errorf("read init config: %w", err)
	}
	// Close-on-exec for everything past stderr: the error pipe must close
	// when the exec succeeds to give Start its EOF, and descriptors the
	// kubelet inherited without close-on-exec (from a shell, a CI harness)
	// would otherwise leak into every container.
	if err := closeExecFrom(initErrorFD); err != nil {
		return err
	}
	if err := setupRoot(&cfg); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		return &os.SyscallError{Syscall: "sethostname", Err: err}
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return err
	}
	if err := os.Chdir(cfg.WorkDir); err != nil {
		return err
	}
	path, err := lookPath(cfg.Args[0], cfg.Env)
	if err != nil {
		return err
	}
	unix.Umask(0o022)
	if err := unix.Exec(path, cfg.Args, cfg.Env); err != nil {
		return fmt.Errorf("exec %q: %w", cfg.Args[0], err)
	}
	return nil
}

// setupRoot mounts the container's root filesystem and pivots into it.
func setupRoot(cfg *initConfig) error {
	// The device nodes' modes must not depend on the umask we inherited.
	unix.Umask(0)
	// Private, not just slave: the container's mounts must never reach the
	// host, and host mounts appearing later must not leak in either.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return mountErr("make / private", "/", err)
	}
	opts := "lowerdir=" + cfg.Lower + ",upperdir=" + cfg.Upper + ",workdir=" + cfg.Work
	if err := unix.Mount("overlay", cfg.Rootfs, "overlay", 0, opts); err != nil {
		return mountErr("mount overlay", cfg.Rootfs, err)
	}
	root := cfg.Rootfs
	proc := filepath.Join(root, "proc")
	if err := os.MkdirAll(proc, 0o555); err != nil {
		return err
	}
	if err := unix.Mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return mountErr("mount proc", proc, err)
	}
	if err := setupDev(filepath.Join(root, "dev")); err != nil {
		return err
	}
	// pivot_root(".", ".") stacks the old root on top of the new one, so a
	// lazy unmount of "." removes it without needing a put_old directory
	// inside the image.
	if err := unix.Chdir(root); err != nil {
		return &os.PathError{Op: "chdir", Path: root, Err: err}
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return &os.PathError{Op: "pivot_root", Path: root, Err: err}
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return mountErr("unmount old root", ".", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return &os.PathError{Op: "chdir", Path: "/", Err: err}
	}
	return nil
}

// devices are created with mknod rather than bind-mounted from the host:
// cheaper, and it keeps the host's /dev out of the container.
var devices = []struct {
	name         string
	major, minor uint32
}{
	{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
}

func setupDev(dev string) error {
	if err := os.MkdirAll(dev, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		return mountErr("mount tmpfs", dev, err)
	}
	for _, d := range devices {
		p := filepath.Join(dev, d.name)
		if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(d.major, d.minor))); err != nil {
			return &os.PathError{Op: "mknod", Path: p, Err: err}
		}
	}
	for _, l := range [][2]string{
		{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"},
	} {
		if err := os.Symlink(l[0], filepath.Join(dev, l[1])); err != nil {
			return err
		}
	}
	for _, d := range []string{"pts", "shm"} {
		if err := os.Mkdir(filepath.Join(dev, d), 0o755); err != nil {
			return err
		}
	}
	return nil
}

func closeExecFrom(first int) error {
	err := unix.CloseRange(uint(first), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	// close_range's CLOEXEC flag needs Linux 5.11.
	entries, rerr := os.ReadDir("/proc/self/fd")
	if rerr != nil {
		return fmt.Errorf("close_range: %w; list fds: %w", err, rerr)
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= first {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}

func mountErr(op, path string, err error) error {
	return &os.PathError{Op: op, Path: path, Err: err}
}

// lookPath resolves file in the PATH of env, inside the container's root.
// exec.LookPath would use this process's PATH, which is the host's.
func lookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	path := DefaultPath
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec %q: %w", file, errNotInPath)
}
