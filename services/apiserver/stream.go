package apiserver

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Streaming responses (watches, logs) outlive the per-request store
// timeout and the server's read and write timeouts, which are sized for
// one JSON object. They end when the client goes away, when the server
// shuts down (Run cancels streamsCtx before waiting for connections to go
// idle, so a watch does not hold up a restart) or when they are done.
const (
	// streamWriteTimeout bounds one write to a streaming client: a client
	// that stops reading but keeps its connection open is dropped instead
	// of pinning a goroutine and a NATS consumer forever.
	streamWriteTimeout = 30 * time.Second
	// defaultWatchHeartbeat is how often an idle watch sends a BOOKMARK
	// line, so proxies do not cut it and clients notice a dead server.
	defaultWatchHeartbeat = 30 * time.Second
)

// streamed is returned as the body by handlers that wrote their response
// themselves; serve must not write another one.
type streamed struct{}

// streamContext ends when the client disconnects or the server shuts down.
func (s *Server) streamContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(s.streamsCtx, cancel)
	return ctx, func() { stop(); cancel() }
}

// waitConnected returns true once NATS is connected, false if ctx ends
// first. Streams re-create their consumers only when connected: creating
// one while disconnected can block for the library's API timeout whatever
// the context says, holding up a client that has already left.
func (s *Server) waitConnected(ctx context.Context) bool {
	for !s.conn.NATS().IsConnected() {
		select {
		case <-ctx.Done():
			return false
		case <-s.conn.Reconnected():
		case <-time.After(250 * time.Millisecond):
		}
	}
	return ctx.Err() == nil
}

// streamWriter writes one streaming response: every write has its own
// deadline and is flushed at once.
type streamWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// startStream sends the status and headers of a streaming response.
func startStream(w http.ResponseWriter, contentType string) *streamWriter {
	rc := http.NewResponseController(w)
	// The server-wide deadlines are for request/response exchanges; zero
	// means none (errors mean the writer does not support deadlines, as
	// httptest's recorder does, and then there is nothing to lift).
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	// Tells nginx-style proxies not to buffer the stream.
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	sw := &streamWriter{w: w, rc: rc}
	_ = sw.flush()
	return sw
}

func (sw *streamWriter) flush() error {
	if err := sw.rc.Flush(); err != nil && err != http.ErrNotSupported {
		return err
	}
	return nil
}

// Write writes p and flushes it.
func (sw *streamWriter) Write(p []byte) (int, error) {
	_ = sw.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	n, err := sw.w.Write(p)
	if err != nil {
		return n, err
	}
	return n, sw.flush()
}

// writeJSONLine writes v as one line of NDJSON and flushes it.
func (sw *streamWriter) writeJSONLine(v any) error { return sw.writeJSONLineMore(v, false) }

// writeJSONLineMore writes v as one line of NDJSON, flushing it unless more
// lines are known to follow at once: a burst of watch events then goes
// out in a few large writes rather than a write (and a chunk) per event,
// as Kubernetes' watch server does.
func (sw *streamWriter) writeJSONLineMore(v any, more bool) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if !more {
		_, err = sw.Write(data)
		return err
	}
	_ = sw.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	_, err = sw.w.Write(data)
	return err
}

var _ io.Writer = (*streamWriter)(nil)

// parseBoolParam reads an optional boolean query parameter.
func parseBoolParam(r *http.Request, name string) (bool, error) {
	q := r.URL.Query()
	if !q.Has(name) {
		return false, nil
	}
	v := q.Get(name)
	if v == "" {
		return true, nil // ?follow alone means yes, as curl users expect
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest("%s: %q is not a boolean (true or false)", name, v)
	}
	return b, nil
}

// parseUintParam reads an optional non-negative integer query parameter;
// def is returned when it is absent.
func parseUintParam(r *http.Request, name string, def, maxVal uint64) (uint64, error) {
	q := r.URL.Query()
	if !q.Has(name) {
		return def, nil
	}
	v := q.Get(name)
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, badRequest("%s: %q is not a non-negative integer", name, v)
	}
	if maxVal > 0 && n > maxVal {
		return 0, badRequest("%s: %d is larger than the maximum %d", name, n, maxVal)
	}
	return n, nil
}
