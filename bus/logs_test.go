package bus_test

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

	"github.com/nats-io/nats.go"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
)

// serveLogs answers node's log requests with produce, like a kubelet.
// done receives ServeLogStream's result for each request.
func serveLogs(t *testing.T, c *bus.Conn, node string, produce func(ctx context.Context, req schemas.LogRequest, w io.Writer) error) chan error {
	t.Helper()
	done := make(chan error, 16)
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := c.NATS().Subscribe(bus.KubeletLogsSubject(node), func(m *nats.Msg) {
		var req schemas.LogRequest
		if err := schemas.Unmarshal(m.Data, &req); err != nil {
			t.Errorf("request: %v", err)
			return
		}
		go func() {
			done <- bus.ServeLogStream(ctx, c.NATS(), m.Reply, func(ctx context.Context, w io.Writer) error {
				return produce(ctx, req, w)
			})
		}()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.NATS().Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe(); cancel() })
	return done
}

func readAll(t *testing.T, s *bus.LogStream) []byte {
	t.Helper()
	var out bytes.Buffer
	for {
		b, err := s.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return out.Bytes()
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if len(b) > bus.LogChunkSize {
			t.Fatalf("chunk of %d bytes", len(b))
		}
		out.Write(b)
	}
}

func TestLogStream(t *testing.T) {
	ns := bustest.Server(t, "", "")
	c := bustest.Conn(t, ns.ClientURL(), nil)
	var want bytes.Buffer
	for i := range 20000 {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	done := serveLogs(t, c, "n1", func(ctx context.Context, req schemas.LogRequest, w io.Writer) error {
		if req.Pod != "p" || req.Tail != 7 || !req.Timestamps {
			return &bus.LogError{Code: schemas.LogCodeBadRequest, Msg: fmt.Sprintf("request %+v", req)}
		}
		data := want.Bytes()
		for len(data) > 0 { // uneven writes, some larger than a chunk
			n := min(len(data), 100_000, 1+len(data)%70_001)
			if _, err := w.Write(data[:n]); err != nil {
				return err
			}
			data = data[n:]
		}
		return nil
	})
	ctx := context.Background()
	s, err := c.RequestLogs(ctx, "n1", schemas.LogRequest{Pod: "p", Tail: 7, Timestamps: true})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, s)
	s.Close()
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("got %d bytes, want %d", len(got), want.Len())
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// A failure of the producer reaches the requester with its code.
	s, err = c.RequestLogs(ctx, "n1", schemas.LogRequest{Pod: "p"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Next(ctx)
	var le *bus.LogError
	if !errors.As(err, &le) || le.Code != schemas.LogCodeBadRequest {
		t.Fatalf("Next after a failed produce: %v", err)
	}
	s.Close()
	<-done
}

func TestLogStreamErrors(t *testing.T) {
	defer bus.SetLogTimings(50*time.Millisecond, time.Second, time.Second, 300*time.Millisecond)()
	ns := bustest.Server(t, "", "")
	c := bustest.Conn(t, ns.ClientURL(), nil)
	ctx := context.Background()

	// Nobody serves the node.
	if _, err := c.RequestLogs(ctx, "down", schemas.LogRequest{Pod: "p"}); !errors.Is(err, bus.ErrNoKubelet) {
		t.Errorf("no kubelet: %v", err)
	}
	// Someone listens but never answers.
	sub, err := c.NATS().Subscribe(bus.KubeletLogsSubject("mute"), func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if _, err := c.RequestLogs(ctx, "mute", schemas.LogRequest{Pod: "p"}); !errors.Is(err, bus.ErrKubeletTimeout) {
		t.Errorf("mute kubelet: %v", err)
	}
	// A refusal without a stream.
	sub2, err := c.NATS().Subscribe(bus.KubeletLogsSubject("n2"), func(m *nats.Msg) {
		_ = bus.RespondLogError(c.NATS(), m.Reply, schemas.LogCodeNoContainer, "pod p has no container")
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub2.Unsubscribe()
	_, err = c.RequestLogs(ctx, "n2", schemas.LogRequest{Pod: "p"})
	var le *bus.LogError
	if !errors.As(err, &le) || le.Code != schemas.LogCodeNoContainer || le.Msg != "pod p has no container" {
		t.Errorf("refusal: %v", err)
	}
}

// A slow reader holds the producer back to the window; a cancel stops it;
// an idle follow is kept alive by keepalives.
func TestLogStreamFlowControlAndCancel(t *testing.T) {
	defer bus.SetLogTimings(20*time.Millisecond, time.Second, 300*time.Millisecond, 5*time.Second)()
	ns := bustest.Server(t, "", "")
	c := bustest.Conn(t, ns.ClientURL(), nil)
	var written atomic.Int64
	more := make(chan struct{})
	done := serveLogs(t, c, "n1", func(ctx context.Context, _ schemas.LogRequest, w io.Writer) error {
		chunk := bytes.Repeat([]byte("x"), bus.LogChunkSize)
		for {
			if written.Load() == 1<<20 {
				// Idle like a follow with no new output, well past the
				// requester's idle timeout, until told to go on.
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-more:
				}
			}
			if _, err := w.Write(chunk); err != nil {
				return err
			}
			written.Add(int64(len(chunk)))
		}
	})
	ctx := context.Background()
	s, err := c.RequestLogs(ctx, "n1", schemas.LogRequest{Pod: "p", Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Nothing is acked yet: the producer stops at the window (8 chunks,
	// minus the first empty one).
	window := int64(8 * bus.LogChunkSize)
	bustest.Eventually(t, 10*time.Second, func() error {
		if n := written.Load(); n < window-2*bus.LogChunkSize {
			return fmt.Errorf("producer wrote %d bytes", n)
		}
		return nil
	})
	for range 20 {
		if n := written.Load(); n > window {
			t.Fatalf("producer ran %d bytes ahead of an idle reader (window %d)", n, window)
		}
		time.Sleep(10 * time.Millisecond) // giving a runaway producer a chance to show
	}
	// Reading lets it go on, up to the pause at 1 MiB.
	var got int64
	for got < 1<<20 {
		b, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("Next after %d bytes: %v", got, err)
		}
		got += int64(len(b))
	}
	// Idle for several idle timeouts: keepalives keep the stream up.
	idle := time.Now()
	go func() { time.Sleep(time.Second); close(more) }()
	if b, err := s.Next(ctx); err != nil || len(b) == 0 {
		t.Fatalf("Next after the pause: %d bytes, %v", len(b), err)
	}
	if d := time.Since(idle); d < 300*time.Millisecond {
		t.Logf("note: pause was only %v", d)
	}
	// Close cancels the producer.
	s.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeLogStream after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("producer not stopped by the cancel")
	}
}

// A requester that vanishes without a cancel (its process died) stops the
// producer once it has not acked for the ack timeout.
func TestLogStreamRequesterGone(t *testing.T) {
	defer bus.SetLogTimings(20*time.Millisecond, 200*time.Millisecond, time.Second, 5*time.Second)()
	ns := bustest.Server(t, "", "")
	c := bustest.Conn(t, ns.ClientURL(), nil)
	done := serveLogs(t, c, "n1", func(ctx context.Context, _ schemas.LogRequest, w io.Writer) error {
		<-ctx.Done()
		return ctx.Err()
	})
	s, err := c.RequestLogs(context.Background(), "n1", schemas.LogRequest{Pod: "p", Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	_ = s // never read, never closed: only keepalives flow, unacked
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeLogStream: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("producer still running for a requester that is gone")
	}
	s.Close()
}

// A kubelet that stops mid-stream says so: the requester does not wait for
// its idle timeout.
func TestLogStreamServerStops(t *testing.T) {
	ns := bustest.Server(t, "", "")
	c := bustest.Conn(t, ns.ClientURL(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	sub, err := c.NATS().Subscribe(bus.KubeletLogsSubject("n1"), func(m *nats.Msg) {
		go func() {
			done <- bus.ServeLogStream(ctx, c.NATS(), m.Reply, func(ctx context.Context, w io.Writer) error {
				fmt.Fprintln(w, "hello")
				<-ctx.Done()
				return ctx.Err()
			})
		}()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	s, err := c.RequestLogs(context.Background(), "n1", schemas.LogRequest{Pod: "p", Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if b, err := s.Next(context.Background()); err != nil || string(b) != "hello\n" {
		t.Fatalf("first: %q %v", b, err)
	}
	cancel()
	start := time.Now()
	_, err = s.Next(context.Background())
	var le *bus.LogError
	if !errors.As(err, &le) || !strings.Contains(le.Msg, "shutting down") {
		t.Fatalf("after the server stopped: %v", err)
	}
	t.Logf("requester told after %v", time.Since(start))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
