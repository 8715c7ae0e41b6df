// The part of the runtime that runs before the Go runtime starts, like runc's
// nsexec. When the binary is executed as "<exe> runtime-init <dir>" by
// Runtime.Start, the constructor below never returns: the process becomes a
// container's shim and its init, in C, so that neither pays for starting the
// Go runtime of a large binary. See doc.go for the protocol.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CONFIG_FD 3
#define RESULT_FD 4
#define LINE_MAX_BYTES (16 * 1024)

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

struct config {
	char *dir, *lower, *upper, *work, *rootfs, *workdir, *hostname, *oom;
	char **args, **env, **cgroups;
	int nargs, nenv, ncgroups;
	uid_t uid;
	gid_t gid;
	gid_t gids[64];
	int ngids;
	int netns;
	long long logmax;
	long long tmpsize, shmsize;  // bytes of /tmp and /dev/shm; 0: defaults
	pid_t pid;                   // runtime-exec: the container's PID 1
	unsigned long long starttime; // and its start time
};

static int report_fd = -1; // where fail() writes: the result pipe, then the sync pipe

// fail reports a message to whoever waits for this process's result and exits.
static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
	char buf[4096];
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	errno = saved;
	int n = vsnprintf(buf + 1, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0) n = 0;
	if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
	buf[0] = 'E';
	if (report_fd < 0 || write(report_fd, buf, n + 1) < 0)
		dprintf(2, "miniku runtime-init: %s\n", buf + 1);
	_exit(1);
}

// errstr is strerror as Go spells it: lower case.
static const char *errstr(int e) {
	static char buf[128];
	snprintf(buf, sizeof buf, "%s", strerror(e));
	if (buf[0] >= 'A' && buf[0] <= 'Z') buf[0] += 'a' - 'A';
	return buf;
}

static char *read_all(int fd, size_t *len) {
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap);
	if (!buf) fail("read config: out of memory");
	for (;;) {
		if (n == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			if (!buf) fail("read config: out of memory");
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR) continue;
		if (r < 0) fail("read config: %s", errstr(errno));
		if (r == 0) break;
		n += r;
	}
	*len = n;
	return buf;
}

static void append(char ***list, int *n, char *s) {
	*list = realloc(*list, sizeof(char *) * (*n + 2));
	if (!*list) fail("parse config: out of memory");
	(*list)[(*n)++] = s;
	(*list)[*n] = NULL;
}

// parse_config reads "key\0value\0" pairs, as written by Go's initConfig.encode.
static void parse_config(char *buf, size_t len, struct config *c) {
	memset(c, 0, sizeof *c);
	append(&c->args, &c->nargs, NULL), c->nargs = 0;
	append(&c->env, &c->nenv, NULL), c->nenv = 0;
	append(&c->cgroups, &c->ncgroups, NULL), c->ncgroups = 0;
	char *p = buf, *end = buf + len;
	while (p < end) {
		char *k = p;
		p += strlen(p) + 1;
		if (p >= end) fail("parse config: key %s without value", k);
		char *v = p;
		p += strlen(p) + 1;
		if (!strcmp(k, "dir")) c->dir = v;
		else if (!strcmp(k, "lower")) c->lower = v;
		else if (!strcmp(k, "upper")) c->upper = v;
		else if (!strcmp(k, "work")) c->work = v;
		else if (!strcmp(k, "rootfs")) c->rootfs = v;
		else if (!strcmp(k, "workdir")) c->workdir = v;
		else if (!strcmp(k, "hostname")) c->hostname = v;
		else if (!strcmp(k, "oom")) c->oom = v;
		else if (!strcmp(k, "arg")) append(&c->args, &c->nargs, v);
		else if (!strcmp(k, "env")) append(&c->env, &c->nenv, v);
		else if (!strcmp(k, "cgroup")) append(&c->cgroups, &c->ncgroups, v);
		else if (!strcmp(k, "uid")) c->uid = strtoul(v, NULL, 10);
		else if (!strcmp(k, "gid")) c->gid = strtoul(v, NULL, 10);
		else if (!strcmp(k, "gids")) {
			if (c->ngids < 64) c->gids[c->ngids++] = strtoul(v, NULL, 10);
		} else if (!strcmp(k, "netns")) c->netns = v[0] == '1';
		else if (!strcmp(k, "logmax")) c->logmax = strtoll(v, NULL, 10);
		else if (!strcmp(k, "tmpsize")) c->tmpsize = strtoll(v, NULL, 10);
		else if (!strcmp(k, "shmsize")) c->shmsize = strtoll(v, NULL, 10);
		else if (!strcmp(k, "pid")) c->pid = strtol(v, NULL, 10);
		else if (!strcmp(k, "starttime")) c->starttime = strtoull(v, NULL, 10);
		else fail("parse config: unknown key %s", k);
	}
	if (c->pid > 0) {
		// runtime-exec: the rest comes from the container itself.
		if (!c->workdir || c->nargs == 0) fail("parse config: incomplete");
		return;
	}
	if (!c->dir || !c->lower || !c->upper || !c->work || !c->rootfs || !c->workdir || !c->hostname || c->nargs == 0)
		fail("parse config: incomplete");
}

