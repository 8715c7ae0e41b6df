package bus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/miniku/miniku/schemas"
)

// Log streaming between the apiserver and a kubelet over core NATS.
//
// The requester subscribes to an inbox R and publishes a LogRequest to
// kubelet.<node>.logs with reply R. The kubelet subscribes to R.ctl, then
// sends LogChunks to R: first an empty one at once (so the requester knows
// it is served), then the data in chunks of at most LogChunkSize, then one
// with EOF (and Error if the stream failed). A failed lookup (no such
// container) is a single EOF chunk with Error and Code.
//
// Flow control: the requester acks each chunk on R.ctl after it has passed
// the data on; the kubelet keeps at most logWindow chunks unacked, so a
// slow HTTP client slows the kubelet's reading rather than filling memory.
// An idle stream (a follow with no new lines) gets an empty keepalive
// chunk every LogKeepalive. The kubelet stops when the requester cancels
// (LogAck.Cancel) or stops acking for logAckTimeout (it died); the
// requester gives up when nothing arrives for logIdleTimeout (the kubelet
// died).

// KubeletLogsSubject is where node's kubelet takes log requests.
func KubeletLogsSubject(node string) string { return "kubelet." + node + ".logs" }

// LogControlSubject is where the requester of a stream replying to reply
// sends its acks and cancel.
func LogControlSubject(reply string) string { return reply + ".ctl" }

const (
	// LogChunkSize bounds the data of one chunk.
	LogChunkSize = 32 << 10
	// logWindow is how many chunks may be unacked.
	logWindow = 8
)

// Timing of log streams; variables so tests can shorten them.
var (
	LogKeepalive    = 5 * time.Second
	logAckTimeout   = 30 * time.Second
	logIdleTimeout  = 20 * time.Second
	logFirstTimeout = 10 * time.Second
)

var (
	// ErrNoKubelet: nothing listens for the node's log requests (the
	// kubelet is down or the node does not exist).
	ErrNoKubelet = errors.New("no kubelet answers for the node")
	// ErrKubeletTimeout: the kubelet did not answer, or stopped sending
	// in the middle of a stream.
	ErrKubeletTimeout = errors.New("kubelet did not answer in time")
)

// LogError is a failure the kubelet reported.
type LogError struct {
	Code string // schemas.LogCode*
	Msg  string
}

func (e *LogError) Error() string { return e.Msg }

// LogStream is the requester's end of a log stream.
type LogStream struct {
	nc    *nats.Conn
	reply string
	sub   *nats.Subscription
	msgs  chan *nats.Msg
	next  uint64 // the Seq expected next
	toAck uint64 // the chunk handed out last, acked at the next Next
	eof   bool
}

// RequestLogs asks node's kubelet for logs and returns once the kubelet has
// answered: with a stream, or with ErrNoKubelet, ErrKubeletTimeout or the
// kubelet's *LogError. Close the stream when done.
func (c *Conn) RequestLogs(ctx context.Context, node string, req schemas.LogRequest) (*LogStream, error) {
	s, ch, err := c.openStream(ctx, node, KubeletLogsSubject(node), "logs of pod "+req.Pod, &req)
	if err != nil {
		return nil, err
	}
	if ch.EOF {
		s.eof = true
	}
	return s, nil
}

// receive waits for the next chunk and checks its sequence.
func (s *LogStream) receive(ctx context.Context, timeout time.Duration) (schemas.LogChunk, error) {
	var ch schemas.LogChunk
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ch, ctx.Err()
	case <-t.C:
		return ch, ErrKubeletTimeout
	case m := <-s.msgs:
		if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
			return ch, ErrNoKubelet
		}
		if err := schemas.Unmarshal(m.Data, &ch); err != nil {
			return ch, fmt.Errorf("log chunk: %w", err)
		}
		if ch.Seq != s.next {
			// Only a dropped message (slow consumer) can cause this.
			return ch, fmt.Errorf("log chunk %d lost (got %d)", s.next, ch.Seq)
		}
		s.next++
		return ch, nil
	}
}

func (s *LogStream) ack(seq uint64) {
	data, _ := schemas.Marshal(&schemas.LogAck{Seq: seq})
	_ = s.nc.Publish(LogControlSubject(s.reply), data)
}

// Next returns the next piece of the log, io.EOF at its end, or an error.
// It first acks what the previous call returned: call it only once that
// data is passed on.
func (s *LogStream) Next(ctx context.Context) ([]byte, error) {
	if s.toAck != 0 {
		s.ack(s.toAck)
		s.toAck = 0
	}
	for !s.eof {
		ch, err := s.receive(ctx, logIdleTimeout)
		if err != nil {
			return nil, err
		}
		if ch.EOF {
			s.eof = true
			if ch.Error != "" {
				return nil, &LogError{Code: ch.Code, Msg: ch.Error}
			}
			if len(ch.Data) > 0 {
				return ch.Data, nil
			}
			break
		}
		if len(ch.Data) == 0 {
			s.ack(ch.Seq) // keepalive
			continue
		}
		s.toAck = ch.Seq
		return ch.Data, nil
	}
	return nil, io.EOF
}

