package bus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/miniku/miniku/schemas"
)

// Exec between the apiserver and a kubelet over core NATS, on the log
// stream protocol (see logs.go): the requester publishes an ExecRequest to
// kubelet.<node>.exec with reply R; the kubelet sends LogChunks to R with
// the same sequence numbers, acks (on R.ctl), window, keepalives and
// cancel as a log stream. A chunk's Stderr tells the command's stderr from
// its stdout; the last chunk (EOF) carries the exit code, or Error. The
// command's stdin, when asked for, goes as ExecStdin requests to
// R.stdin, each answered once the command has read it: flow control with
// a window of one chunk, enough for typing and for piping a file in.
// With a terminal (ExecRequest.TTY), the requester sets its size with
// TerminalSize requests to R.resize, each answered once applied: one in
// flight, and never queued behind stdin the command does not read.

// KubeletExecSubject is where node's kubelet takes exec requests.
func KubeletExecSubject(node string) string { return "kubelet." + node + ".exec" }

// ExecStdinSubject is where the requester of an exec replying to reply
// sends the command's stdin.
func ExecStdinSubject(reply string) string { return reply + ".stdin" }

// ExecResizeSubject is where the requester of an exec replying to reply
// sends the sizes of the command's terminal.
func ExecResizeSubject(reply string) string { return reply + ".resize" }

// ExecOutput is a piece of an exec'd command's output.
type ExecOutput struct {
	Stderr bool // else stdout
	Data   []byte
}

// ExecStream is the requester's end of an exec.
type ExecStream struct {
	s    *LogStream
	exit int
}

// RequestExec asks node's kubelet to run req's command and returns once
// the kubelet has answered: with a stream, or with ErrNoKubelet,
// ErrKubeletTimeout or the kubelet's *LogError (no such pod, not running).
// Close the stream when done.
func (c *Conn) RequestExec(ctx context.Context, node string, req schemas.ExecRequest) (*ExecStream, error) {
	s, ch, err := c.openStream(ctx, node, KubeletExecSubject(node), "exec in pod "+req.Pod, &req)
	if err != nil {
		return nil, err
	}
	if ch.EOF {
		s.sub.Unsubscribe()
		return nil, errors.New("kubelet ended the exec before it started")
	}
	return &ExecStream{s: s, exit: -1}, nil
}

// Next returns the next piece of output, or io.EOF once the command has
// exited (then ExitCode has its code), or an error. It first acks what the
// previous call returned: call it only once that data is passed on.
func (e *ExecStream) Next(ctx context.Context) (ExecOutput, error) {
	s := e.s
	if s.toAck != 0 {
		s.ack(s.toAck)
		s.toAck = 0
	}
	for !s.eof {
		ch, err := s.receive(ctx, logIdleTimeout)
		if err != nil {
			return ExecOutput{}, err
		}
		if ch.EOF {
			s.eof = true
			if ch.Error != "" {
				return ExecOutput{}, &LogError{Code: ch.Code, Msg: ch.Error}
			}
			if ch.ExitCode == nil {
				return ExecOutput{}, errors.New("exec ended without an exit code")
			}
			e.exit = *ch.ExitCode
			break
		}
		if len(ch.Data) == 0 {
			s.ack(ch.Seq) // keepalive
			continue
		}
		s.toAck = ch.Seq
		return ExecOutput{Stderr: ch.Stderr, Data: ch.Data}, nil
	}
	return ExecOutput{}, io.EOF
}

// ExitCode is the command's exit code once Next has returned io.EOF, else -1.
func (e *ExecStream) ExitCode() int { return e.exit }

// WriteStdin sends p to the command's stdin and returns once the command
// has read it. It fails once the command has exited.
func (e *ExecStream) WriteStdin(ctx context.Context, p []byte) error {
	for len(p) > 0 {
		k := min(len(p), LogChunkSize)
		if err := e.stdin(ctx, schemas.ExecStdin{Data: p[:k]}); err != nil {
			return err
		}
		p = p[k:]
	}
	return nil
}

// CloseStdin closes the command's stdin.
func (e *ExecStream) CloseStdin(ctx context.Context) error {
	return e.stdin(ctx, schemas.ExecStdin{EOF: true})
}

func (e *ExecStream) stdin(ctx context.Context, in schemas.ExecStdin) error {
	return e.request(ctx, ExecStdinSubject(e.s.reply), &in, "exec stdin")
}

// Resize sets the size of the command's terminal (an exec with TTY) and
// returns once the kubelet has set it.
func (e *ExecStream) Resize(ctx context.Context, size schemas.TerminalSize) error {
	return e.request(ctx, ExecResizeSubject(e.s.reply), &size, "exec resize")
}

