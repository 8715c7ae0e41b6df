package bus_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
)

// On a three-server cluster the buckets are made R3, and a component
// connecting later with the default (or a lower) replica count leaves them
// at 3: the extra scheduler started without --replicas turned all
// five streams to R1 within 4 s.
func TestClusterReplicasNeverLowered(t *testing.T) {
	_, urls := bustest.Cluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	connect := func(replicas int) *bus.Conn {
		t.Helper()
		c, err := bus.Connect(ctx, bus.Options{URL: urls, Name: t.Name(), Replicas: replicas, Logger: bustest.Logger(t), SecretsKey: bustest.SecretsKey()})
		if err != nil {
			t.Fatalf("connect with replicas %d: %v", replicas, err)
		}
		t.Cleanup(c.Close)
		return c
	}
	first := connect(3)
	if _, err := first.NewLease(ctx, bus.LeaseConfig{Name: "scheduler"}); err != nil {
		t.Fatal(err)
	}
	for _, replicas := range []int{0, 1} {
		c := connect(replicas)
		if _, err := c.NewLease(ctx, bus.LeaseConfig{Name: "scheduler"}); err != nil {
			t.Fatal(err)
		}
	}
	js, err := jetstream.New(first.NATS())
	if err != nil {
		t.Fatal(err)
	}
	streams := 0
	for name := range js.StreamNames(ctx).Name() {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if r := s.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("stream %s has %d replicas after components connected with 0 and 1, want 3", name, r)
		}
		streams++
	}
	if streams < 5 {
		t.Fatalf("%d streams, want every bucket's and the events'", streams)
	}
	// And the cluster serves: a write through one connection is read
	// through another.
	p := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "p"}, PodSpec: schemas.PodSpec{Image: "busybox"}}
	if err := first.Pods.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := connect(0).Pods.Get(ctx, "p"); err != nil {
		t.Fatal(err)
	}
}

// A server that goes silent without closing its connections (a
// partition, a hung host) is noticed by the ping interval and the client
// moves to another server of the cluster: the library's defaults would
// keep it there for minutes (the issue saw the whole cluster frozen ~105 s).
func TestSilentServerLeftWithinSeconds(t *testing.T) {
	servers, _ := bustest.Cluster(t, 3)
	px := newSilencer(t, servers[0].Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Only the proxy is named; the cluster tells the client of the others,
	// as it does a component given one server's address.
	c, err := bus.Connect(ctx, bus.Options{URL: "nats://" + px.addr(), Name: t.Name(), Replicas: 3, Logger: bustest.Logger(t), SecretsKey: bustest.SecretsKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bustest.Eventually(t, 10*time.Second, func() error {
		if len(c.NATS().DiscoveredServers()) < 2 {
			return errors.New("the other servers are not known yet")
		}
		return nil
	})
	px.silence()
	start := time.Now()
	p := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "after"}, PodSpec: schemas.PodSpec{Image: "busybox"}}
	for {
		wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
		err := c.Pods.Create(wctx, p)
		wcancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no write through another server %v after the first went silent: %v", time.Since(start), err)
		}
	}
	took := time.Since(start)
	t.Logf("writes resumed %v after the connected server went silent (ping interval %v, %d pings out); now on %s",
		took.Round(10*time.Millisecond), bus.PingInterval, bus.MaxPingsOut, c.NATS().ConnectedUrlRedacted())
	// Ping interval × (pings out + 1) plus a reconnect and slack for a
	// loaded machine; the library's defaults take 4 minutes.
	if limit := bus.PingInterval*time.Duration(bus.MaxPingsOut+1) + 10*time.Second; took > limit {
		t.Fatalf("writes resumed after %v, want under %v", took, limit)
	}
}

// silencer is a TCP proxy to one server that can go silent: it keeps the
// connections open and reads them, but forwards nothing more either way,
// as a partitioned host looks to its clients.
type silencer struct {
	ln     net.Listener
	target string
	quiet  atomic.Bool
	wg     sync.WaitGroup
}

func newSilencer(t *testing.T, target string) *silencer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silencer{ln: ln, target: target}
	var mu sync.Mutex
	var conns []net.Conn
	s.wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			s.wg.Go(func() { s.pipe(out, in) })
			s.wg.Go(func() { s.pipe(in, out) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *silencer) addr() string { return s.ln.Addr().String() }
func (s *silencer) silence()     { s.quiet.Store(true) }

func (s *silencer) pipe(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !s.quiet.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
