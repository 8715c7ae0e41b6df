package kubelet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	ctr "github.com/miniku/miniku/runtime"
	"github.com/miniku/miniku/schemas"
)

// execRuntime is fakeRuntime with commands the tests below run.
type execRuntime struct {
	*fakeRuntime
	cancelled atomic.Int32
}

func (f *execRuntime) Exec(ctx context.Context, id string, args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if id != "c1" {
		return -1, fmt.Errorf("exec in %s: %w", id, ctr.ErrNotFound)
	}
	switch args[0] {
	case "cat":
		if stdin == nil {
			return 0, nil
		}
		_, err := io.Copy(stdout, stdin)
		return 0, err
	case "big":
		_, err := stdout.Write(bytes.Repeat([]byte("x"), 1<<20))
		return 0, err
	case "fail":
		fmt.Fprint(stdout, "out")
		fmt.Fprint(stderr, "oops")
		return 3, nil
	case "gone":
		return -1, ctr.ErrNotRunning
	case "block":
		<-ctx.Done()
		f.cancelled.Add(1)
		return -1, ctx.Err()
	}
	return 127, nil
}

// ExecTerminal types stdin back, as a terminal echoes, after the first
// size it is given.
func (f *execRuntime) ExecTerminal(ctx context.Context, id string, args []string, stdin io.Reader, out io.Writer, resize <-chan ctr.TerminalSize) (int, error) {
	if id != "c1" {
		return -1, fmt.Errorf("exec in %s: %w", id, ctr.ErrNotFound)
	}
	select {
	case sz := <-resize:
		fmt.Fprintf(out, "%dx%d:", sz.Width, sz.Height)
	case <-ctx.Done():
		return -1, ctx.Err()
	}
	_, err := io.Copy(out, stdin)
	return 4, err
}

func mustExecEnv(t *testing.T) (*logEnv, *execRuntime) {
	t.Helper()
	e := mustLogEnv(t)
	rt := &execRuntime{fakeRuntime: e.rt}
	e.k.rt = rt
	stop := e.k.serveExec(context.Background())
	t.Cleanup(stop)
	if err := e.conn.NATS().Flush(); err != nil {
		t.Fatal(err)
	}
	return e, rt
}

// runExec runs req through the bus and returns stdout, stderr and the exit code.
func runExec(t *testing.T, conn *bus.Conn, req schemas.ExecRequest, stdin []byte) (string, string, int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := conn.RequestExec(ctx, "n1", req)
	if err != nil {
		return "", "", -1, err
	}
	defer s.Close()
	if req.Stdin {
		go func() {
			if err := s.WriteStdin(ctx, stdin); err == nil {
				_ = s.CloseStdin(ctx)
			}
		}()
	}
	var out, errb strings.Builder
	for {
		o, err := s.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out.String(), errb.String(), s.ExitCode(), nil
		}
		if err != nil {
			return out.String(), errb.String(), -1, err
		}
		if o.Stderr {
			errb.Write(o.Data)
		} else {
			out.Write(o.Data)
		}
	}
}

func TestKubeletServesExec(t *testing.T) {
	e, _ := mustExecEnv(t)
	in := bytes.Repeat([]byte("hello stdin\n"), 20000) // several chunks
	out, errs, code, err := runExec(t, e.conn, schemas.ExecRequest{Pod: "p", Command: []string{"cat"}, Stdin: true}, in)
	if err != nil || code != 0 || out != string(in) || errs != "" {
		t.Errorf("cat: %d bytes out, %q, code %d, %v", len(out), errs, code, err)
	}
	out, _, code, err = runExec(t, e.conn, schemas.ExecRequest{Pod: "p", Command: []string{"cat"}}, nil)
	if err != nil || code != 0 || out != "" {
		t.Errorf("cat without stdin: %q, %d, %v", out, code, err)
	}
	out, _, code, err = runExec(t, e.conn, schemas.ExecRequest{Pod: "p", UID: "uid-1", Command: []string{"big"}}, nil)
	if err != nil || code != 0 || len(out) != 1<<20 {
		t.Errorf("big: %d bytes, %d, %v", len(out), code, err)
	}
	out, errs, code, err = runExec(t, e.conn, schemas.ExecRequest{Pod: "p", Command: []string{"fail"}}, nil)
	if err != nil || code != 3 || out != "out" || errs != "oops" {
		t.Errorf("fail: %q %q %d %v", out, errs, code, err)
	}
	for _, req := range []schemas.ExecRequest{
		{Pod: "nope", Command: []string{"cat"}},
		{Pod: "elsewhere", Command: []string{"cat"}},
		{Pod: "pending", Command: []string{"cat"}},
		{Pod: "p", UID: "uid-0", Command: []string{"cat"}},
		{Pod: "p", Command: []string{"gone"}},
	} {
		_, _, _, err := runExec(t, e.conn, req, nil)
		var le *bus.LogError
		if !errors.As(err, &le) || le.Code != schemas.LogCodeNoContainer {
			t.Errorf("%+v: %v, want a NoContainer error", req, err)
		}
	}
	_, _, _, err = runExec(t, e.conn, schemas.ExecRequest{Pod: "p"}, nil)
	var le *bus.LogError
	if !errors.As(err, &le) || le.Code != schemas.LogCodeBadRequest || !strings.Contains(le.Msg, "command") {
		t.Errorf("no command: %v", err)
	}
}

// TestExecCancelledByRequester: closing the stream stops the command.
func TestExecCancelledByRequester(t *testing.T) {
	e, rt := mustExecEnv(t)
	ctx := context.Background()
	s, err := e.conn.RequestExec(ctx, "n1", schemas.ExecRequest{Pod: "p", Command: []string{"block"}, Stdin: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	bustest.Eventually(t, 30*time.Second, func() error {
		if rt.cancelled.Load() != 1 {
			return errors.New("command still running")
		}
		return nil
	})
}

func TestExecNoKubelet(t *testing.T) {
	e, _ := mustExecEnv(t)
	_, err := e.conn.RequestExec(context.Background(), "n2", schemas.ExecRequest{Pod: "p", Command: []string{"cat"}})
	if !errors.Is(err, bus.ErrNoKubelet) {
		t.Errorf("node without kubelet: %v", err)
	}
}

// TestExecTerminal: with tty the kubelet runs the command on the runtime's
// terminal, with the requester's size and stdin.
func TestExecTerminal(t *testing.T) {
	e, _ := mustExecEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := e.conn.RequestExec(ctx, "n1", schemas.ExecRequest{Pod: "p", Command: []string{"sh"}, Stdin: true, TTY: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Resize(ctx, schemas.TerminalSize{Width: 90, Height: 20}); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteStdin(ctx, []byte("typed")); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseStdin(ctx); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for {
		o, err := s.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out.Write(o.Data)
	}
	if out.String() != "90x20:typed" || s.ExitCode() != 4 {
		t.Errorf("terminal exec: %q, exit %d", out.String(), s.ExitCode())
	}
}
