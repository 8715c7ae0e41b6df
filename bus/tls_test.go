package bus_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A component that does not trust the server's certificate keeps retrying,
// and its log says which flag fixes it.
func TestConnectWithoutCATellsWhatToDo(t *testing.T) {
	cert, key := bustest.SelfSignedCert(t)
	dir := t.TempDir()
	authDir := filepath.Join(dir, "auth")
	ns, err := bus.StartServer(bus.ServerConfig{Addr: "127.0.0.1:0", StoreDir: filepath.Join(dir, "store"),
		AuthDir: authDir, TLSCert: cert, TLSKey: key, Logger: bustest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	creds, err := bus.ReadCredentials(bus.CredentialsPath(authDir, bus.UserAPIServer))
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = bus.Connect(ctx, bus.Options{URL: "nats://" + ns.Addr().String(), User: creds.User, Password: creds.Password,
		Logger: slog.New(slog.NewTextHandler(&out, nil))})
	if err == nil {
		t.Fatal("connected without trusting the server's certificate")
	}
	if log := out.String(); !strings.Contains(log, "nats TLS failed") || !strings.Contains(log, "--nats-ca") {
		t.Fatalf("log does not say what to do:\n%s", log)
	}
}
