package runtimecmd

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/miniku/miniku/runtime/image/imagetest"
)

func TestRunAndPs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runs a container: needs root (CI runs it as root)")
	}
	root := t.TempDir()
	rootfs := imagetest.BusyboxRootfs(t)
	var stdout, stderr bytes.Buffer
	code := Main([]string{"run", "--root", root, "--rootfs", rootfs, "--id", "cli", "--env", "WHO=world", "--",
		"sh", "-c", "echo hello $WHO; echo oops >&2; exit 4"}, &stdout, &stderr)
	if code != 4 || stdout.String() != "hello world\n" || stderr.String() != "oops\n" {
		t.Errorf("run: code %d, stdout %q, stderr %q; want 4, hello world, oops", code, stdout.String(), stderr.String())
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("run left %d entries in its root", len(entries))
	}
	stdout.Reset()
	if code := Main([]string{"run", "--root", root, "--", "true"}, &stdout, &stderr); code != 125 {
		t.Errorf("run without --rootfs: code %d, want 125", code)
	}
	stdout.Reset()
	if code := Main([]string{"ps", "--root", root}, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "ID ") {
		t.Errorf("ps: code %d, output %q", code, stdout.String())
	}
}
