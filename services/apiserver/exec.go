package apiserver

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas"
)

// ExecContentType is the media type of an exec's response: a sequence of
// frames, each a type byte, a 4-byte big-endian payload length and the
// payload. Types are the Exec* constants; the last frame is ExecExit or
// ExecError.
const ExecContentType = "application/vnd.miniku.exec-stream"

// Frame types of an exec response.
const (
	ExecStdout byte = 1 // the command's stdout
	ExecStderr byte = 2 // its stderr
	ExecExit   byte = 3 // its exit code, as decimal text: the last frame
	ExecError  byte = 4 // the exec failed after the response began: the last frame, a message
)

// maxExecFrame bounds a frame's payload; a kubelet's chunks are smaller.
const maxExecFrame = 1 << 20

// podExec serves POST /pods/{name}/exec?command=A&command=B[&stdin=true]:
// runs the command in the pod's container on its node (bus.RequestExec)
// and streams its output back as frames (ExecContentType). With stdin the
// request body is the command's stdin, read while the response streams
// (HTTP/1.1 full duplex); without, the command's stdin is empty.
func (s *Server) podExec(ctx context.Context, w http.ResponseWriter, r *http.Request, name string) (int, any, error) {
	q := maps.Clone(r.URL.Query())
	command := q["command"] // repeated, as Kubernetes takes it
	delete(q, "command")
	if err := checkQuery(q, "stdin"); err != nil {
		return 0, nil, err
	}
	stdin, err := parseBoolParam(r, "stdin")
	if err != nil {
		return 0, nil, err
	}
	req := schemas.ExecRequest{Pod: name, Command: command, Stdin: stdin}
	if err := req.Validate(); err != nil {
		return 0, nil, badRequest("invalid exec: %s", flatten(err))
	}
	pod, err := s.scheduledPod(ctx, name, "nothing runs to exec in")
	if err != nil {
		return 0, nil, err
	}
	req.UID = pod.UID

	sctx, cancel := s.streamContext(r)
	defer cancel()
	stream, err := s.conn.RequestExec(sctx, pod.NodeName, req)
	if err != nil {
		return 0, nil, execError(pod, err)
	}
	defer stream.Close()
	log := s.log.With("pod", name, "node", pod.NodeName)
	rc := http.NewResponseController(w)
	if stdin {
		// Else net/http would not read the body once the response began.
		if err := rc.EnableFullDuplex(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return 0, nil, err
		}
	}
	sw := startStream(w, ExecContentType)
	if stdin {
		pctx, pcancel := context.WithCancel(sctx)
		var wg sync.WaitGroup
		wg.Go(func() { pumpExecStdin(pctx, r.Body, stream) })
		defer func() {
			// A Read of the body blocked on a silent client ends at the
			// deadline; nothing may read it once we return.
			pcancel()
			_ = rc.SetReadDeadline(time.Unix(1, 0))
			wg.Wait()
		}()
	}
	for {
		out, err := stream.Next(sctx)
		if errors.Is(err, io.EOF) {
			_ = writeExecFrame(sw, ExecExit, []byte(strconv.Itoa(stream.ExitCode())))
			return 0, streamed{}, nil
		}
		if err != nil {
			if sctx.Err() == nil {
				log.Warn("exec stream broken", "err", err)
				_ = writeExecFrame(sw, ExecError, []byte(err.Error()))
			}
			return 0, streamed{}, nil
		}
		typ := ExecStdout
		if out.Stderr {
			typ = ExecStderr
		}
		if err := writeExecFrame(sw, typ, out.Data); err != nil {
			log.Debug("exec client gone", "err", err)
			return 0, streamed{}, nil
		}
	}
}

// pumpExecStdin passes the request body to the command's stdin, then EOF.
// It stops at the first failure: the command has exited, or the client.
func pumpExecStdin(ctx context.Context, body io.Reader, stream *bus.ExecStream) {
	buf := make([]byte, bus.LogChunkSize)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if werr := stream.WriteStdin(ctx, buf[:n]); werr != nil {
				return
			}
		}
		if err == io.EOF {
			_ = stream.CloseStdin(ctx)
			return
		}
		if err != nil {
			return
		}
	}
}

// writeExecFrame writes one frame and flushes it.
func writeExecFrame(w io.Writer, typ byte, payload []byte) error {
	for len(payload) > maxExecFrame {
		if err := writeExecFrame(w, typ, payload[:maxExecFrame]); err != nil {
			return err
		}
		payload = payload[maxExecFrame:]
	}
	frame := make([]byte, 5+len(payload))
	frame[0] = typ
	binary.BigEndian.PutUint32(frame[1:5], uint32(len(payload)))
	copy(frame[5:], payload)
	_, err := w.Write(frame)
	return err
}

func execError(pod *schemas.Pod, err error) error {
	return kubeletStreamError(pod, err, "exec in")
}
