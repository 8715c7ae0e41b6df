package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// exitCode waits up to timeout for a streamed command to end and returns
// its exit code.
func (s *streamed) exitCode(t *testing.T, what string, timeout time.Duration) int {
	t.Helper()
	select {
	case <-s.done:
		return s.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("%s still runs after %v:\n%s", what, timeout, s.output())
		return -1
	}
}

const natsRestartBefore = `kind: ReplicaSet
name: web
desiredCount: 2
selector: {app: web}
template: {image: busybox, command: [sleep, "3600"], terminationGracePeriodSeconds: 1}
---
kind: ReplicaSet
name: keep
desiredCount: 1
selector: {app: keep}
template: {image: busybox, command: [sleep, "3600"], terminationGracePeriodSeconds: 1}
---
kind: Pod
name: solo
image: busybox
command: [sleep, "3600"]
terminationGracePeriodSeconds: 1
`

const natsRestartDuring = `kind: ReplicaSet
name: during
desiredCount: 1
selector: {app: during}
template: {image: busybox, command: [sleep, "3600"], terminationGracePeriodSeconds: 1}
`

// TestCLIAcrossNATSRestart: every component in its own process, and the NATS
// server killed (-9) and started again on its data dir while the CLI is
// used. Commands issued during the outage say at once that the store is
// unavailable and that they retry, after the Retry-After the API sends
// (1 s), and succeed once NATS is back; a request refused with 503 has no
// effect, even after NATS is back; every object acknowledged before the kill
// is still there; a `get -w` and an `events` started before the kill go on
// and show what happens after it (events saying it lost NATS and is back);
// the cluster converges to what the commands asked for, with the same
// containers for the pods that were running.
func TestCLIAcrossNATSRestart(t *testing.T) {
	requireRoot(t)
	began := time.Now()
	cc, a := startCluster(t, []string{"node-a"}, 1)
	t.Logf("cluster up in %v", time.Since(began).Round(time.Millisecond))
	// The CLI finds the token in the control plane's data dir, as on the
	// host running `miniku nats` and `miniku apiserver`.
	c := &cluster{dataDir: cc.ctlDir, apiAddr: strings.TrimPrefix(a.base, "http://"), api: a}

	out := c.mustCLI(t, natsRestartBefore, "apply", "-f", "-", "--wait", "--timeout", "60s")
	for _, want := range []string{"replicaset/web created", "replicaset/keep created", "pod/solo created"} {
		if !strings.Contains(out, want) {
			t.Fatalf("apply: no %q in\n%s", want, out)
		}
	}
	eventually(t, 30*time.Second, func() error { _, err := running(a, "web", 2); return err })
	keepBefore, err := running(a, "keep", 1)
	if err != nil {
		t.Fatal(err)
	}

	watch := c.streamCLI(t, "get", "pods", "-w")
	watch.waitFor(t, "get -w table", regexp.MustCompile(`(?m)^solo\s+Running`))
	events := c.streamCLI(t, "events", "--nats", cc.natsURL, "--kind", "pod")
	events.waitFor(t, "events start", regexp.MustCompile(`watching pod\.>`))

	t.Logf("objects running %v after the start", time.Since(began).Round(time.Millisecond))
	// Acknowledged the moment before the kill: it must survive it too.
	if out := c.mustCLI(t, "", "apply", "-f", "../../deployments/examples/pod.json"); !strings.Contains(out, "pod/hello created") {
		t.Fatalf("apply pod.json: %s", out)
	}
	cc.kill("nats")
	killed := time.Now()
	eventually(t, 10*time.Second, func() error {
		if code, body := a.do("GET", "/healthz", ""); code != 503 {
			return fmt.Errorf("healthz with NATS down: %d %s, want 503", code, body)
		}
		return nil
	})

	// Issued during the outage: a scale, a create from a file, a delete and
	// a get. Each must be told 503 and retry after the server's Retry-After.
	during := filepath.Join(t.TempDir(), "during.yaml")
	if err := os.WriteFile(during, []byte(natsRestartDuring), 0o600); err != nil {
		t.Fatal(err)
	}
	retrying := regexp.MustCompile(`miniku: .*\(HTTP 503\); retrying in 1s\n`)
	issued := time.Now()
	cmds := []struct {
		what string
		s    *streamed
		want *regexp.Regexp
	}{
		{"scale", c.streamCLI(t, "scale", "rs/web", "--replicas", "3"), regexp.MustCompile(`(?m)^replicaset/web scaled to 3$`)},
		{"apply", c.streamCLI(t, "apply", "-f", during), regexp.MustCompile(`(?m)^replicaset/during created$`)},
		{"delete", c.streamCLI(t, "delete", "pod", "solo", "--grace-period", "0"), regexp.MustCompile(`(?m)^pod/solo deleted$`)},
		{"get", c.streamCLI(t, "get", "rs", "keep"), regexp.MustCompile(`(?m)^keep\s+1\s+1\s+1\s`)},
	}
	for _, cmd := range cmds {
		cmd.s.waitFor(t, cmd.what+" during the outage", retrying)
		// At once, not after the apiserver's request timeout (10 s).
		if d := time.Since(issued); d > 5*time.Second {
			t.Errorf("%s told to retry %v after it was issued, want at once", cmd.what, d.Round(time.Millisecond))
		}
		t.Logf("%s told to retry %v after it was issued", cmd.what, time.Since(issued).Round(time.Millisecond))
	}
	// A POST refused with 503 must have had no effect, even once NATS is
	// back (nats.go would buffer its write while reconnecting and send it
	// then).
	if code, body := a.do("POST", "/replicasets", chaosRS("phantom", 1)); code != 503 {
		t.Errorf("POST during the outage: %d %s, want 503", code, body)
	}
	if d := time.Since(killed); d < 3*time.Second {
		time.Sleep(3*time.Second - d)
	}
	for _, cmd := range cmds {
		select {
		case <-cmd.s.done:
			t.Fatalf("%s ended during the outage:\n%s", cmd.what, cmd.s.output())
		default:
		}
	}

	cc.restart("nats")
	restarted := time.Now()
	t.Logf("NATS down for %v", restarted.Sub(killed).Round(time.Millisecond))
	for _, cmd := range cmds {
		if code := cmd.s.exitCode(t, cmd.what, 30*time.Second); code != 0 || !cmd.want.MatchString(cmd.s.output()) {
			t.Errorf("%s across the restart: exit %d, want 0 and %s:\n%s", cmd.what, code, cmd.want, cmd.s.output())
		}
		t.Logf("miniku %s:\n%s", cmd.what, cmd.s.output())
	}
	t.Logf("CLI commands issued during the outage done %v after the restart", time.Since(restarted).Round(time.Millisecond))

	// Nothing acknowledged is lost, and the cluster converges to what was
	// asked during the outage.
	out = c.mustCLI(t, "", "get", "rs")
	for _, rs := range []string{"web", "keep", "during"} {
		if !regexp.MustCompile(`(?m)^` + rs + `\s`).MatchString(out) {
			t.Errorf("replicaset %s missing after the NATS restart:\n%s", rs, out)
		}
	}
	eventually(t, 30*time.Second, func() error {
		if _, err := running(a, "web", 3); err != nil {
			return err
		}
		if _, err := running(a, "during", 1); err != nil {
			return err
		}
		if _, ok, err := a.getPod("hello"); err != nil || !ok {
			return fmt.Errorf("pod hello, created just before the kill, is gone (%v)", err)
		}
		if p, ok, err := a.getPod("solo"); err != nil || ok {
			return fmt.Errorf("pod solo still there (%s, deletionTimestamp %v) or %v", p.Status, p.DeletionTimestamp, err)
		}
		return nil
	})
	if code, body := a.do("GET", "/replicasets/phantom", ""); code != 404 {
		t.Errorf("a POST answered 503 during the outage took effect after it: %d %s", code, body)
	}
	t.Logf("converged %v after the restart", time.Since(restarted).Round(time.Millisecond))
	keepAfter, err := running(a, "keep", 1)
	if err != nil {
		t.Fatal(err)
	}
	if keepAfter[0].Name != keepBefore[0].Name || keepAfter[0].ContainerID != keepBefore[0].ContainerID {
		t.Errorf("keep's pod was %s/%s before the restart and is %s/%s after", keepBefore[0].Name, keepBefore[0].ContainerID,
			keepAfter[0].Name, keepAfter[0].ContainerID)
	}

	// The watches went on through the outage: they show what came after.
	dur, err := running(a, "during", 1)
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.QuoteMeta(dur[0].Name)
	watch.waitFor(t, "get -w after the restart", regexp.MustCompile(`(?m)^`+name+`\s+Running\s`))
	watch.waitFor(t, "get -w sees solo go", regexp.MustCompile(`(?m)^solo\s+Deleted`))
	events.waitFor(t, "events after the restart", regexp.MustCompile(`pod\.running\s+pod/`+name))
	// events says it lost NATS and that what was published meanwhile is
	// not shown (core NATS does not replay), then that it is back.
	events.waitFor(t, "events says the connection was lost",
		regexp.MustCompile(`(?s)miniku: lost the connection to NATS \(.*\); reconnecting \(events published meanwhile are not shown\)\n.*miniku: reconnected to NATS at nats://`))
	for _, s := range []*streamed{watch, events} {
		select {
		case <-s.done:
			t.Errorf("a watch ended across the NATS restart:\n%s", s.output())
		default:
		}
	}
	if exited := cc.reviveExited(); len(exited) > 0 {
		t.Errorf("components exited during the NATS restart: %v", exited)
	}
	cc.checkNoPanic()
	t.Logf("miniku events:\n%s", events.output())
	t.Logf("whole test %v", time.Since(began).Round(time.Millisecond))
}
