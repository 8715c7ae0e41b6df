// Package runtime runs containers for the kubelet: one process tree per
// container in fresh PID, mount, UTS, IPC and (unless HostNetwork) network
// namespaces, on an overlay of a shared read-only image root filesystem,
// with cgroup limits under a node-level cgroup that bounds all of a
// Runtime's containers together (Config), dropped capabilities,
// no_new_privs and a default seccomp filter.
//
// Start executes the current binary (/proc/self/exe) as "<exe> runtime-init
// <dir>", handing it the container's configuration on fd 3 and reading the
// result on fd 4. A C constructor (nsexec.c) takes that process over before
// the Go runtime starts, so no container pays for starting a large Go
// binary. It forks a shim and exits; the shim, re-parented to init, clones
// the container's init into the new namespaces. The init joins the cgroups,
// mounts the overlay, /proc, /sys (read-only), /dev, /dev/pts, /dev/shm and
// /tmp, pivots into it, masks /proc/kcore and friends, makes /proc/sys
// read-only, drops capabilities, sets no_new_privs and the user, then
// forks: the child installs the seccomp filter and execs the command
// (PID 2), and the init stays PID 1 as a
// reaper in C, like docker run --init: it drops every capability and
// descriptor, forwards the signals it gets to the command, reaps every
// orphan re-parented to it, and when the command exits hands the command's
// wait status to the shim through a pipe and exits with its code. SIGTERM
// thus reaches the command as an ordinary process, which dies of it unless
// it traps or ignores it.
//
// The shim stays the init's parent: it forwards SIGTERM, SIGINT,
// SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2, pumps stdout and stderr into the
// log in the CRI format with size-capped rotation, and when the container
// exits writes its exit code, signal, finish time and whether the cgroup
// saw an OOM kill into exit.json, then exits. Exit codes therefore survive
// any restart of the kubelet: a Runtime created later reads the same record.
//
// Exec runs one more command in a running container the same way: the
// binary executed as "<exe> runtime-exec <id>" enters the namespaces and
// cgroups of the container's PID 1 and forks the command with the
// privileges of the container's own (see ExecArg).
//
// Everything the runtime knows about a container lives in one directory,
// root/<id>/:
//
//	state.json       written by Start: pids and start times of the container and its shim, labels, cgroups
//	exit.json        written by the shim when the container has exited
//	container.log    "<RFC3339Nano> <stdout|stderr> <F|P> <content>" lines; rotated to container.log.1
//	upper/ work/     overlay upper and work directories
//	                 the directory itself is the overlay's mountpoint, inside the container only
//
// A container is running while its shim is (the pid AND its start time,
// field 22 of /proc/<pid>/stat, must match, so that a reused pid is never
// mistaken for it). Waiting and signalling use pidfds, so that neither can
// reach a process that reused the pid; an adopted container is waited for
// and stopped exactly like one this process started.
package runtime
