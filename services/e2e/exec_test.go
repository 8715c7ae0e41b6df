package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestExec: `miniku exec` into a real container through the apiserver and
// its kubelet: output, exit code, stdin with -i, and clear errors.
func TestExec(t *testing.T) {
	c := newCluster(t)
	c.up(t)
	if code, body := c.api.do("POST", "/pods", `{"name":"sleeper","image":"alpine","command":["sleep","100000"]}`); code != 201 {
		t.Fatalf("POST /pods: %d %s", code, body)
	}
	eventually(t, 60*time.Second, func() error {
		var p struct{ Status string }
		if err := c.api.getJSON("/pods/sleeper", &p); err != nil {
			return err
		}
		if p.Status != "Running" {
			return fmt.Errorf("pod %s", p.Status)
		}
		return nil
	})

	if out := c.mustCLI(t, "", "exec", "sleeper", "--", "hostname"); out != "sleeper\n" {
		t.Errorf("hostname: %q", out)
	}
	// The container's processes: its init, sleep, and the exec'd shell.
	if out := c.mustCLI(t, "", "exec", "sleeper", "--", "sh", "-c", "cat /proc/2/comm; echo /proc/[0-9]*"); !strings.HasPrefix(out, "sleep\n") || len(strings.Fields(out)) != 4 {
		t.Errorf("pid namespace: %q", out)
	}
	if out, errOut, code := c.cli(t, "", "exec", "sleeper", "--", "sh", "-c", "echo out; echo err >&2; exit 7"); code != 7 || out != "out\n" || errOut != "err\n" {
		t.Errorf("exit 7: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	in := strings.Repeat("some input\n", 10000)
	if out, errOut, code := c.cli(t, in, "exec", "-i", "sleeper", "--", "cat"); code != 0 || out != in {
		t.Errorf("cat with -i: code %d, %d bytes out, stderr %q", code, len(out), errOut)
	}
	// Without -i the command's stdin is empty, whatever ours holds.
	if out, _, code := c.cli(t, "ignored\n", "exec", "sleeper", "--", "cat"); code != 0 || out != "" {
		t.Errorf("cat without -i: code %d, %q", code, out)
	}
	if _, errOut, code := c.cli(t, "", "exec", "nope", "--", "ls"); code != 1 || !strings.Contains(errOut, `pod "nope" not found`) {
		t.Errorf("missing pod: code %d, stderr %q", code, errOut)
	}
	if _, errOut, code := c.cli(t, "", "exec", "sleeper", "--", "nosuchcommand"); code != 1 || !strings.Contains(errOut, "executable file not found") {
		t.Errorf("missing command: code %d, stderr %q", code, errOut)
	}
	if _, errOut, code := c.cli(t, "", "exec", "sleeper"); code != 1 || !strings.Contains(errOut, "no command") {
		t.Errorf("no command: code %d, stderr %q", code, errOut)
	}

	// Nothing of the execs stays behind on the host.
	var ids []string
	for id := range liveContainers(t, c.dataDir) {
		ids = append(ids, id)
	}
	if len(ids) != 1 {
		t.Fatalf("containers %v, want one", ids)
	}
	eventually(t, 30*time.Second, func() error {
		dirs, _ := filepath.Glob("/proc/[0-9]*")
		for _, d := range dirs {
			if data, err := os.ReadFile(d + "/cmdline"); err == nil && bytes.Contains(data, []byte("runtime-exec\x00"+ids[0])) {
				return fmt.Errorf("exec process %s left: %q", d, data)
			}
		}
		return nil
	})
}