// ---- the container's init: runs as PID 1 of the new namespaces ----

static void xmount(const char *src, const char *dst, const char *type, unsigned long flags, const char *data) {
	if (mount(src, dst, type, flags, data) < 0)
		fail("mount %s on %s: %s", type ? type : src ? src : "", dst, errstr(errno));
}

static void xmkdir(const char *p, mode_t m) {
	if (mkdir(p, m) < 0 && errno != EEXIST) fail("mkdir %s: %s", p, errstr(errno));
}

static void mkdir_all(const char *path) {
	char buf[4096];
	snprintf(buf, sizeof buf, "%s", path);
	for (char *s = buf + 1; *s; s++) {
		if (*s != '/') continue;
		*s = 0;
		xmkdir(buf, 0755);
		*s = '/';
	}
	xmkdir(buf, 0755);
}

static void setup_dev(struct config *c) {
	static const struct { const char *name; unsigned maj, min; } devs[] = {
		{"dev/null", 1, 3}, {"dev/zero", 1, 5}, {"dev/full", 1, 7},
		{"dev/random", 1, 8}, {"dev/urandom", 1, 9}, {"dev/tty", 5, 0},
	};
	static const char *links[][2] = {
		{"/proc/self/fd", "dev/fd"}, {"/proc/self/fd/0", "dev/stdin"},
		{"/proc/self/fd/1", "dev/stdout"}, {"/proc/self/fd/2", "dev/stderr"},
		{"pts/ptmx", "dev/ptmx"}, {"/proc/kcore", "dev/core"},
	};
	xmkdir("dev", 0755);
	xmount("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k");
	for (size_t i = 0; i < sizeof devs / sizeof devs[0]; i++)
		if (mknod(devs[i].name, S_IFCHR | 0666, makedev(devs[i].maj, devs[i].min)) < 0)
			fail("mknod %s: %s", devs[i].name, errstr(errno));
	for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
		if (symlink(links[i][0], links[i][1]) < 0) fail("symlink %s: %s", links[i][1], errstr(errno));
	xmkdir("dev/pts", 0755);
	xmount("devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620");
	xmkdir("dev/shm", 01777);
	char opts[64];
	snprintf(opts, sizeof opts, "mode=1777,size=%lld", c->shmsize > 0 ? c->shmsize : 64LL << 20);
	xmount("shm", "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts);
}

// Paths hidden and made read-only as runc's default spec does: they expose
// or control the host kernel.
static const char *masked[] = {
	"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
	"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
	"/sys/firmware", "/sys/devices/virtual/powercap",
};
static const char *readonly[] = {
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

static void harden_paths(void) {
	struct stat st;
	for (size_t i = 0; i < sizeof masked / sizeof masked[0]; i++) {
		if (stat(masked[i], &st) < 0) continue;
		if (S_ISDIR(st.st_mode))
			xmount("tmpfs", masked[i], "tmpfs", MS_RDONLY, "size=0");
		else
			xmount("/dev/null", masked[i], NULL, MS_BIND, NULL);
	}
	for (size_t i = 0; i < sizeof readonly / sizeof readonly[0]; i++) {
		if (stat(readonly[i], &st) < 0) continue;
		xmount(readonly[i], readonly[i], NULL, MS_BIND | MS_REC, NULL);
		xmount(NULL, readonly[i], NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	}
}

static void setup_root(struct config *c) {
	char opts[8192];
	// Private: no mount made here may reach the host, and none made on the
	// host later may appear in the container.
	xmount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
	snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", c->lower, c->upper, c->work);
	xmount("overlay", c->rootfs, "overlay", 0, opts);
	if (chdir(c->rootfs) < 0) fail("chdir %s: %s", c->rootfs, errstr(errno));
	xmkdir("proc", 0555);
	xmount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	xmkdir("sys", 0555);
	xmount("sysfs", "sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL);
	setup_dev(c);
	xmkdir("tmp", 01777);
	// Sized: a tmpfs without a size may take half the host's RAM. The
	// pages are charged to the container's memory cgroup too.
	if (c->tmpsize > 0) snprintf(opts, sizeof opts, "mode=1777,size=%lld", c->tmpsize);
	else snprintf(opts, sizeof opts, "mode=1777");
	xmount("tmpfs", "tmp", "tmpfs", MS_NOSUID | MS_NODEV, opts);
	// pivot_root(".", ".") stacks the old root on the new one; unmounting
	// "." then removes it without a put_old directory in the image.
	if (syscall(SYS_pivot_root, ".", ".") < 0) fail("pivot_root %s: %s", c->rootfs, errstr(errno));
	if (umount2(".", MNT_DETACH) < 0) fail("unmount old root: %s", errstr(errno));
	if (chdir("/") < 0) fail("chdir /: %s", errstr(errno));
	harden_paths();
}

static void loopback_up(void) {
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0) fail("socket: %s", errstr(errno));
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) fail("get lo flags: %s", errstr(errno));
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) fail("bring lo up: %s", errstr(errno));
	close(s);
}

// Docker's default capabilities less CAP_MKNOD: without a device cgroup
// nothing else would stop a container from creating the host's disk nodes;
// and less CAP_NET_RAW, as containerd 2 and the Kubernetes baseline drop it:
// raw sockets let a container forge packets (ARP, ICMP) on its network.
static const int default_caps[] = {
	CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FSETID, CAP_FOWNER, CAP_SETGID, CAP_SETUID,
	CAP_SETFCAP, CAP_SETPCAP, CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT, CAP_KILL, CAP_AUDIT_WRITE,
};

static void drop_privileges(struct config *c) {
	uint64_t keep = 0;
	for (size_t i = 0; i < sizeof default_caps / sizeof default_caps[0]; i++) keep |= 1ULL << default_caps[i];
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail("no_new_privs: %s", errstr(errno));
	for (int cap = 0; cap < 64; cap++) {
		if (keep & (1ULL << cap)) continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			fail("drop capability %d: %s", cap, errstr(errno));
	}
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	if (setgroups(c->ngids, c->gids) < 0) fail("setgroups: %s", errstr(errno));
	if (setresgid(c->gid, c->gid, c->gid) < 0) fail("setgid %u: %s", c->gid, errstr(errno));
	if (setresuid(c->uid, c->uid, c->uid) < 0) fail("setuid %u: %s", c->uid, errstr(errno));
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof d);
	if (c->uid == 0) {
		d[0].effective = d[0].permitted = d[0].inheritable = (uint32_t)keep;
		d[1].effective = d[1].permitted = d[1].inheritable = (uint32_t)(keep >> 32);
	}
	if (syscall(SYS_capset, &h, d) < 0) fail("capset: %s", errstr(errno));
}

