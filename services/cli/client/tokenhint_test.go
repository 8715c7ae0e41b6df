package client_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miniku/miniku/services/cli/client"
)

// TestTokenHint: a missing token file points at --data-dir and names the
// path tried, without suggesting sudo; an unreadable one suggests sudo.
func TestTokenHint(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "token")
	_, errMissing := os.ReadFile(missing)
	for _, tc := range []struct {
		name       string
		err        error
		want, dont []string
	}{
		{"missing", errMissing, []string{missing, "--data-dir", "--token"}, []string{"sudo"}},
		{"permission", &fs.PathError{Op: "open", Path: "/var/lib/miniku/token", Err: fs.ErrPermission}, []string{"/var/lib/miniku/token", "sudo", "--token"}, []string{"--data-dir"}},
		{"other", errors.New("boom"), []string{"boom", "--token"}, []string{"sudo"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := client.TokenHint(tc.err)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("TokenHint = %q, lacks %q", got, w)
				}
			}
			for _, d := range tc.dont {
				if strings.Contains(got, d) {
					t.Errorf("TokenHint = %q, should not say %q", got, d)
				}
			}
		})
	}
}
