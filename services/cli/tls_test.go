package cli

import (
	"testing"
	"time"

	"github.com/miniku/miniku/bus/pki"
)

// A local data dir with a CA means HTTPS trusting it; without one, the
// plain-HTTP default; an explicit server or CA wins.
func TestServerAndCA(t *testing.T) {
	withCA := t.TempDir()
	if _, err := pki.EnsureCA(withCA, time.Now()); err != nil {
		t.Fatal(err)
	}
	without := t.TempDir()
	for _, k := range []string{"MINIKU_SERVER", "MINIKU_CA", "MINIKU_DATA_DIR"} {
		t.Setenv(k, "")
	}
	tests := []struct {
		name               string
		o                  options
		wantServer, wantCA string
	}{
		{"local CA", options{dataDir: withCA}, DefaultHTTPSServer, pki.CAPath(withCA)},
		{"no CA", options{dataDir: without}, DefaultServer, ""},
		{"explicit https server", options{dataDir: withCA, server: "https://10.0.0.1:6443"}, "https://10.0.0.1:6443", pki.CAPath(withCA)},
		{"explicit http server", options{dataDir: withCA, server: "127.0.0.1:8080"}, "127.0.0.1:8080", ""},
		{"explicit CA", options{dataDir: withCA, ca: "/x/ca.crt"}, DefaultHTTPSServer, "/x/ca.crt"},
	}
	for _, tc := range tests {
		server, ca := tc.o.serverAndCA(fileConfig{})
		if server != tc.wantServer || ca != tc.wantCA {
			t.Errorf("%s: %q %q, want %q %q", tc.name, server, ca, tc.wantServer, tc.wantCA)
		}
	}
}