// ---- the default seccomp filter ----

// The filter every container command and every exec runs under: a deny
// list modelled on the syscalls Docker's and containerd's default profiles
// refuse (mount and its new API, namespaces, keyrings, bpf, io_uring,
// kexec, modules, perf, userfaultfd, file handles, clock and swap control),
// so that the kernel surface behind most container escapes is out of
// reach even of a process that finds a way to capabilities. Refused calls
// fail with EPERM, as in Docker; clone3, whose flags sit in memory a
// filter cannot read, fails with ENOSYS, so that libc falls back to clone,
// whose flags are checked. Other architectures' calls (i386 on x86_64,
// x32) have other numbers, which this list would miss: they fail.
#if defined(__x86_64__)
#define SECCOMP_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SECCOMP_AUDIT_ARCH AUDIT_ARCH_AARCH64
#elif defined(__riscv) && __riscv_xlen == 64
#define SECCOMP_AUDIT_ARCH AUDIT_ARCH_RISCV64
#endif

static const int denied_syscalls[] = {
#define DENY(name) __NR_##name,
#ifdef __NR_acct
	DENY(acct)
#endif
#ifdef __NR_add_key
	DENY(add_key)
#endif
#ifdef __NR_bpf
	DENY(bpf)
#endif
#ifdef __NR_clock_adjtime
	DENY(clock_adjtime)
#endif
#ifdef __NR_clock_settime
	DENY(clock_settime)
#endif
#ifdef __NR_create_module
	DENY(create_module)
#endif
#ifdef __NR_delete_module
	DENY(delete_module)
#endif
#ifdef __NR_fanotify_init
	DENY(fanotify_init)
#endif
#ifdef __NR_finit_module
	DENY(finit_module)
#endif
#ifdef __NR_fsconfig
	DENY(fsconfig)
#endif
#ifdef __NR_fsmount
	DENY(fsmount)
#endif
#ifdef __NR_fsopen
	DENY(fsopen)
#endif
#ifdef __NR_fspick
	DENY(fspick)
#endif
#ifdef __NR_get_kernel_syms
	DENY(get_kernel_syms)
#endif
#ifdef __NR_init_module
	DENY(init_module)
#endif
#ifdef __NR_io_uring_enter
	DENY(io_uring_enter)
#endif
#ifdef __NR_io_uring_register
	DENY(io_uring_register)
#endif
#ifdef __NR_io_uring_setup
	DENY(io_uring_setup)
#endif
#ifdef __NR_ioperm
	DENY(ioperm)
#endif
#ifdef __NR_iopl
	DENY(iopl)
#endif
#ifdef __NR_kexec_file_load
	DENY(kexec_file_load)
#endif
#ifdef __NR_kexec_load
	DENY(kexec_load)
#endif
#ifdef __NR_keyctl
	DENY(keyctl)
#endif
#ifdef __NR_lookup_dcookie
	DENY(lookup_dcookie)
#endif
#ifdef __NR_mount
	DENY(mount)
#endif
#ifdef __NR_mount_setattr
	DENY(mount_setattr)
#endif
#ifdef __NR_move_mount
	DENY(move_mount)
#endif
#ifdef __NR_name_to_handle_at
	DENY(name_to_handle_at)
#endif
#ifdef __NR_nfsservctl
	DENY(nfsservctl)
#endif
#ifdef __NR_open_by_handle_at
	DENY(open_by_handle_at)
#endif
#ifdef __NR_open_tree
	DENY(open_tree)
#endif
#ifdef __NR_perf_event_open
	DENY(perf_event_open)
#endif
#ifdef __NR_pivot_root
	DENY(pivot_root)
#endif
#ifdef __NR_query_module
	DENY(query_module)
#endif
#ifdef __NR_quotactl
	DENY(quotactl)
#endif
#ifdef __NR_quotactl_fd
	DENY(quotactl_fd)
#endif
#ifdef __NR_reboot
	DENY(reboot)
#endif
#ifdef __NR_request_key
	DENY(request_key)
#endif
#ifdef __NR_setns
	DENY(setns)
#endif
#ifdef __NR_settimeofday
	DENY(settimeofday)
#endif
#ifdef __NR_swapoff
	DENY(swapoff)
#endif
#ifdef __NR_swapon
	DENY(swapon)
#endif
#ifdef __NR_syslog
	DENY(syslog)
#endif
#ifdef __NR__sysctl
	DENY(_sysctl)
#endif
#ifdef __NR_sysfs
	DENY(sysfs)
#endif
#ifdef __NR_umount
	DENY(umount)
#endif
#ifdef __NR_umount2
	DENY(umount2)
#endif
#ifdef __NR_uselib
	DENY(uselib)
#endif
#ifdef __NR_userfaultfd
	DENY(userfaultfd)
#endif
#ifdef __NR_ustat
	DENY(ustat)
#endif
#ifdef __NR_vhangup
	DENY(vhangup)
#endif
#ifdef __NR_vm86
	DENY(vm86)
#endif
#ifdef __NR_vm86old
	DENY(vm86old)
#endif
#undef DENY
};

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
// The namespace flags clone and unshare may not carry: a new user
// namespace gives a process every capability inside it, and with them the
// kernel code behind them. CLONE_NEWTIME shares its bit with clone's exit
// signal, so it is checked for unshare only.
#define NS_FLAGS (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)

