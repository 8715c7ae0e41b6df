// Package imagetest builds small container images and root filesystems from
// the host's static busybox, for tests that need a real image but cannot
// reach a public registry.
package imagetest

import (
	"os"
	"path/filepath"
	"testing"
)

// BusyboxPath is where Debian's busybox-static installs its binary.
const BusyboxPath = "/bin/busybox"

// Applets are linked into every busybox root filesystem; enough for a shell,
// sleep loops and the usual test commands.
var Applets = []string{
	"sh", "true", "false", "sleep", "echo", "cat", "ls", "ps", "hostname",
	"id", "env", "mount", "umount", "touch", "rm", "mkdir", "kill", "pwd", "test", "grep", "wc", "yes", "head",
}

// RequireBusybox skips the test when busybox-static is not installed.
func RequireBusybox(tb testing.TB) {
	tb.Helper()
	if _, err := os.Stat(BusyboxPath); err != nil {
		tb.Skipf("needs %s (apt-get install busybox-static): %v", BusyboxPath, err)
	}
}

// BusyboxRootfs returns a fresh directory holding a minimal root filesystem:
// /bin/busybox, its applet links, and the empty directories a container needs.
func BusyboxRootfs(tb testing.TB) string {
	tb.Helper()
	RequireBusybox(tb)
	dir := tb.TempDir()
	for _, d := range []string{"bin", "proc", "dev", "sys", "tmp", "etc", "root"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	data, err := os.ReadFile(BusyboxPath)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), data, 0o755); err != nil {
		tb.Fatal(err)
	}
	for _, a := range Applets {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}
