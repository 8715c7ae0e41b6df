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
	// ErrMalformed: a KV value does not decode, or decodes to an object
	// that is not the one its key names (garbage written into a bucket).
	ErrMalformed = errors.New("malformed value")
	// ErrWriteInFlight: a compare-and-swap write was refused, unapplied,
	// because another write of the same key is still being committed (a
	// clustered stream's leader allows one at a time per key; one stays
	// pending while the stream has no quorum). Retry, after reading.
	ErrWriteInFlight = errors.New("another write of this key is still being committed")
)
