package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// busyAddr is a loopback address this test listens on (and so is busy)
// until it ends.
func busyAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

// TestStartupErrors: a command that cannot listen where it is told fails
// at once, naming the flag and the address, before it starts NATS or
// writes to the data dir, and never says it is up. Needs no root: it
// starts no container.
func TestStartupErrors(t *testing.T) {
	bin := miniku(t)
	for _, tc := range []struct {
		name string
		// args after the command's --data-dir; addrs the test made busy
		// come from busy.
		args func(busy, free func() string) []string
		want []string // in the error output
	}{
		{"up busy --api-addr", func(busy, free func() string) []string {
			return []string{"up", "--nodes", "0", "--api-addr", busy(), "--https-addr", free(), "--nats-addr", free()}
		}, []string{"--api-addr", "address already in use"}},
		{"up busy --https-addr", func(busy, free func() string) []string {
			return []string{"up", "--nodes", "0", "--api-addr", free(), "--https-addr", busy(), "--nats-addr", free()}
		}, []string{"--https-addr", "address already in use"}},
		{"up busy --nats-addr", func(busy, free func() string) []string {
			return []string{"up", "--nodes", "0", "--api-addr", free(), "--https-addr", free(), "--nats-addr", busy()}
		}, []string{"--nats-addr", "address already in use"}},
		{"up busy --metrics-addr", func(busy, free func() string) []string {
			return []string{"up", "--nodes", "0", "--api-addr", free(), "--https-addr", free(), "--nats-addr", free(), "--metrics-addr", busy()}
		}, []string{"--metrics-addr", "address already in use"}},
		{"up --insecure-no-auth on 0.0.0.0", func(busy, free func() string) []string {
			_, port, _ := net.SplitHostPort(free())
			return []string{"up", "--nodes", "0", "--insecure-no-auth", "--api-addr", "0.0.0.0:" + port, "--https-addr", "", "--nats-addr", free()}
		}, []string{"--insecure-no-auth", "--api-addr 0.0.0.0:"}},
		{"nats busy --addr", func(busy, free func() string) []string {
			return []string{"nats", "--addr", busy()}
		}, []string{"--addr", "address already in use"}},
		{"apiserver busy --api-addr", func(busy, free func() string) []string {
			return []string{"apiserver", "--nats", "nats://" + free(), "--api-addr", busy(), "--https-addr", free()}
		}, []string{"--api-addr", "address already in use"}},
		{"apiserver busy --https-addr", func(busy, free func() string) []string {
			return []string{"apiserver", "--nats", "nats://" + free(), "--api-addr", free(), "--https-addr", busy()}
		}, []string{"--https-addr", "address already in use"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			var busy []string
			args := tc.args(func() string { a := busyAddr(t); busy = append(busy, a); return a }, func() string { return freeAddr(t) })
			args = append([]string{args[0], "--data-dir", dataDir}, args[1:]...)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+configHome(t))
			began := time.Now()
			out, err := cmd.CombinedOutput()
			took := time.Since(began)
			if err == nil {
				t.Fatalf("miniku %v exited 0 after %v:\n%s", args, took, out)
			}
			if took > 2*time.Second {
				t.Errorf("failed after %v, want well under 2s:\n%s", took, out)
			}
			for _, w := range append(tc.want, busy...) {
				if !strings.Contains(string(out), w) {
					t.Errorf("output does not name %q:\n%s", w, out)
				}
			}
			if strings.Contains(string(out), "is up") {
				t.Errorf("said it is up:\n%s", out)
			}
			// Nothing started: no NATS store, no token, no certificates.
			if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
				entries, _ := os.ReadDir(dataDir)
				t.Errorf("the data dir was written to before the check (%d entries)", len(entries))
			}
		})
	}
}