// The low 32 bits of the first argument, where clone and unshare take their
// flags (the legacy clone ignores the high ones).
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ARG0_LO offsetof(struct seccomp_data, args[0])
#else
#define ARG0_LO (offsetof(struct seccomp_data, args[0]) + 4)
#endif

static void install_seccomp(void) {
#ifndef SECCOMP_AUDIT_ARCH
	fail("seccomp: no default filter for this architecture");
#else
	enum { N = sizeof denied_syscalls / sizeof denied_syscalls[0] };
	struct sock_filter prog[2 * N + 32];
	size_t n = 0;
#define ADD(s) (prog[n++] = (struct sock_filter)s)
	ADD(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
	ADD(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SECCOMP_AUDIT_ARCH, 1, 0));
	ADD(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS));
	ADD(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
#ifdef __x86_64__
	// x32 calls are the x86_64 numbers with bit 30 set.
	ADD(BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1));
	ADD(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS));
#endif
	for (size_t i = 0; i < N; i++) {
		ADD(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, denied_syscalls[i], 0, 1));
		ADD(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM));
	}
#ifdef __NR_clone3
	ADD(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1));
	ADD(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS));
#endif
	// unshare: refused with a namespace flag.
	ADD(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_unshare, 0, 4));
	ADD(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG0_LO));
	ADD(BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NS_FLAGS | CLONE_NEWTIME, 0, 1));
	ADD(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM));
	ADD(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
	// clone: the same (x86_64, aarch64 and riscv64 take the flags first).
	ADD(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 3));
	ADD(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG0_LO));
	ADD(BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NS_FLAGS, 0, 1));
	ADD(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM));
	ADD(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
#undef ADD
	struct sock_fprog fprog = {.len = (unsigned short)n, .filter = prog};
	// no_new_privs is set (drop_privileges), so no capability is needed.
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) < 0 &&
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0) < 0)
		fail("install seccomp filter: %s", errstr(errno));
#endif
}

// look_path resolves file in the PATH of the container's env.
static char *look_path(struct config *c) {
	char *file = c->args[0];
	if (strchr(file, '/')) return file;
	const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	for (int i = 0; i < c->nenv; i++)
		if (!strncmp(c->env[i], "PATH=", 5)) path = c->env[i] + 5;
	static char buf[4096];
	for (const char *p = path;;) {
		const char *e = strchrnul(p, ':');
		int n = e - p;
		if (n == 0) snprintf(buf, sizeof buf, "./%s", file);
		else snprintf(buf, sizeof buf, "%.*s/%s", n, p, file);
		struct stat st;
		if (stat(buf, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111)) return buf;
		if (!*e) break;
		p = e + 1;
	}
	fail("exec \"%s\": executable file not found in $PATH", file);
}

// drop_all_capabilities leaves PID 1 with no capability at all: it only
// signals and reaps a process of its own user, and the command must not
// find a privileged process to attack next to it.
static void drop_all_capabilities(void) {
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof d);
	if (syscall(SYS_capset, &h, d) < 0) _exit(1);
	// Not ptrace-able nor readable through /proc by the command's user.
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

