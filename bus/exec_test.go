package bus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
)

// An exec between the apiserver and a kubelet with their real NATS users:
// the request, output both ways of flow control, stdin and the exit code
// all pass, and no other kubelet may take the request.
func TestExecStreamPermissions(t *testing.T) {
	ns, authDir := bustest.SecureServer(t, "node-1", "node-2")
	url := ns.ClientURL()
	api := bustest.ConnAs(t, url, authDir, bus.UserAPIServer, false)
	k1, k1errs := rawAs(t, url, authDir, bus.KubeletUser("node-1"))
	k2, k2errs := rawAs(t, url, authDir, bus.KubeletUser("node-2"))

	if _, err := k2.QueueSubscribe("kubelet.node-1.exec", "kubelet-exec", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	wantViolation(t, k2errs, "kubelet.node-1.exec")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	if _, err := k1.QueueSubscribe("kubelet.node-1.exec", "kubelet-exec", func(m *nats.Msg) {
		wg.Go(func() {
			err := bus.ServeExec(ctx, k1, m.Reply, schemas.ExecRequest{Stdin: true}, func(_ context.Context, eio bus.ExecIO) (int, error) {
				n, err := io.Copy(eio.Stdout, eio.Stdin)
				fmt.Fprintf(eio.Stderr, "%d bytes", n)
				return 7, err
			})
			if err != nil {
				t.Error(err)
			}
		})
	}); err != nil {
		t.Fatal(err)
	}
	if err := k1.Flush(); err != nil {
		t.Fatal(err)
	}
	s, err := api.RequestExec(ctx, "node-1", schemas.ExecRequest{Pod: "p", Command: []string{"cat"}, Stdin: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	in := bytes.Repeat([]byte("0123456789"), 50000)
	go func() {
		if err := s.WriteStdin(ctx, in); err == nil {
			_ = s.CloseStdin(ctx)
		}
	}()
	var out, errb bytes.Buffer
	for {
		o, err := s.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if o.Stderr {
			errb.Write(o.Data)
		} else {
			out.Write(o.Data)
		}
	}
	if !bytes.Equal(out.Bytes(), in) || errb.String() != "500000 bytes" || s.ExitCode() != 7 {
		t.Errorf("exec: %d bytes out, stderr %q, exit %d", out.Len(), errb.String(), s.ExitCode())
	}
	select {
	case err := <-k1errs:
		if strings.Contains(err.Error(), "Permissions") {
			t.Errorf("kubelet: %v", err)
		}
	default:
	}
}

// A terminal's sizes reach the kubelet in order, with the kubelet's real
// NATS permissions.
func TestExecResize(t *testing.T) {
	ns, authDir := bustest.SecureServer(t, "node-1")
	url := ns.ClientURL()
	api := bustest.ConnAs(t, url, authDir, bus.UserAPIServer, false)
	k1, k1errs := rawAs(t, url, authDir, bus.KubeletUser("node-1"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	if _, err := k1.Subscribe(bus.KubeletExecSubject("node-1"), func(m *nats.Msg) {
		var req schemas.ExecRequest
		if err := schemas.Unmarshal(m.Data, &req); err != nil {
			t.Error(err)
			return
		}
		wg.Go(func() {
			err := bus.ServeExec(ctx, k1, m.Reply, req, func(ctx context.Context, eio bus.ExecIO) (int, error) {
				if eio.Resize == nil || eio.Stdin != nil {
					return 1, errors.New("a terminal without stdin, want resizes and no stdin")
				}
				for range 2 {
					select {
					case sz := <-eio.Resize:
						fmt.Fprintf(eio.Stdout, "%dx%d ", sz.Width, sz.Height)
					case <-ctx.Done():
						return 1, ctx.Err()
					}
				}
				return 0, nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}); err != nil {
		t.Fatal(err)
	}
	if err := k1.Flush(); err != nil {
		t.Fatal(err)
	}
	s, err := api.RequestExec(ctx, "node-1", schemas.ExecRequest{Pod: "p", Command: []string{"sh"}, TTY: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, sz := range []schemas.TerminalSize{{Width: 80, Height: 24}, {Width: 132, Height: 50}} {
		if err := s.Resize(ctx, sz); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
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
	if out.String() != "80x24 132x50 " || s.ExitCode() != 0 {
		t.Errorf("sizes seen %q, exit %d", out.String(), s.ExitCode())
	}
	select {
	case err := <-k1errs:
		t.Errorf("kubelet: %v", err)
	default:
	}
}
