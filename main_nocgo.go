//go:build linux && !cgo

package main

// The container runtime's shim and init are C (runtime/nsexec.c), so a
// Linux build without cgo would make a kubelet that cannot start any
// container. Fail the build instead, with the reason as the error:
// install a C compiler (apt-get install gcc) and build with CGO_ENABLED=1.
var _ = miniku_on_Linux_needs_cgo__install_gcc_and_build_with_CGO_ENABLED_1