// reaper is what PID 1 of the container does once the command runs as its
// child, like tini or docker run --init: forward the signals it gets to the
// command, reap every process re-parented to it, and when the command
// exits, hand its wait status to the shim on status_fd and exit with its
// code (128+signal for a death by signal). Its exit ends the namespace:
// the kernel kills whatever the command left behind, as before.
// Every signal is blocked (by the caller, before the fork, so none is lost
// in between) and taken with sigwaitinfo: PID 1 gets no signal it has no
// handler for, but blocked ones are queued.
static void reaper(pid_t child, int status_fd) __attribute__((noreturn));
static void reaper(pid_t child, int status_fd) {
	// Nothing but the status pipe: the sync pipe must reach EOF when the
	// command is exec'd, and the log pipes when the command closes them.
	if (status_fd > 0) syscall(SYS_close_range, 0, status_fd - 1, 0);
	syscall(SYS_close_range, status_fd + 1, ~0U, 0);
	drop_all_capabilities();
	prctl(PR_SET_NAME, "init", 0, 0, 0); // in ps, PID 1 is not the runtime binary's name
	sigset_t all;
	sigfillset(&all);
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&all, &si);
		if (sig < 0) continue;
		if (sig != SIGCHLD) {
			// The command is not reaped yet (else we would have exited), so
			// the pid is still its own.
			kill(child, sig);
			continue;
		}
		int st;
		pid_t w;
		while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
			if (w != child) continue;
			if (write(status_fd, &st, sizeof st) != sizeof st) {} // the shim then uses our exit code
			_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		}
	}
}

// reset_signals gives every signal its default action. The raw syscall,
// because glibc's signal() refuses the two real-time signals it reserves for
// itself (32 and 33): one ignored by whoever started the kubelet would
// otherwise stay ignored in every container, as ignored signals survive exec.
static void reset_signals(void) {
	struct kernel_sigaction {
		void (*handler)(int);
		unsigned long flags;
		void (*restorer)(void);
		uint64_t mask;
	} sa = {.handler = SIG_DFL};
	for (int s = 1; s <= 64; s++) {
		if (s == SIGKILL || s == SIGSTOP) continue;
		syscall(SYS_rt_sigaction, s, &sa, NULL, sizeof sa.mask);
	}
}

static void container_init(struct config *c, int out, int err, int null, int sync, int status_fd) __attribute__((noreturn));
static void container_init(struct config *c, int out, int err, int null, int sync, int status_fd) {
	report_fd = sync;
	sigset_t none;
	sigemptyset(&none);
	reset_signals();
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) fail("dup2: %s", errstr(errno));
	// Into the cgroups first, so that everything below is accounted.
	for (int i = 0; i < c->ncgroups; i++) {
		int fd = open(c->cgroups[i], O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "0", 1) != 1) fail("join cgroup %s: %s", c->cgroups[i], errstr(errno));
		close(fd);
	}
	if (c->netns) loopback_up();
	if (sethostname(c->hostname, strlen(c->hostname)) < 0) fail("sethostname: %s", errstr(errno));
	umask(0);
	setup_root(c);
	mkdir_all(c->workdir);
	if (chdir(c->workdir) < 0) fail("chdir %s: %s", c->workdir, errstr(errno));
	char *path = look_path(c);
	drop_privileges(c);
	// The command runs as PID 1's child; PID 1 stays to reap orphans.
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	pid_t cmd = fork();
	if (cmd < 0) fail("fork: %s", errstr(errno));
	if (cmd > 0) reaper(cmd, status_fd);
	close(status_fd);
	sigprocmask(SIG_SETMASK, &none, NULL);
	// Descriptors the kubelet inherited without close-on-exec stay out.
	if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) fail("close_range: %s", errstr(errno));
	umask(022);
	// Last, in the command only: PID 1, the reaper, needs none of what it
	// refuses and has no capability left anyway.
	install_seccomp();
	execve(path, c->args, c->env);
	fail("exec \"%s\": %s", c->args[0], errstr(errno));
}

// ---- the shim: parent of the container's init, outside its namespaces ----

static unsigned long long proc_start_time(pid_t pid) {
	char p[64], buf[1024];
	snprintf(p, sizeof p, "/proc/%d/stat", pid);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0) return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0) return 0;
	buf[n] = 0;
	char *s = strrchr(buf, ')');
	if (!s) return 0;
	// Field 22; s points at the end of field 2.
	for (int f = 0; f < 20 && s; f++) s = strchr(s + 1, ' ');
	return s ? strtoull(s + 1, NULL, 10) : 0;
}

struct stream {
	int fd;
	const char *name;
	char buf[LINE_MAX_BYTES];
	size_t n;
};

struct logfile {
	int dirfd, fd;
	long long size, max;
};

static void format_time(char *out, size_t len, const struct timespec *ts) {
	struct tm tm;
	gmtime_r(&ts->tv_sec, &tm);
	int n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
	char frac[16];
	snprintf(frac, sizeof frac, ".%09ld", ts->tv_nsec);
	// RFC3339Nano as Go writes it: trailing zeros of the fraction dropped.
	int k = strlen(frac);
	while (k > 1 && frac[k - 1] == '0') k--;
	if (k == 1) k = 0;
	snprintf(out + n, len - n, "%.*sZ", k, frac);
}

