package bus

import "errors"

var (
	// ErrNotFound: the key does not exist (or was deleted).
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: Create found the key present.
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict: the revision given to Update or Delete is not the
	// current one; re-read and decide again.
	ErrConflict = errors.New("revision conflict")
)
