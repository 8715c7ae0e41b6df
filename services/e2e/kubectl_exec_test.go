package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// TestKubectlExec: the machine's kubectl execs into a real container over
// WebSocket (its default) and SPDY: output, exit codes, piped stdin, an
// interactive shell on a terminal, and Kubernetes' errors.
func TestKubectlExec(t *testing.T) {
	k, dir := kubectlCluster(t)
	k.must(t, `pod/kpod created`, "create", "-f", writeTemp(t, dir, kubectlPod))
	k.must(t, `pod/kpod condition met`, "wait", "--for=condition=Ready", "pod/kpod", "--timeout=60s")

	k.must(t, `^hi\n$`, "exec", "kpod", "--", "echo", "hi")
	// kubectl says the code on stderr, as with Kubernetes; it writes
	// stdout and stderr in no set order.
	if out, err := k.run(t, "", "exec", "kpod", "--", "sh", "-c", "echo out; echo err >&2; exit 3"); exitCode(err) != 3 || !strings.Contains(out, "out\n") || !strings.Contains(out, "err\n") || !strings.HasSuffix(out, "command terminated with exit code 3\n") {
		t.Errorf("exit 3: code %d, %q", exitCode(err), out)
	}
	in := strings.Repeat("piped line\n", 5000)
	if out, err := k.run(t, in, "exec", "-i", "kpod", "--", "cat"); err != nil || out != in {
		t.Errorf("exec -i cat: %v, %d bytes of %d", err, len(out), len(in))
	}
	// SPDY, as kubectl falls back to when WebSocket fails.
	spdy := k
	spdy.env = []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false"}
	spdy.must(t, `^hi\n$`, "exec", "kpod", "--", "echo", "hi")
	if _, err := spdy.run(t, "", "exec", "kpod", "--", "sh", "-c", "exit 5"); exitCode(err) != 5 {
		t.Errorf("spdy exit 5: %v", err)
	}
	if out, err := spdy.run(t, "a\nb\n", "exec", "-i", "kpod", "--", "cat"); err != nil || out != "a\nb\n" {
		t.Errorf("spdy exec -i cat: %v %q", err, out)
	}

	t.Run("interactive", func(t *testing.T) { kubectlShell(t, k) })
	t.Run("interactive-spdy", func(t *testing.T) { kubectlShell(t, spdy) })
	// The shells are gone from the container: its command, and ps.
	if out := k.must(t, `PID`, "exec", "kpod", "--", "ps"); regexp.MustCompile(`(?m)\ssh\s*$`).MatchString(out) {
		t.Errorf("an exec'd shell is left in the container:\n%s", out)
	}

	for args, want := range map[string]string{
		"exec nope -- true":       `pods "nope" not found`,
		"exec kpod -c x -- true":  `container x is not valid for pod kpod`,
		"exec kpod -- nosuchcmd":  `executable file not found`,
		"exec kpod -n kt -- true": `not found`,
	} {
		out, err := k.run(t, "", strings.Fields(args)...)
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("kubectl %s: %v %q, want an error saying %q", args, err, out, want)
		}
	}
}

// kubectlShell runs kubectl exec -it on a terminal, types into the shell
// and reads its answer, then exits it.
func kubectlShell(t *testing.T, k kubectl) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.bin, "exec", "-it", "kpod", "--", "sh")
	cmd.Env = append(k.environ(), "TERM=dumb")
	term, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 30, Cols: 100})
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	copied := make(chan struct{})
	go func() { _, _ = io.Copy(&out, term); close(copied) }()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-done
		term.Close()
		<-copied
		t.Logf("kubectl exec -it:\n%q", out.String())
	}()
	wait := func(what string, re *regexp.Regexp) {
		t.Helper()
		eventually(t, 30*time.Second, func() error {
			if !re.MatchString(out.String()) {
				return fmt.Errorf("no %s yet in %q", what, out.String())
			}
			return nil
		})
	}
	// busybox's line editor then asks where the cursor is (ESC[6n) and
	// goes on without an answer.
	wait("prompt", regexp.MustCompile(`/ # `))
	// The terminal's size reached the shell's terminal; then arithmetic
	// only a shell does.
	if _, err := io.WriteString(term, "stty size; echo $((6*7))\r"); err != nil {
		t.Fatal(err)
	}
	wait("size", regexp.MustCompile(`(?m)^30 100\r$`))
	wait("answer", regexp.MustCompile(`(?m)^42\r$`))
	if _, err := io.WriteString(term, "exit\r"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		done <- err // for the deferred wait
		if err != nil {
			t.Errorf("kubectl exec -it after exit: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("kubectl exec -it did not end after exit")
	}
}

// exitCode is a command's exit code from its Run error: 0 for none, -1
// if it did not exit.
func exitCode(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	return -1
}