static void log_open(struct logfile *l, int trunc) {
	l->fd = openat(l->dirfd, "container.log", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | (trunc ? O_TRUNC : 0), 0640);
	struct stat st;
	l->size = (l->fd >= 0 && fstat(l->fd, &st) == 0) ? st.st_size : 0;
}

static void log_line(struct logfile *l, const char *stream, char tag, const char *data, size_t n) {
	struct timespec ts;
	char prefix[96];
	clock_gettime(CLOCK_REALTIME, &ts);
	format_time(prefix, sizeof prefix, &ts);
	size_t pl = strlen(prefix);
	pl += snprintf(prefix + pl, sizeof prefix - pl, " %s %c ", stream, tag);
	long long total = pl + n + 1;
	if (l->size > 0 && l->size + total > l->max) {
		// One rotated file is kept: container.log.1 is replaced.
		if (renameat(l->dirfd, "container.log", l->dirfd, "container.log.1") == 0) {
			close(l->fd);
			log_open(l, 1);
		}
	}
	if (l->fd < 0) return;
	struct iovec iov[3] = {{prefix, pl}, {(void *)data, n}, {"\n", 1}};
	ssize_t w = writev(l->fd, iov, 3);
	if (w > 0) l->size += w;
}

// pump reads what is available on s and logs its complete lines; a line
// longer than the buffer goes out in parts tagged P.
static int pump(struct logfile *l, struct stream *s) {
	ssize_t r = read(s->fd, s->buf + s->n, sizeof s->buf - s->n);
	if (r < 0 && (errno == EINTR || errno == EAGAIN)) return 1;
	if (r <= 0) {
		if (s->n > 0) log_line(l, s->name, 'F', s->buf, s->n);
		s->n = 0;
		close(s->fd);
		s->fd = -1;
		return 0;
	}
	s->n += r;
	char *start = s->buf, *end = s->buf + s->n, *nl;
	while ((nl = memchr(start, '\n', end - start))) {
		log_line(l, s->name, 'F', start, nl - start);
		start = nl + 1;
	}
	s->n = end - start;
	if (s->n == sizeof s->buf) {
		log_line(l, s->name, 'P', s->buf, s->n);
		s->n = 0;
	} else if (start != s->buf) {
		memmove(s->buf, start, s->n);
	}
	return 1;
}

static int read_oom_kills(const char *path) {
	if (!path) return 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) return 0;
	char buf[1024];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0) return 0;
	buf[n] = 0;
	for (char *p = buf; (p = strstr(p, "oom_kill ")); p++)
		if (p == buf || p[-1] == '\n') return atoi(p + 9);
	return 0;
}

static void write_exit(int dirfd, int status, const struct timespec *fin, int oom) {
	char ts[64], buf[256];
	format_time(ts, sizeof ts, fin);
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	int n = snprintf(buf, sizeof buf, "{\"exitCode\":%d,\"signal\":%d,\"finishedAt\":\"%s\",\"oomKilled\":%s}\n",
			 code, sig, ts, oom ? "true" : "false");
	int fd = openat(dirfd, ".exit.json.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) return;
	int ok = write(fd, buf, n) == n;
	close(fd);
	if (ok) renameat(dirfd, ".exit.json.tmp", dirfd, "exit.json");
}

// command_status is the command's wait status as the container's PID 1
// handed it over, so that exit.json tells a death by signal as before; if
// PID 1 itself was killed (Stop's SIGKILL), its own status.
static int command_status(int fd, int init_status) {
	int st;
	ssize_t r;
	while ((r = read(fd, &st, sizeof st)) < 0 && errno == EINTR) {}
	close(fd);
	return r == sizeof st ? st : init_status;
}

static void shim(struct config *c) __attribute__((noreturn));
static void shim(struct config *c) {
	int out[2], err[2], sync[2], stp[2];
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0) fail("open /dev/null: %s", errstr(errno));
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(sync, O_CLOEXEC) < 0 ||
	    pipe2(stp, O_CLOEXEC) < 0)
		fail("pipe: %s", errstr(errno));
	struct logfile lf = {.max = c->logmax > 0 ? c->logmax : 10 << 20};
	lf.dirfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lf.dirfd < 0) fail("open %s: %s", c->dir, errstr(errno));
	log_open(&lf, 0);
	if (lf.fd < 0) fail("open log: %s", errstr(errno));

	sigset_t mask;
	sigemptyset(&mask);
	int fwd[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
	for (size_t i = 0; i < sizeof fwd / sizeof fwd[0]; i++) sigaddset(&mask, fwd[i]);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) fail("signalfd: %s", errstr(errno));

	unsigned long flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD;
	if (c->netns) flags |= CLONE_NEWNET;
	// clone with no new stack behaves like fork: the child runs on a copy.
	pid_t child = syscall(SYS_clone, flags, 0, 0, 0, 0);
	if (child < 0) fail("clone: %s", errstr(errno));
	if (child == 0) {
		close(RESULT_FD), close(stp[0]);
		container_init(c, out[1], err[1], null, sync[1], stp[1]);
	}
	close(out[1]), close(err[1]), close(sync[1]), close(null), close(stp[1]);

	// EOF on the sync pipe: the command was exec'd; bytes: init's error.
	char msg[4096];
	size_t n = 0;
	for (;;) {
		ssize_t r = read(sync[0], msg + n, sizeof msg - 1 - n);
		if (r < 0 && errno == EINTR) continue;
		if (r <= 0) break;
		n += r;
		if (n == sizeof msg - 1) break;
	}
	close(sync[0]);
	if (n > 0) {
		// Reaped before reporting: Start removes the cgroup, which must be empty.
		int st;
		while (waitpid(child, &st, 0) < 0 && errno == EINTR) {}
		if (write(RESULT_FD, msg, n) < 0) {}
		_exit(1);
	}
	// The child is not reaped yet, so its /proc entry is there even if the
	// command already exited.
	char res[128];
	int rl = snprintf(res, sizeof res, "O%d %llu %d %llu\n", getpid(), proc_start_time(getpid()), child,
			  proc_start_time(child));
	if (write(RESULT_FD, res, rl) != rl) {} // a dead Start still finds the state through the dir
	close(RESULT_FD);
	report_fd = -1;

	int status_rd = stp[0];
	struct stream so = {.fd = out[0], .name = "stdout"}, se = {.fd = err[0], .name = "stderr"};
	int exited = 0, status = 0;
	struct timespec fin = {0};
	while (!exited || so.fd >= 0 || se.fd >= 0) {
		struct pollfd p[3] = {{sfd, POLLIN, 0}, {so.fd, POLLIN, 0}, {se.fd, POLLIN, 0}};
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR) continue;
			break;
		}
		if (p[0].revents) {
			struct signalfd_siginfo si;
			// Once reaped, the pid may belong to a stranger: forward no more.
			if (read(sfd, &si, sizeof si) == sizeof si && si.ssi_signo != SIGCHLD && !exited)
				kill(child, si.ssi_signo);
			int st;
			pid_t w;
			while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
				if (w == child) {
					exited = 1, status = command_status(status_rd, st);
					clock_gettime(CLOCK_REALTIME, &fin);
				}
			}
		}
		if (p[1].revents) pump(&lf, &so);
		if (p[2].revents) pump(&lf, &se);
	}
	write_exit(lf.dirfd, status, &fin, read_oom_kills(c->oom) > 0);
	_exit(0);
}

