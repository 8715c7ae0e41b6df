package schemas

import "errors"

// LogRequest asks a kubelet for a pod's container log (msgpack on
// kubelet.<node>.logs; the reply subject receives LogChunks).
type LogRequest struct {
	Pod string `json:"pod"`
	// UID, when set, must be the pod's: a pod deleted and re-created under
	// the same name is another pod.
	UID        string `json:"uid,omitempty"`
	Follow     bool   `json:"follow,omitempty"`
	Tail       int    `json:"tail"` // -1: all
	Timestamps bool   `json:"timestamps,omitempty"`
}

// Validate checks the request.
func (r *LogRequest) Validate() error {
	var errs []error
	if err := ValidateName("pod", r.Pod, MaxNameLength); err != nil {
		errs = append(errs, err)
	}
	if r.Tail < -1 {
		errs = append(errs, fieldErr("tail", "must be -1 (all) or more"))
	}
	return errors.Join(errs...)
}

// LogChunk is one message of a log stream, kubelet to requester. Seq counts
// from 1 without gaps; a chunk without Data and EOF is a keepalive. The
// last chunk has EOF, and Error when the stream failed.
type LogChunk struct {
	Seq   uint64 `json:"seq"`
	Data  []byte `json:"data,omitempty"`
	EOF   bool   `json:"eof,omitempty"`
	Error string `json:"error,omitempty"`
	// Code classifies Error for the requester (LogCode*).
	Code string `json:"code,omitempty"`
	// Exec streams only: Data is the command's stderr, not its stdout;
	// and on the last chunk, the command's exit code.
	Stderr   bool `json:"stderr,omitempty"`
	ExitCode *int `json:"exitCode,omitempty"`
}

// Codes of a failed log request.
const (
	LogCodeNoContainer = "NoContainer" // the pod has no container (yet) on the node
	LogCodeBadRequest  = "BadRequest"
	LogCodeBusy        = "Busy" // too many log streams on the node
)

// LogAck is the requester's answer to chunks (on <reply>.ctl): every chunk
// up to Seq is delivered, or Cancel: stop streaming.
type LogAck struct {
	Seq    uint64 `json:"seq,omitempty"`
	Cancel bool   `json:"cancel,omitempty"`
}
