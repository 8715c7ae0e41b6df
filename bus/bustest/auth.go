package bustest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/miniku/miniku/bus"
)

// SecureServer starts an embedded JetStream server that requires users, as
// `miniku up` runs it, with kubelet users for kubelets. It returns the
// server and the directory holding every user's credentials.
func SecureServer(tb testing.TB, kubelets ...string) (*server.Server, string) {
	tb.Helper()
	dir := tb.TempDir()
	authDir := filepath.Join(dir, "auth")
	ns, err := bus.StartServer(bus.ServerConfig{
		Addr: "127.0.0.1:0", StoreDir: filepath.Join(dir, "store"),
		AuthDir: authDir, Kubelets: kubelets, Logger: Logger(tb),
	})
	if err != nil {
		tb.Fatalf("start nats: %v", err)
	}
	tb.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns, authDir
}

// ConnAs connects to url as user with its credentials from authDir; bind
// is Options.Bind (kubelets and viewers may not create buckets).
func ConnAs(tb testing.TB, url, authDir, user string, bind bool) *bus.Conn {
	tb.Helper()
	creds, err := bus.ReadCredentials(bus.CredentialsPath(authDir, user))
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	o := bus.Options{
		URL: url, Name: tb.Name() + "-" + user, Logger: Logger(tb),
		User: creds.User, Password: creds.Password, Bind: bind,
	}
	if user == bus.UserAPIServer {
		o.SecretsKey = SecretsKey() // only its user may use the secrets bucket
	}
	c, err := bus.Connect(ctx, o)
	if err != nil {
		tb.Fatalf("connect nats as %s: %v", user, err)
	}
	tb.Cleanup(c.Close)
	return c
}