// ---- runtime-exec: one more process in a running container ----

// proc_file_read reads a small file of /proc/<pid>, through the directory
// fd that pins that very process: were it gone, openat fails with ESRCH.
static ssize_t proc_file_read(int procfd, const char *name, char *buf, size_t len) {
	int fd = openat(procfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) return -1;
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	if (n >= 0) buf[n] = 0;
	return n;
}

// exec_ids takes the identity from the container's PID 1: the init set it
// (setgroups, setresgid, setresuid) before it forked the command, so it is
// the command's, and containers started before exec existed have it too.
static void exec_ids(int procfd, struct config *c) {
	char buf[8192];
	if (proc_file_read(procfd, "status", buf, sizeof buf) <= 0) fail("read container status: %s", errstr(errno));
	char *p = strstr(buf, "\nUid:"), *q = strstr(buf, "\nGid:");
	if (!p || !q) fail("read container status: no Uid or Gid");
	c->uid = strtoul(p + 5, NULL, 10);
	c->gid = strtoul(q + 5, NULL, 10);
	c->ngids = 0;
	if ((p = strstr(buf, "\nGroups:"))) {
		p += 8;
		char *e = strchrnul(p, '\n');
		while (c->ngids < 64) {
			char *end;
			unsigned long g = strtoul(p, &end, 10);
			if (end == p || end > e) break;
			c->gids[c->ngids++] = g;
			p = end;
		}
	}
}

