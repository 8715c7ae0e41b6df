package schemas

import (
	"errors"
	"strings"
)

// MaxExecCommandBytes bounds the command of an exec request, arguments together.
const MaxExecCommandBytes = 64 << 10

// ExecRequest asks a kubelet to run a command in a pod's container
// (msgpack on kubelet.<node>.exec). The reply subject receives LogChunks:
// the command's stdout and stderr (Stderr set), then a last chunk with EOF
// and ExitCode, or Error. With Stdin, the requester sends ExecStdin
// requests to <reply>.stdin. With TTY the command runs on a terminal of
// its own: its output, stdout and stderr alike, comes as stdout chunks,
// and the requester sets the terminal's size with TerminalSize requests
// to <reply>.resize.
type ExecRequest struct {
	Pod string `json:"pod"`
	// UID, when set, must be the pod's (as in LogRequest).
	UID     string   `json:"uid,omitempty"`
	Command []string `json:"command"`
	Stdin   bool     `json:"stdin,omitempty"`
	TTY     bool     `json:"tty,omitempty"`
}

// TerminalSize is the size of an exec's terminal, in characters, sent as a
// request to <reply>.resize; the kubelet answers once it has been set (or
// cannot be: the command is gone), so one is in flight at a time.
type TerminalSize struct {
	Width  uint16 `json:"width"`
	Height uint16 `json:"height"`
}

// Validate checks the request.
func (r *ExecRequest) Validate() error {
	var errs []error
	if err := ValidateName("pod", r.Pod, MaxNameLength); err != nil {
		errs = append(errs, err)
	}
	n := 0
	for _, a := range r.Command {
		n += len(a) + 1
		if strings.IndexByte(a, 0) >= 0 {
			errs = append(errs, fieldErr("command", "must not contain NUL"))
			break
		}
	}
	switch {
	case len(r.Command) == 0 || r.Command[0] == "":
		errs = append(errs, fieldErr("command", "is required"))
	case n > MaxExecCommandBytes:
		errs = append(errs, fieldErr("command", "is longer than 64 KiB"))
	}
	return errors.Join(errs...)
}

// ExecStdin is a piece of an exec's stdin, sent as a request to
// <reply>.stdin; the kubelet answers (with no data) once the command has
// read it, so one piece at a time is in flight. EOF closes the command's
// stdin.
type ExecStdin struct {
	Data []byte `json:"data,omitempty"`
	EOF  bool   `json:"eof,omitempty"`
}
