package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Spec describes a container to start.
type Spec struct {
	ID       string            // caller-chosen, [a-z0-9]{1,64}
	Rootfs   string            // read-only image root filesystem directory, the overlay lowerdir; never written
	Args     []string          // argv; Args[0] is looked up in the container's PATH when it has no slash
	Env      []string          // KEY=VALUE; PATH defaults to DefaultPath when absent
	WorkDir  string            // absolute, default "/"; created when missing
	Hostname string            // UTS hostname inside the container, default the ID
	Labels   map[string]string // opaque to the runtime, persisted with the state

	User        string    // image config User: "uid", "uid:gid", or a name looked up in the rootfs /etc/passwd and /etc/group
	HostNetwork bool      // false: new network namespace with lo up
	Resources   Resources // cgroup limits
	LogMaxBytes int64     // rotate container.log at this size into container.log.1 (one rotated file kept); 0 = 10 MiB
}

// DefaultLogMaxBytes is the size at which container.log rotates by default.
const DefaultLogMaxBytes = 10 << 20

// DefaultPath is the PATH of a container whose Env does not set one, the
// same default as Docker's so images behave as they do elsewhere.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Status is the live state of a container.
type Status string

const (
	StatusRunning Status = "running"
	StatusExited  Status = "exited"
)

// Container is a container as the runtime sees it now.
type Container struct {
	ID         string
	Pid        int
	StartTime  uint64 // process start time, field 22 of /proc/<pid>/stat: guards against PID reuse
	Labels     map[string]string
	LogPath    string // the file holding the container's stdout+stderr
	CreatedAt  time.Time
	Status     Status
	ExitCode   int       // valid when Status==StatusExited && ExitKnown
	ExitKnown  bool      // false when the container exited while no miniku process was its parent
	FinishedAt time.Time // zero when unknown
	OOMKilled  bool      // the container was killed by the OOM killer (its cgroup's oom kill count rose)
}

// idRE and hostnameRE are matchers written out by hand rather than
// regexps: compiling those in package init cost every miniku command,
// container starts from the command line included, half a millisecond.
var (
	idRE = matcher(func(s string) bool {
		if len(s) < 1 || len(s) > 64 {
			return false
		}
		for _, c := range []byte(s) {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
				return false
			}
		}
		return true
	})
	// RFC 1123 host name: what sethostname accepts is far looser, but
	// anything else would surprise the programs inside the container.
	hostnameRE = matcher(func(s string) bool {
		for label := range strings.SplitSeq(s, ".") {
			if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
				return false
			}
			for _, c := range []byte(label) {
				if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' {
					return false
				}
			}
		}
		return true
	})
)

type matcher func(string) bool

func (m matcher) MatchString(s string) bool { return m(s) }

// validate checks s and fills in defaults.
func (s *Spec) validate() error {
	if !idRE.MatchString(s.ID) {
		return fmt.Errorf("%w: id %q must match [a-z0-9]{1,64}", ErrInvalidSpec, s.ID)
	}
	if err := checkMountPath("rootfs", s.Rootfs); err != nil {
		return err
	}
	if fi, err := os.Stat(s.Rootfs); err != nil {
		return fmt.Errorf("%w: rootfs: %w", ErrInvalidSpec, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("%w: rootfs %s is not a directory", ErrInvalidSpec, s.Rootfs)
	}
	if len(s.Args) == 0 || s.Args[0] == "" {
		return fmt.Errorf("%w: no command", ErrInvalidSpec)
	}
	for _, a := range s.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("%w: argument %q contains NUL", ErrInvalidSpec, a)
		}
	}
	for _, e := range s.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" || strings.IndexByte(e, 0) >= 0 {
			return fmt.Errorf("%w: env %q is not KEY=VALUE", ErrInvalidSpec, e)
		}
	}
	if s.WorkDir == "" {
		s.WorkDir = "/"
	}
	if !filepath.IsAbs(s.WorkDir) {
		return fmt.Errorf("%w: workdir %q is not absolute", ErrInvalidSpec, s.WorkDir)
	}
	if s.Hostname == "" {
		// An empty hostname would leave the host's name visible inside.
		s.Hostname = s.ID
	}
	if len(s.Hostname) > 64 || !hostnameRE.MatchString(s.Hostname) {
		return fmt.Errorf("%w: hostname %q", ErrInvalidSpec, s.Hostname)
	}
	if strings.IndexByte(s.WorkDir, 0) >= 0 || strings.IndexByte(s.User, 0) >= 0 {
		return fmt.Errorf("%w: workdir or user contains NUL", ErrInvalidSpec)
	}
	if r := s.Resources; r.CPUMilli < 0 || r.MemoryBytes < 0 || r.Pids < 0 {
		return fmt.Errorf("%w: negative resource limit %+v", ErrInvalidSpec, r)
	}
	if s.LogMaxBytes < 0 {
		return fmt.Errorf("%w: negative log size %d", ErrInvalidSpec, s.LogMaxBytes)
	}
	if s.LogMaxBytes == 0 {
		s.LogMaxBytes = DefaultLogMaxBytes
	}
	return nil
}

// checkMountPath rejects paths that cannot be written into overlay mount
// options, whose separators are ',' and ':'.
func checkMountPath(what, p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("%w: %s %q is not absolute", ErrInvalidSpec, what, p)
	}
	if strings.ContainsAny(p, ",:\\\x00") {
		return fmt.Errorf("%w: %s %q contains one of , : \\ which overlayfs cannot take", ErrInvalidSpec, what, p)
	}
	return nil
}

// withDefaultPath returns env with PATH=DefaultPath appended when it sets no PATH.
func withDefaultPath(env []string) []string {
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			return env
		}
	}
	return append(env[:len(env):len(env)], "PATH="+DefaultPath)
}
