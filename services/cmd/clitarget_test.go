//go:build linux

package cmd

import (
	"path/filepath"
	"testing"
)

// TestCLITarget: what up writes to <data-dir>/cli.yaml for its listen
// addresses: HTTPS first, wildcard hosts dialled on loopback, nothing for a
// port only known once bound.
func TestCLITarget(t *testing.T) {
	ca := filepath.Join("/d", "tls", "ca.crt")
	for _, tc := range []struct {
		api, https, cert, server, ca string
	}{
		{"127.0.0.1:8080", "127.0.0.1:6443", "", "https://127.0.0.1:6443", ca},
		{"127.0.0.1:18080", "", "", "http://127.0.0.1:18080", ""},
		{"", "0.0.0.0:16443", "", "https://127.0.0.1:16443", ca},
		{"", ":16443", "/my.crt", "https://127.0.0.1:16443", ""},
		{"", "[::]:16443", "", "https://127.0.0.1:16443", ca},
		{"", "10.1.2.3:16443", "", "https://10.1.2.3:16443", ca},
		{"127.0.0.1:0", "", "", "", ""},
	} {
		server, gotCA := cliTarget("/d", tc.api, tc.https, tc.cert)
		if server != tc.server || gotCA != tc.ca {
			t.Errorf("cliTarget(%q, %q, %q) = %q, %q; want %q, %q", tc.api, tc.https, tc.cert, server, gotCA, tc.server, tc.ca)
		}
	}
}
