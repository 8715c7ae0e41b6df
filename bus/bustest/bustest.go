// Package bustest starts real embedded NATS servers for tests: the same
// JetStream code path as production, one throwaway server per test.
package bustest

import (
	"context"
	"crypto/rand"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/encrypt"
)

// Server starts an embedded JetStream server on a free loopback port with its
// store in dir (a fresh temp dir when empty); it is shut down at cleanup.
func Server(tb testing.TB, addr, dir string) *server.Server {
	tb.Helper()
	if dir == "" {
		dir = tb.TempDir()
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ns, err := bus.StartServer(bus.ServerConfig{Addr: addr, StoreDir: dir})
	if err != nil {
		tb.Fatalf("start nats: %v", err)
	}
	tb.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// Conn connects to url as a component would; closed at cleanup.
func Conn(tb testing.TB, url string, log *slog.Logger) *bus.Conn {
	tb.Helper()
	if log == nil {
		log = Logger(tb)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := bus.Connect(ctx, bus.Options{URL: url, Name: tb.Name(), Logger: log, SecretsKey: SecretsKey()})
	if err != nil {
		tb.Fatalf("connect nats: %v", err)
	}
	tb.Cleanup(c.Close)
	return c
}

// SecretsKey is one AES-GCM key for the whole test binary, so that every
// connection of a test (and of a restarted server) reads the secrets the
// others wrote, as the apiserver's connections do in production.
var SecretsKey = sync.OnceValue(func() *encrypt.AESGCM {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	a, err := encrypt.New(encrypt.Key{Name: "test", Secret: secret})
	if err != nil {
		panic(err) // a 32-byte key with a valid name cannot fail
	}
	return a
})

// Logger sends slog output to the test log, so it shows only on failure
// (or with -v) and is attributed to the right test.
func Logger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Helper()
	w.tb.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// Eventually polls f until it returns nil or timeout passes, then fails the
// test with f's last error.
func Eventually(tb testing.TB, timeout time.Duration, f func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not true after %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
