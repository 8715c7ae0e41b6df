// Package runtime runs containers for the kubelet: one process tree per
// container in fresh PID, mount, UTS and IPC namespaces, on an overlay of a
// shared read-only image root filesystem.
//
// A container is started by re-executing the current binary (/proc/self/exe)
// with the single argument InitArg; main must hand that invocation to Init
// before doing anything else. Init runs as PID 1 of the new PID namespace,
// builds the container's root (overlay, /proc, /dev), pivots into it and
// execs the user command, so no miniku code stays resident in the container.
//
// Everything the runtime knows about a container lives in one directory,
// root/<id>/:
//
//	state.json     identity written at start: pid and process start time, labels
//	exit.json      exit code and time, written when this process reaped the container
//	container.log  stdout and stderr of the container, appended by the container itself
//	upper/ work/   overlay upper and work directories
//	rootfs/        overlay mountpoint (the mount exists only inside the container)
//
// The container is not a child of anything that must stay alive: it runs in
// its own session, without a parent-death signal, and writes its log file
// directly, so it survives the kubelet being killed. A Runtime created later
// over the same root rediscovers it from state.json; liveness is decided by
// the pid AND its start time (field 22 of /proc/<pid>/stat) so that a reused
// pid is never mistaken for the container, and waiting or signalling uses a
// pidfd so that the signal cannot reach a process that reused the pid.
//
// Exit codes are only known for containers this process started and reaped;
// a container that exits while no miniku process is its parent is reported
// exited with ExitKnown false.
package runtime
