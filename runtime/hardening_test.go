package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/miniku/miniku/runtime/image/imagetest"
)

// fullRootfs is a busybox rootfs with every applet linked and an
// /etc/passwd and /etc/group with a few users.
func fullRootfs(tb testing.TB) string {
	tb.Helper()
	dir := imagetest.BusyboxRootfs(tb)
	out, err := exec.Command(imagetest.BusyboxPath, "--list").Output()
	if err != nil {
		tb.Fatal(err)
	}
	for _, a := range strings.Fields(string(out)) {
		if a == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil && !errors.Is(err, os.ErrExist) {
			tb.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1001:web:/srv:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
		"etc/group":  "root:x:0:\nweb:x:1001:\nlogs:x:1500:web,other\nnogroup:x:65534:\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

// TestEscapeAttempts runs the usual ways out of a container and checks that
// each one fails, inside (the script reports) and outside (the host file).
func TestEscapeAttempts(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	hostFile := filepath.Join(t.TempDir(), "host-secret")
	if err := os.WriteFile(hostFile, []byte("host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	script := `
HOSTFILE=` + hostFile + `
n=$(ls -d /proc/[0-9]* | wc -l); [ "$n" -le 5 ] || echo "ESCAPED: sees $n processes"
echo pwned > /proc/1/root$HOSTFILE 2>/dev/null && echo "ESCAPED: wrote via /proc/1/root"
for p in /proc/[0-9]*; do cat $p/root$HOSTFILE 2>/dev/null && echo "ESCAPED: read via $p/root"; done
cat $HOSTFILE 2>/dev/null && echo "ESCAPED: host path visible"
mount -t tmpfs none /mnt 2>/dev/null && echo "ESCAPED: mount tmpfs"
mount -t proc proc /tmp 2>/dev/null && echo "ESCAPED: mount proc"
mount -o remount,rw /proc/sys 2>/dev/null && echo "ESCAPED: remount /proc/sys"
unshare -m true 2>/dev/null && echo "ESCAPED: unshare"
mkdir -p /jail && cd /jail && chroot ../../../.. /bin/cat $HOSTFILE 2>/dev/null && echo "ESCAPED: chroot"
cd /
mknod /tmp/sda b 8 0 2>/dev/null && echo "ESCAPED: mknod block device"
echo garbage > /tmp/m.ko
insmod /tmp/m.ko 2>/dev/null && echo "ESCAPED: insmod"
grep -q "^CapBnd:	00000000a00405fb$" /proc/self/status || echo "ESCAPED: bounding set $(grep CapBnd /proc/self/status)"
echo 1 > /proc/sys/vm/drop_caches 2>/dev/null && echo "ESCAPED: sysctl write"
test -w /proc/sysrq-trigger && echo "ESCAPED: sysrq-trigger writable"
[ -z "$(cat /proc/keys 2>/dev/null)" ] || echo "ESCAPED: /proc/keys readable"
hostname evil 2>/dev/null && echo "ESCAPED: hostname"
ip link add dummy0 type dummy 2>/dev/null && echo "ESCAPED: ip link add"
grep -q "^CapEff:	00000000a00405fb$" /proc/self/status || echo "ESCAPED: capabilities $(grep CapEff /proc/self/status)"
grep -q "^NoNewPrivs:	1$" /proc/self/status || echo "ESCAPED: no_new_privs not set"
reboot -f 2>/dev/null
echo "survived reboot"
echo done`
	c, out := run(t, r, Spec{ID: "escape", Rootfs: fullRootfs(t), Args: []string{"sh", "-c", script}})
	if strings.Contains(out, "ESCAPED") || !strings.Contains(out, "survived reboot\ndone") {
		t.Errorf("escape attempts: exit %d, output:\n%s", c.ExitCode, out)
	}
	if data, _ := os.ReadFile(hostFile); string(data) != "host\n" {
		t.Errorf("host file now %q", data)
	}
	if h, _ := os.Hostname(); h != host {
		t.Errorf("host name changed to %q", h)
	}
}

func TestNetworkNamespace(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	hostNS, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	rootfs := fullRootfs(t)
	_, out := run(t, r, Spec{ID: "netns", Rootfs: rootfs, Args: []string{"sh", "-c", "readlink /proc/self/ns/net; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags; ls /sys/class/net"}})
	lines := strings.Fields(out)
	if len(lines) != 4 || lines[0] == hostNS || lines[3] != "lo" {
		t.Errorf("default network: %q; want its own namespace (host's is %s) with only lo", lines, hostNS)
	}
	// IFF_UP is 0x1.
	if flags, err := strconv.ParseUint(strings.TrimPrefix(lines[2], "0x"), 16, 32); err != nil || flags&1 == 0 {
		t.Errorf("lo flags %q: not up", lines[2])
	}
	_, out = run(t, r, Spec{ID: "hostnet", Rootfs: rootfs, HostNetwork: true, Args: []string{"readlink", "/proc/self/ns/net"}})
	if strings.TrimSpace(out) != hostNS {
		t.Errorf("hostNetwork: namespace %q, want the host's %s", out, hostNS)
	}
}

func TestUser(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	rootfs := fullRootfs(t)
	for i, tc := range []struct{ user, want string }{
		{"", "0 0 0"},
		{"web", "1000 1001 1001 1500"},
		{"1000", "1000 1001 1001 1500"},
		{"web:0", "1000 0 0"},
		{"2000", "2000 0 0"},
		{"2000:3000", "2000 3000 3000"},
		{"nobody:web", "65534 1001 1001"},
	} {
		_, out := run(t, r, Spec{ID: fmt.Sprintf("user%d", i), Rootfs: rootfs, User: tc.user,
			Args: []string{"sh", "-c", `echo $(id -u) $(id -g) $(id -G); grep CapEff /proc/self/status`}})
		got, caps, _ := strings.Cut(out, "\n")
		if got != tc.want {
			t.Errorf("user %q: id %q, want %q", tc.user, got, tc.want)
		}
		if tc.user != "" && !strings.Contains(caps, "0000000000000000") {
			t.Errorf("user %q keeps capabilities: %q", tc.user, caps)
		}
	}
	for _, bad := range []string{"nosuch", "web:nosuch"} {
		if _, err := r.Start(context.Background(), Spec{ID: "baduser", Rootfs: rootfs, User: bad, Args: []string{"true"}}); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("user %q: %v, want ErrInvalidSpec", bad, err)
		}
	}
}

func TestLogRotationAndPartialLines(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	const max = 4096
	c, _ := run(t, r, Spec{ID: "rotate", LogMaxBytes: max, Args: []string{"sh", "-c",
		`i=0; while [ $i -lt 300 ]; do echo "line $i"; i=$((i+1)); done`}})
	cur, err := os.ReadFile(c.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(c.LogPath + ".1")
	if err != nil {
		t.Fatalf("no rotated log: %v", err)
	}
	if len(cur) > max || len(old) > max {
		t.Errorf("log sizes %d and %d, want at most %d", len(cur), len(old), max)
	}
	if !strings.HasSuffix(logText(t, string(cur)), "line 299\n") {
		t.Errorf("current log does not end with the last line: %q", cur)
	}
	if _, err := os.Stat(c.LogPath + ".2"); !os.IsNotExist(err) {
		t.Errorf("more than one rotated file kept: %v", err)
	}

	// A 40000-byte line leaves in 16 KiB parts tagged P, then the rest F.
	c, out := run(t, r, Spec{ID: "long", Args: []string{"sh", "-c", `head -c 40000 /dev/zero | tr '\0' x; echo; echo after`}})
	if want := strings.Repeat("x", 40000) + "\nafter\n"; out != want {
		t.Errorf("long line came back as %d bytes, want %d", len(out), len(want))
	}
	raw, _ := os.ReadFile(c.LogPath)
	var tags []string
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		tags = append(tags, strings.Fields(l)[2])
	}
	if strings.Join(tags, "") != "PPFF" {
		t.Errorf("tags %v, want P P F F", tags)
	}
}

// TestShimForwardsSignals: a signal to the shim reaches the container.
func TestShimForwardsSignals(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	c := mustStart(t, r, Spec{ID: "fwd", Args: []string{"sh", "-c", `trap "exit 5" HUP; echo ready; while true; do sleep 0.1; done`}})
	logContains(t, c, "ready")
	var st state
	if err := readJSON(filepath.Join(r.dir("fwd"), stateFileName), &st); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(st.ShimPid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if c := mustWait(t, r, "fwd"); c.ExitCode != 5 {
		t.Errorf("after SIGHUP to the shim: %+v, want exit code 5", c)
	}
}

func requireCgroups(tb testing.TB, r *Runtime) {
	tb.Helper()
	if r.cgroups == cgroupNone {
		tb.Skip("no cgroup hierarchy on this host")
	}
}

func TestMemoryLimitOOMKilled(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	requireCgroups(t, r)
	c, _ := run(t, r, Spec{ID: "hog", Resources: Resources{MemoryBytes: 16 << 20},
		Args: []string{"sh", "-c", "x=a; while true; do x=$x$x; done"}})
	if !c.OOMKilled || c.ExitCode != 128+int(syscall.SIGKILL) {
		t.Errorf("memory hog: %+v, want OOMKilled with exit code 137", c)
	}
	c, _ = run(t, r, Spec{ID: "modest", Resources: Resources{MemoryBytes: 16 << 20}, Args: []string{"true"}})
	if c.OOMKilled || c.ExitCode != 0 {
		t.Errorf("modest container: %+v", c)
	}
}

// TestForkBomb: the pids limit holds a fork bomb, the CPU limit keeps it
// from eating the machine, and Stop ends it all.
func TestForkBomb(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	requireCgroups(t, r)
	const limit = 32
	c := mustStart(t, r, Spec{ID: "bomb", Resources: Resources{Pids: limit, CPUMilli: 200, MemoryBytes: 128 << 20},
		Args: []string{"sh", "-c", "b() { b | b & }; b; sleep 1000"}})
	var st state
	if err := readJSON(filepath.Join(r.dir("bomb"), stateFileName), &st); err != nil {
		t.Fatal(err)
	}
	var pidsDir, cpuDir string
	for _, d := range st.Cgroups.Dirs {
		if _, err := os.Stat(filepath.Join(d, "pids.max")); err == nil {
			pidsDir = d
		}
		if _, err := os.Stat(filepath.Join(d, "cpu.cfs_quota_us")); err == nil {
			cpuDir = d
		} else if _, err := os.Stat(filepath.Join(d, "cpu.max")); err == nil {
			cpuDir = d
		}
	}
	if pidsDir == "" || cpuDir == "" {
		t.Fatalf("no pids or cpu cgroup among %q", st.Cgroups.Dirs)
	}
	if q, _ := os.ReadFile(filepath.Join(cpuDir, "cpu.cfs_quota_us")); r.cgroups == cgroupV1 && strings.TrimSpace(string(q)) != "20000" {
		t.Errorf("cpu.cfs_quota_us = %q, want 20000 for 200m", q)
	}
	// The shell reports the forks the limit refused.
	logContains(t, c, "can't fork")
	data, err := os.ReadFile(filepath.Join(pidsDir, "pids.current"))
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := strconv.Atoi(strings.TrimSpace(string(data))); n > limit || n < 1 {
		t.Errorf("pids.current %d with the bomb at the limit %d", n, limit)
	}
	// The count itself may be well under the limit by now: the container's
	// init reaps the bomb's dead, which used to stay as zombies and hold
	// their pids. That the limit refused forks is in pids.events.
	events, err := os.ReadFile(filepath.Join(pidsDir, "pids.events"))
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(string(events)); len(f) < 2 || f[0] != "max" || f[1] == "0" {
		t.Errorf("pids.events %q: want forks refused at the limit", events)
	}
	// The host still forks.
	if err := exec.Command("true").Run(); err != nil {
		t.Errorf("host cannot run a process: %v", err)
	}
	if err := r.Stop(context.Background(), "bomb", 0); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove("bomb"); err != nil {
		t.Fatal(err)
	}
	for _, d := range st.Cgroups.Dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("cgroup %s left: %v", d, err)
		}
	}
}

// hostResources counts what containers could leave behind on the host.
func hostResources(tb testing.TB, r *Runtime) map[string]int {
	tb.Helper()
	counts := map[string]int{"mounts": len(mountsUnder(tb, r.root))}
	entries, _ := os.ReadDir(r.root)
	counts["state dirs"] = len(entries)
	leaf := "*-" + strings.TrimPrefix(cgroupLeaf(r.root, ""), "-")
	leafs, _ := filepath.Glob(filepath.Join(cgroupRoot, "*", cgroupParent, r.node, leaf))
	leafs2, _ := filepath.Glob(filepath.Join(cgroupRoot, cgroupParent, r.node, leaf))
	counts["cgroups"] = len(leafs) + len(leafs2)
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if data, err := os.ReadFile(p); err == nil && strings.Contains(string(data), r.root) {
			counts["shims"]++
		}
	}
	return counts
}

// TestCleanupCycles: 100 create/delete cycles leave no mount, cgroup,
// directory or process behind.
func TestCleanupCycles(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	requireCgroups(t, r)
	rootfs := imagetest.BusyboxRootfs(t)
	before := hostResources(t, r)
	for i := range 100 {
		id := fmt.Sprintf("cycle%d", i)
		spec := Spec{ID: id, Rootfs: rootfs, Args: []string{"sh", "-c", "echo hi > /tmp/x; echo out"},
			Resources: Resources{MemoryBytes: 32 << 20, Pids: 64, CPUMilli: 500}}
		if i%2 == 1 {
			spec.Args = []string{"sleep", "1000"} // stopped, not exited
		}
		cleanupContainer(t, r, id) // only matters when the test fails half-way
		if _, err := r.Start(context.Background(), spec); err != nil {
			t.Fatal(err)
		}
		if err := r.Stop(context.Background(), id, 0); err != nil {
			t.Fatal(err)
		}
		if err := r.Remove(id); err != nil {
			t.Fatal(err)
		}
	}
	after := hostResources(t, r)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: %d before 100 cycles, %d after", k, v, after[k])
		}
	}
	if after["cgroups"] != 0 || after["state dirs"] != 0 || after["shims"] != 0 {
		t.Errorf("left behind: %v", after)
	}
}

// TestShimMemory: what a running container costs the host besides its own
// processes is its shim and its init (PID 1, the reaper), which together
// must stay under 1 MiB PSS.
func TestShimMemory(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	c := mustStart(t, r, Spec{ID: "pss", Args: []string{"sh", "-c", "echo ready; exec sleep 1000"}})
	logContains(t, c, "ready")
	var st state
	if err := readJSON(filepath.Join(r.dir("pss"), stateFileName), &st); err != nil {
		t.Fatal(err)
	}
	shim, init := pssKiB(t, st.ShimPid), pssKiB(t, c.Pid)
	t.Logf("PSS: shim %d KiB, init %d KiB, together %d KiB", shim, init, shim+init)
	if shim <= 0 || init <= 0 || shim+init >= 1024 {
		t.Errorf("PSS: shim %d KiB + init %d KiB, want both > 0 and together under 1024", shim, init)
	}
}

func pssKiB(tb testing.TB, pid int) int {
	tb.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "Pss:" {
			pss, _ := strconv.Atoi(f[1])
			return pss
		}
	}
	tb.Fatalf("no Pss in /proc/%d/smaps_rollup", pid)
	return 0
}

// syscallProbe tries each syscall the default seccomp filter refuses, with
// arguments that without the filter succeed or fail with an error other
// than EPERM where one exists, and prints "<name> <errno>" (0: success).
const syscallProbe = `#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char *name, long r) { printf("%s %d\n", name, r < 0 ? errno : 0); }
static void *thread(void *a) { return a; }

int main(void) {
	long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
	if (pid == 0) _exit(0);
	if (pid > 0) waitpid(pid, NULL, 0);
	report("clone_user", pid);
	report("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0));
	report("add_key", syscall(SYS_add_key, "user", "miniku", "x", 1, -2 /* process keyring */));
	report("request_key", syscall(SYS_request_key, "user", "miniku-nosuch", NULL, 0));
	report("bpf", syscall(SYS_bpf, 1000, NULL, 0));
	report("io_uring_setup", syscall(SYS_io_uring_setup, 0, NULL));
	report("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
	report("open_by_handle_at", syscall(SYS_open_by_handle_at, -1, NULL, 0));
	report("clone3", syscall(SYS_clone3, NULL, 0));
	report("raw_socket", socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
	// What stays allowed: fork, threads (clone3 falls back to clone).
	pid = fork();
	if (pid == 0) _exit(0);
	if (pid > 0) waitpid(pid, NULL, 0);
	report("fork", pid);
	pthread_t t;
	int e = pthread_create(&t, NULL, thread, NULL);
	if (e == 0) pthread_join(t, NULL);
	errno = e;
	report("thread", e ? -1 : 0);
	// Last: once in a user namespace of its own the process would have lost
	// the capabilities the raw socket needs, and could not nest another.
	report("unshare_user", syscall(SYS_unshare, CLONE_NEWUSER));
	return 0;
}
`

// buildProbe compiles syscallProbe, statically, into rootfs/bin/probe.
func buildProbe(t *testing.T, rootfs string) {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc not found: the runtime's cgo build needs it anyway")
	}
	src := filepath.Join(t.TempDir(), "probe.c")
	if err := os.WriteFile(src, []byte(syscallProbe), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-static", "-O", "-o", filepath.Join(rootfs, "bin", "probe"), src, "-lpthread").CombinedOutput(); err != nil {
		t.Fatalf("build the probe: %v\n%s", err, out)
	}
}

// TestSeccompDefault: every container command and every exec runs under the
// default filter, which refuses new user namespaces and the syscalls behind
// most container escapes, and leaves fork and threads working.
func TestSeccompDefault(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	rootfs := fullRootfs(t)
	buildProbe(t, rootfs)
	want := map[string]syscall.Errno{
		"keyctl": syscall.EPERM, "add_key": syscall.EPERM, "request_key": syscall.EPERM, "bpf": syscall.EPERM,
		"io_uring_setup": syscall.EPERM, "kexec_load": syscall.EPERM, "open_by_handle_at": syscall.EPERM,
		"unshare_user": syscall.EPERM, "clone_user": syscall.EPERM, "clone3": syscall.ENOSYS,
		"raw_socket": syscall.EPERM, "fork": 0, "thread": 0,
	}
	check := func(how, out string) {
		t.Helper()
		got := map[string]syscall.Errno{}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var name string
			var e int
			if _, err := fmt.Sscanf(l, "%s %d", &name, &e); err == nil {
				got[name] = syscall.Errno(e)
			}
		}
		for name, w := range want {
			if g, ok := got[name]; !ok || g != w {
				t.Errorf("%s: %s: %v (%d), want %v (%d); output:\n%s", how, name, g, int(g), w, int(w), out)
			}
		}
	}
	script := `grep '^Seccomp:' /proc/self/status; unshare -U true 2>/dev/null && echo "unshare -U worked"; probe; exec sleep 1000`
	c := mustStart(t, r, Spec{ID: "seccomp", Rootfs: rootfs, Args: []string{"sh", "-c", script}})
	logContains(t, c, "thread ")
	raw, err := os.ReadFile(c.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	out := logText(t, string(raw))
	if !strings.HasPrefix(out, "Seccomp:\t2\n") || strings.Contains(out, "unshare -U worked") {
		t.Errorf("container: want Seccomp 2 and unshare -U refused, got:\n%s", out)
	}
	check("container", out)

	// An exec gets it too, though it enters the container from the host.
	code, out, errs := execOut(t, r, "seccomp", "", "sh", "-c", `grep '^Seccomp:' /proc/self/status; unshare -U true || echo refused; probe`)
	if code != 0 || !strings.HasPrefix(out, "Seccomp:\t2\n") || !strings.Contains(out, "refused") {
		t.Errorf("exec: exit %d, want Seccomp 2 and unshare -U refused, got:\n%s%s", code, out, errs)
	}
	check("exec", out)
}

// TestNoNetRaw: CAP_NET_RAW is not among the default capabilities, so no
// raw socket and no ping.
func TestNoNetRaw(t *testing.T) {
	t.Parallel()
	r := mustRuntime(t, "")
	c, out := run(t, r, Spec{ID: "netraw", Rootfs: fullRootfs(t), Args: []string{"sh", "-c",
		`grep '^CapEff:' /proc/self/status; ping -c 1 -W 1 127.0.0.1 >/dev/null 2>&1 && echo "ping worked"; echo done`}})
	var capEff uint64
	if _, err := fmt.Sscanf(out, "CapEff:\t%x", &capEff); err != nil || c.ExitCode != 0 {
		t.Fatalf("exit %d, output %q: %v", c.ExitCode, out, err)
	}
	const capNetRaw = 13
	if capEff&(1<<capNetRaw) != 0 || capEff == 0 {
		t.Errorf("CapEff %016x: want the default set without CAP_NET_RAW", capEff)
	}
	if strings.Contains(out, "ping worked") || !strings.HasSuffix(out, "done\n") {
		t.Errorf("ping: %q, want it refused", out)
	}
}
