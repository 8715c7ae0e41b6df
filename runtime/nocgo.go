//go:build !cgo

package runtime

// Without cgo nsexec.c is not compiled in, and a re-executed binary would
// have no shim or init to become: New refuses rather than every Start
// failing obscurely. Go builds without cgo when no C compiler is found.
const haveNsexec = false
