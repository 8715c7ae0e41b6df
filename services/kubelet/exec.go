package kubelet

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/miniku/miniku/bus"
	ctr "github.com/miniku/miniku/runtime"
	"github.com/miniku/miniku/schemas"
)

// Execer is the part of a runtime that runs a command in a container.
// Not part of Runtime: a runtime without it serves no exec.
type Execer interface {
	Exec(ctx context.Context, id string, args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error)
}

// TerminalExecer is the part of a runtime that runs a command on a
// terminal of its own (exec with TTY).
type TerminalExecer interface {
	ExecTerminal(ctx context.Context, id string, args []string, stdin io.Reader, out io.Writer, resize <-chan ctr.TerminalSize) (int, error)
}

var (
	_ Execer         = (*ctr.Runtime)(nil)
	_ TerminalExecer = (*ctr.Runtime)(nil)
)

// maxExecStreams bounds the commands one kubelet runs for exec at once.
const maxExecStreams = 32

// serveExec answers exec requests for this node's pods on
// kubelet.<node>.exec (see bus.ServeExec for the protocol) until the
// returned stop is called or ctx ends. stop kills the commands still
// running and waits for them. A failure to subscribe is logged, not fatal.
func (k *Kubelet) serveExec(ctx context.Context) (stop func()) {
	return serveStream(k, ctx, streamServer{
		subject: bus.KubeletExecSubject(k.cfg.NodeName),
		queue:   "kubelet-exec",
		what:    "exec",
		max:     maxExecStreams,
		busy:    fmt.Sprintf("node %s is running %d exec commands already, retry later", k.cfg.NodeName, maxExecStreams),
	}, k.exec)
}

// exec runs req's command in the pod's current container.
func (k *Kubelet) exec(ctx context.Context, reply string, req schemas.ExecRequest) {
	ex, ok := k.rt.(Execer)
	if !ok {
		k.respondLogError(reply, schemas.LogCodeNoContainer, fmt.Sprintf("the runtime of node %s cannot exec", k.cfg.NodeName))
		return
	}
	tex, _ := k.rt.(TerminalExecer)
	if req.TTY && tex == nil {
		k.respondLogError(reply, schemas.LogCodeBadRequest, fmt.Sprintf("the runtime of node %s has no terminals: exec without tty", k.cfg.NodeName))
		return
	}
	c, err := k.logContainer(schemas.LogRequest{Pod: req.Pod, UID: req.UID})
	if err == nil && c.Status != ctr.StatusRunning {
		err = fmt.Errorf("pod %s is not running: its container exited", req.Pod)
	}
	if err != nil {
		k.respondLogError(reply, schemas.LogCodeNoContainer, err.Error())
		return
	}
	log := k.log.With("pod", req.Pod, "container", c.ID)
	log.Info("exec", "command", req.Command, "stdin", req.Stdin, "tty", req.TTY)
	err = bus.ServeExec(ctx, k.conn.NATS(), reply, req, func(ctx context.Context, eio bus.ExecIO) (int, error) {
		var code int
		var err error
		if req.TTY {
			code, err = tex.ExecTerminal(ctx, c.ID, req.Command, eio.Stdin, eio.Stdout, terminalSizes(ctx, eio.Resize))
		} else {
			code, err = ex.Exec(ctx, c.ID, req.Command, eio.Stdin, eio.Stdout, eio.Stderr)
		}
		if errors.Is(err, ctr.ErrNotRunning) || errors.Is(err, ctr.ErrNotFound) {
			return code, &bus.LogError{Code: schemas.LogCodeNoContainer, Msg: fmt.Sprintf("pod %s is not running: its container exited", req.Pod)}
		}
		return code, err
	})
	if err != nil {
		log.Warn("exec stream failed", "err", err)
		return
	}
	log.Debug("exec ended")
}

// terminalSizes passes the requester's terminal sizes on to the runtime
// until ctx ends (the command has exited).
func terminalSizes(ctx context.Context, in <-chan schemas.TerminalSize) <-chan ctr.TerminalSize {
	out := make(chan ctr.TerminalSize)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case sz := <-in:
				select {
				case out <- ctr.TerminalSize{Width: sz.Width, Height: sz.Height}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}
