package apiserver

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// apiError is an error a handler means for the client: its status and
// message are sent as is. Any other error is a server or store failure.
type apiError struct {
	status int
	msg    string
	// reason and cause, when set, are sent as Kubernetes' Status reason
	// and details.causes[0].reason (e.g. Timeout, ResourceVersionTooLarge).
	reason, cause string
	// retryAfter, in seconds, is sent as Retry-After (and
	// details.retryAfterSeconds); 0: the default for 429 and 503.
	retryAfter int
}

func (e *apiError) Error() string { return e.msg }

func newError(status int, format string, args ...any) *apiError {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

// tooLargeResourceVersion is Kubernetes' answer to a watch from a revision
// the store has not reached: 504 with reason Timeout, cause
// ResourceVersionTooLarge and a retry hint, so a client that is only ahead
// of this apiserver retries instead of waiting on a watch that would never
// deliver anything.
func tooLargeResourceVersion(rv, current uint64) *apiError {
	return &apiError{status: http.StatusGatewayTimeout, reason: "Timeout", cause: "ResourceVersionTooLarge", retryAfter: 1,
		msg: fmt.Sprintf("Too large resource version: %d, current: %d", rv, current)}
}

// gone is Kubernetes' 410 for a watch that resumes from a revision older
// than the store keeps the deletions of: list again.
func gone(rv, compacted uint64) *apiError {
	return &apiError{status: http.StatusGone, reason: "Expired",
		msg: fmt.Sprintf("too old resource version: %d (%d): list again and watch from the list's resourceVersion", rv, compacted)}
}

func badRequest(format string, args ...any) *apiError {
	return newError(http.StatusBadRequest, format, args...)
}

func notFound(kind, name string) *apiError {
	return newError(http.StatusNotFound, "%s %q not found", kind, name)
}

func alreadyExists(kind, name string) *apiError {
	return newError(http.StatusConflict, "%s %q already exists", kind, name)
}

func modified(kind, name string, current, sent uint64) *apiError {
	return newError(http.StatusConflict,
		"%s %q was modified (resourceVersion %d, you sent %d): re-read and retry", kind, name, current, sent)
}

// forbidden is Pod Security admission's refusal: 403, as Kubernetes
// answers `pods "x" is forbidden: violates PodSecurity "baseline:latest":
// host namespaces (hostNetwork=true)`.
func forbidden(kind, name string, err error) *apiError {
	return newError(http.StatusForbidden, "%s %q is forbidden: %s", kind, name, err)
}

// invalid turns a Validate result into one 400 whose message lists every
// field error on one line, because clients show it as a single string.
func invalid(kind string, err error) *apiError {
	return badRequest("invalid %s: %s", kind, flatten(err))
}

func flatten(err error) string {
	var msgs []string
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		msgs = append(msgs, err.Error())
	}
	walk(err)
	return strings.Join(msgs, "; ")
}

// errSelectorImmutable aborts a Mutate: changing the selector would orphan
// the replicaset's pods or adopt someone else's.
var errSelectorImmutable = badRequest("selector: is immutable; delete and re-create the replicaset to change it")

func isAPIError(err error) (*apiError, bool) {
	var ae *apiError
	ok := errors.As(err, &ae)
	return ae, ok
}