func (e *ExecStream) request(ctx context.Context, subject string, v any, what string) error {
	data, err := schemas.Marshal(v)
	if err != nil {
		return err
	}
	// The same bound as a silent kubelet during output: a command that
	// reads nothing for that long while we have input gets no more.
	ctx, cancel := context.WithTimeout(ctx, logAckTimeout)
	defer cancel()
	if _, err := e.s.nc.RequestWithContext(ctx, subject, data); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Close ends the exec; the kubelet is told to kill the command if it has
// not exited.
func (e *ExecStream) Close() { e.s.Close() }

// ExecIO is how an ExecFunc's command is connected.
type ExecIO struct {
	Stdin          io.Reader // nil: none
	Stdout, Stderr io.Writer
	// Resize has the sizes of the command's terminal, with TTY; nil without.
	Resize <-chan schemas.TerminalSize
}

// ExecFunc runs a command connected as io says and returns its exit code.
type ExecFunc func(ctx context.Context, io ExecIO) (int, error)

// ServeExec is the kubelet's end of an exec: it runs run with stdout and
// stderr going to reply as chunks, with the log streams' flow control,
// stdin (when req.Stdin) coming from the requester and, with req.TTY, the
// terminal's sizes; then it sends the exit code. run's context ends when
// the requester cancels or is gone.
func ServeExec(ctx context.Context, nc *nats.Conn, reply string, req schemas.ExecRequest, run ExecFunc) error {
	ls, err := newLogSender(ctx, nc, reply, "exec stream")
	if err != nil {
		return err
	}
	defer ls.close()
	ctx, cancel := ls.ctx, ls.cancel
	var wg sync.WaitGroup
	defer wg.Wait()
	eio := ExecIO{Stdout: ls, Stderr: execStderr{ls}}
	if req.Stdin {
		pr, pw := io.Pipe()
		// Unblocks a write in progress and ends the pump below when run
		// returns: the command reads no more.
		defer pr.Close()
		msgs := make(chan *nats.Msg, 16)
		sub, err := nc.ChanSubscribe(ExecStdinSubject(reply), msgs)
		if err != nil {
			return fmt.Errorf("exec stream: subscribe: %w", err)
		}
		defer sub.Unsubscribe()
		eio.Stdin = pr
		wg.Go(func() { pumpStdin(ctx, msgs, pw) })
	}
	if req.TTY {
		msgs := make(chan *nats.Msg, 4)
		sub, err := nc.ChanSubscribe(ExecResizeSubject(reply), msgs)
		if err != nil {
			return fmt.Errorf("exec stream: subscribe: %w", err)
		}
		defer sub.Unsubscribe()
		sizes := make(chan schemas.TerminalSize)
		eio.Resize = sizes
		wg.Go(func() { pumpResize(ctx, msgs, sizes) })
	}
	if err := ls.send(ctx, schemas.LogChunk{}); err != nil {
		return err
	}
	wg.Go(func() { ls.keepalive(ctx) })
	defer cancel() // stops keepalive and the pumps before the wait above

	code, rerr := run(ctx, eio)
	var last schemas.LogChunk
	if rerr == nil {
		last.ExitCode = &code
	}
	return ls.finish(last, rerr, "exec stopped: the kubelet is shutting down")
}

// pumpResize hands the requester's terminal sizes to the command's runner
// in order, answering each once taken. It never closes out: the runner
// stops reading when the command has exited, and ctx ends then.
func pumpResize(ctx context.Context, msgs <-chan *nats.Msg, out chan<- schemas.TerminalSize) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-msgs:
			var size schemas.TerminalSize
			if err := schemas.Unmarshal(m.Data, &size); err != nil {
				continue // the requester waits for its answer and gives up
			}
			select {
			case out <- size:
			case <-ctx.Done():
				return
			}
			_ = m.Respond(nil)
		}
	}
}

// pumpStdin writes the requester's stdin into w in order, answering each
// piece once it is read (or cannot be: the command is gone).
func pumpStdin(ctx context.Context, msgs <-chan *nats.Msg, w *io.PipeWriter) {
	defer w.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-msgs:
			var in schemas.ExecStdin
			if err := schemas.Unmarshal(m.Data, &in); err != nil {
				w.CloseWithError(fmt.Errorf("exec stdin: %w", err))
				return
			}
			var werr error
			if len(in.Data) > 0 {
				_, werr = w.Write(in.Data)
			}
			if in.EOF {
				w.Close()
			}
			_ = m.Respond(nil)
			if in.EOF || werr != nil {
				return
			}
		}
	}
}

// execStderr sends the command's stderr on the stream.
type execStderr struct{ ls *logSender }

func (e execStderr) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), LogChunkSize)
		if err := e.ls.send(e.ls.ctx, schemas.LogChunk{Data: p[:k], Stderr: true}); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}
