package runtime

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// InitArg is argv[1] with which the runtime executes its own binary
// (/proc/self/exe) as a container's shim and init. That work is done in C by
// a constructor in nsexec.c before the Go runtime starts, so such a process
// never reaches main; main still checks for InitArg and calls Init, which
// only reports that the constructor did not take over.
const InitArg = "runtime-init"

// File descriptors Start passes to the launched process.
const (
	initConfigFD = 3 // Start writes initConfig.encode, then closes
	initResultFD = 4 // "O<shim pid> <start> <pid> <start>\n" or "E<message>"
)

// initConfig is everything the shim and the init need, sent by Start.
type initConfig struct {
	Dir      string // the container's directory: log, exit.json
	Lower    string
	Upper    string
	Work     string
	Rootfs   string // the overlay mountpoint
	Args     []string
	Env      []string
	WorkDir  string
	Hostname string
	User     ids
	NetNS    bool
	Cgroups  cgroupSetup
	LogMax   int64
	TmpSize  int64 // bytes of the /tmp tmpfs; 0: the kernel's default
	ShmSize  int64 // bytes of the /dev/shm tmpfs; 0: 64 MiB
}

// encode writes "key\0value\0" pairs, trivial to parse in C; repeated keys
// make lists. validate rejected NULs in every value that comes from a Spec.
func (c *initConfig) encode() []byte {
	var b bytes.Buffer
	kv := func(k, v string) {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(v)
		b.WriteByte(0)
	}
	kv("dir", c.Dir)
	kv("lower", c.Lower)
	kv("upper", c.Upper)
	kv("work", c.Work)
	kv("rootfs", c.Rootfs)
	kv("workdir", c.WorkDir)
	kv("hostname", c.Hostname)
	for _, a := range c.Args {
		kv("arg", a)
	}
	for _, e := range c.Env {
		kv("env", e)
	}
	kv("uid", strconv.FormatUint(uint64(c.User.UID), 10))
	kv("gid", strconv.FormatUint(uint64(c.User.GID), 10))
	for _, g := range c.User.Groups {
		kv("gids", strconv.FormatUint(uint64(g), 10))
	}
	if c.NetNS {
		kv("netns", "1")
	}
	for _, p := range c.Cgroups.Procs {
		kv("cgroup", p)
	}
	if c.Cgroups.OOM != "" {
		kv("oom", c.Cgroups.OOM)
	}
	kv("logmax", strconv.FormatInt(c.LogMax, 10))
	kv("tmpsize", strconv.FormatInt(c.TmpSize, 10))
	kv("shmsize", strconv.FormatInt(c.ShmSize, 10))
	return b.Bytes()
}

// Init exists for main's hook. The C constructor handles every execution
// with InitArg and never returns, so reaching Init means it was bypassed.
func Init() {
	fmt.Fprintln(os.Stderr, "miniku runtime-init: must be started by the runtime, in new namespaces")
	os.Exit(1)
}