static void exec_in_container(struct config *c) __attribute__((noreturn));
static void exec_in_container(struct config *c) {
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d", c->pid);
	int procfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (procfd < 0) fail("container process %d: %s", c->pid, errstr(errno));
	// Checked after the open: from here on procfd is that process or gone,
	// never a stranger that reused the pid.
	if (proc_file_read(procfd, "stat", buf, sizeof buf) <= 0) fail("container is not running");
	char *s = strrchr(buf, ')');
	// Field 3, the state: a zombie init has no namespaces left to enter.
	if (!s || s[1] != ' ' || s[2] == 'Z' || s[2] == 'X') fail("container is not running");
	for (int f = 0; f < 20 && s; f++) s = strchr(s + 1, ' ');
	if (!s || strtoull(s + 1, NULL, 10) != c->starttime) fail("container is not running");
	exec_ids(procfd, c);
	static const char *nsnames[] = {"ns/ipc", "ns/uts", "ns/net", "ns/pid", "ns/mnt"};
	int ns[5];
	for (int i = 0; i < 5; i++) {
		ns[i] = openat(procfd, nsnames[i], O_RDONLY | O_CLOEXEC);
		if (ns[i] < 0) fail("open container %s: %s", nsnames[i], errstr(errno));
	}
	close(procfd);
	// Into the cgroups first, while their host paths are visible, so that
	// the command is limited and accounted like the container's own.
	for (int i = 0; i < c->ncgroups; i++) {
		int fd = open(c->cgroups[i], O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "0", 1) != 1) fail("join cgroup %s: %s", c->cgroups[i], errstr(errno));
		close(fd);
	}
	// The mount namespace last: after it, /proc/<pid> is the container's.
	for (int i = 0; i < 5; i++) {
		if (setns(ns[i], 0) < 0) fail("join container %s: %s", nsnames[i], errstr(errno));
		close(ns[i]);
	}
	if (chdir(c->workdir) < 0 && chdir("/") < 0) fail("chdir /: %s", errstr(errno));
	// Nothing in the container may read this process's memory: it runs the
	// host's binary with every capability.
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	char *file = look_path(c);

	int sync[2], alive[2];
	if (pipe2(sync, O_CLOEXEC) < 0 || pipe2(alive, O_CLOEXEC) < 0) fail("pipe: %s", errstr(errno));
	sigset_t mask, none;
	sigemptyset(&mask);
	sigemptyset(&none);
	int fwd[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
	for (size_t i = 0; i < sizeof fwd / sizeof fwd[0]; i++) sigaddset(&mask, fwd[i]);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	// The child is the first process of ours in the container's pid namespace.
	pid_t child = fork();
	if (child < 0) fail("fork: %s", errstr(errno));
	if (child == 0) {
		report_fd = sync[1];
		close(sync[0]), close(alive[1]), close(RESULT_FD);
		sigprocmask(SIG_SETMASK, &none, NULL);
		drop_privileges(c);
		// Set after the credentials change, which clears it. If our parent
		// (the caller's handle on us) is killed, so are we; the alive pipe
		// catches a parent that died before the prctl.
		if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) fail("pdeathsig: %s", errstr(errno));
		struct pollfd pa = {alive[0], POLLIN, 0};
		if (poll(&pa, 1, 0) > 0) _exit(137);
		close(alive[0]);
		if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) fail("close_range: %s", errstr(errno));
		umask(022);
		install_seccomp();
		execve(file, c->args, c->env);
		fail("exec \"%s\": %s", c->args[0], errstr(errno));
	}
	close(sync[1]), close(alive[0]);
	// EOF on the sync pipe: the command was exec'd; bytes: the child's error.
	char msg[4096];
	size_t n = 0;
	for (;;) {
		ssize_t r = read(sync[0], msg + n, sizeof msg - 1 - n);
		if (r < 0 && errno == EINTR) continue;
		if (r <= 0) break;
		n += r;
		if (n == sizeof msg - 1) break;
	}
	close(sync[0]);
	if (n > 0) {
		int st;
		while (waitpid(child, &st, 0) < 0 && errno == EINTR) {}
		if (write(RESULT_FD, msg, n) < 0) {}
		_exit(1);
	}
	close(RESULT_FD);
	report_fd = -1;
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&mask, &si);
		if (sig < 0) continue;
		if (sig != SIGCHLD) {
			// Not reaped yet, so the pid is still the child's.
			kill(child, sig);
			continue;
		}
		int st;
		if (waitpid(child, &st, WNOHANG) == child)
			_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	}
}

static int is_fifo(int fd) {
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

__attribute__((constructor)) static void miniku_nsexec(int argc, char **argv, char **envp) {
	(void)envp;
	if (argc >= 2 && !strcmp(argv[1], "runtime-exec")) {
		if (argc != 3 || !is_fifo(CONFIG_FD) || !is_fifo(RESULT_FD)) {
			dprintf(2, "miniku runtime-exec: must be started by the runtime\n");
			_exit(1);
		}
		report_fd = RESULT_FD;
		size_t len;
		char *buf = read_all(CONFIG_FD, &len);
		close(CONFIG_FD);
		struct config c;
		parse_config(buf, len, &c);
		if (c.pid <= 0) fail("parse config: no pid");
		syscall(SYS_close_range, RESULT_FD + 1, ~0U, 0);
		exec_in_container(&c);
	}
	if (argc < 2 || strcmp(argv[1], "runtime-init") != 0) return;
	// Anywhere but under Start this would build a container from whatever
	// happens to be on fd 3: refuse, as Init does.
	if (argc != 3 || !is_fifo(CONFIG_FD) || !is_fifo(RESULT_FD)) {
		dprintf(2, "miniku runtime-init: must be started by the runtime, in new namespaces\n");
		_exit(1);
	}
	report_fd = RESULT_FD;
	size_t len;
	char *buf = read_all(CONFIG_FD, &len);
	close(CONFIG_FD);
	struct config c;
	parse_config(buf, len, &c);
	// Nothing but the result pipe may follow the shim into its long life.
	syscall(SYS_close_range, RESULT_FD + 1, ~0U, 0);
	if (chdir("/") < 0) fail("chdir /: %s", errstr(errno));
	// Double fork: the shim is re-parented to init (or the nearest
	// subreaper) and never becomes a zombie of the kubelet.
	pid_t pid = fork();
	if (pid < 0) fail("fork shim: %s", errstr(errno));
	if (pid > 0) _exit(0);
	if (setsid() < 0) {} // already a session leader's child: fine either way
	shim(&c);
}
