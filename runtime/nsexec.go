package runtime

// nsexec.c holds the shim and the container init; its constructor runs
// before the Go runtime when the binary is executed with InitArg.

// #cgo CFLAGS: -O2 -Wall
import "C"

const haveNsexec = true
