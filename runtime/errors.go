package runtime

import "errors"

var (
	// ErrNotFound reports that no container with the given ID exists under the root.
	ErrNotFound = errors.New("container not found")
	// ErrExists reports that a container with the given ID already exists (or is being started).
	ErrExists = errors.New("container already exists")
	// ErrRunning reports an operation that needs an exited container.
	ErrRunning = errors.New("container is running")
	// ErrInvalidSpec reports a Spec that failed validation.
	ErrInvalidSpec = errors.New("invalid container spec")
	// ErrBusy reports a Remove while a Start or Remove of the same ID is in progress.
	ErrBusy = errors.New("container busy")
	// ErrClosed reports a call to Start after Close.
	ErrClosed = errors.New("runtime closed")
)

var (
	// errGone: the pid no longer names the process with the recorded start time.
	errGone = errors.New("process gone")
)

// ErrNotRunning reports an Exec into a container that has exited.
var ErrNotRunning = errors.New("container is not running")