// Close ends the stream; the kubelet is told to stop if it has not finished.
func (s *LogStream) Close() {
	if !s.eof {
		data, _ := schemas.Marshal(&schemas.LogAck{Cancel: true})
		_ = s.nc.Publish(LogControlSubject(s.reply), data)
		s.eof = true
	}
	_ = s.sub.Unsubscribe()
}

// RespondLogError answers a log request with a failure and no stream.
func RespondLogError(nc *nats.Conn, reply string, code, msg string) error {
	data, err := schemas.Marshal(&schemas.LogChunk{Seq: 1, EOF: true, Code: code, Error: msg})
	if err != nil {
		return err
	}
	return nc.Publish(reply, data)
}

// ServeLogStream is the kubelet's end: it calls produce with a writer whose
// data goes to reply in chunks, with flow control, and ends the stream
// when produce returns. The context given to produce ends when the
// requester cancels or is gone. An error from produce is sent to the
// requester (a *LogError keeps its code).
func ServeLogStream(ctx context.Context, nc *nats.Conn, reply string, produce func(ctx context.Context, w io.Writer) error) error {
	ls, err := newLogSender(ctx, nc, reply, "log stream")
	if err != nil {
		return err
	}
	defer ls.close()
	ctx, cancel := ls.ctx, ls.cancel
	if err := ls.send(ctx, schemas.LogChunk{}); err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Go(func() { ls.keepalive(ctx) })
	defer wg.Wait()
	defer cancel() // stops keepalive before the wait above

	perr := produce(ctx, ls)
	return ls.finish(schemas.LogChunk{}, perr, "log stream stopped: the kubelet is shutting down")
}

// logSender is the kubelet's writer.
type logSender struct {
	nc     *nats.Conn
	reply  string
	ctx    context.Context // ends with the stream
	cancel context.CancelFunc
	ctl    *nats.Subscription // the requester's acks and cancel
	acks   chan struct{}
	// requesterGone: it cancelled or stopped acking, so nothing more is sent.
	requesterGone atomic.Bool

	mu    sync.Mutex
	seq   uint64 // last sent
	acked uint64
	// waitingSince is when the requester last made progress (or the
	// first chunk went unacked): a requester silent for logAckTimeout
	// while chunks are outstanding is gone.
	waitingSince time.Time
	lastSend     time.Time
}

func (ls *logSender) control(m *nats.Msg) {
	var a schemas.LogAck
	if err := schemas.Unmarshal(m.Data, &a); err != nil {
		return
	}
	if a.Cancel {
		ls.requesterGone.Store(true)
		ls.cancel()
		return
	}
	ls.mu.Lock()
	if a.Seq > ls.acked && a.Seq <= ls.seq {
		ls.acked = a.Seq
		ls.waitingSince = time.Now()
	}
	ls.mu.Unlock()
	select {
	case ls.acks <- struct{}{}:
	default:
	}
}

// send waits for room in the window and sends ch with the next Seq.
func (ls *logSender) send(ctx context.Context, ch schemas.LogChunk) error {
	for {
		ls.mu.Lock()
		if ls.seq-ls.acked < logWindow {
			break
		}
		ls.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ls.acks:
		}
	}
	defer ls.mu.Unlock()
	return ls.publishLocked(ch)
}

func (ls *logSender) publishLocked(ch schemas.LogChunk) error {
	ls.seq++
	ch.Seq = ls.seq
	data, err := schemas.Marshal(&ch)
	if err != nil {
		return err
	}
	if err := ls.nc.Publish(ls.reply, data); err != nil {
		return fmt.Errorf("log stream: send: %w", err)
	}
	now := time.Now()
	if ls.seq == ls.acked+1 {
		ls.waitingSince = now
	}
	ls.lastSend = now
	return nil
}

// Write sends p in chunks; it blocks while the window is full, and fails
// once the stream is cancelled.
func (ls *logSender) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), LogChunkSize)
		if err := ls.send(ls.ctx, schemas.LogChunk{Data: p[:k]}); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

// keepalive sends empty chunks on an idle stream and cancels the stream
// when the requester stops acking.
func (ls *logSender) keepalive(ctx context.Context) {
	t := time.NewTicker(LogKeepalive / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ls.mu.Lock()
		now := time.Now()
		if ls.seq > ls.acked && now.Sub(ls.waitingSince) > logAckTimeout {
			ls.mu.Unlock()
			ls.requesterGone.Store(true)
			ls.cancel()
			return
		}
		if now.Sub(ls.lastSend) >= LogKeepalive && ls.seq-ls.acked < logWindow {
			_ = ls.publishLocked(schemas.LogChunk{})
		}
		ls.mu.Unlock()
	}
}
