package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miniku/miniku/schemas"
)

// cliEnv is the environment of the CLI in tests: the server from
// MINIKU_SERVER and the token found in the data dir, as on a host running
// `miniku up`; the nats context `up` wrote in the test's config home.
func (c *cluster) cliEnv(t *testing.T, extra ...string) []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "MINIKU_") && !strings.HasPrefix(e, "XDG_CONFIG_HOME=") {
			env = append(env, e)
		}
	}
	env = append(env, "MINIKU_SERVER="+c.apiAddr, "MINIKU_DATA_DIR="+c.dataDir, "XDG_CONFIG_HOME="+configHome(t))
	return append(env, extra...)
}

// cli runs `miniku args...` to its end and returns stdout, stderr and the
// exit code.
func (c *cluster) cli(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	return c.cliEnvRun(t, nil, stdin, args...)
}

func (c *cluster) cliEnvRun(t *testing.T, env []string, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(miniku(t), args...)
	cmd.Env = c.cliEnv(t, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run miniku %q: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// mustCLI runs a command that must succeed.
func (c *cluster) mustCLI(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, code := c.cli(t, stdin, args...)
	if code != 0 {
		t.Fatalf("miniku %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// streamCLI starts a long-running command (get -w, events, logs -f)
// whose output is collected; it is killed at cleanup.
type streamed struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func (c *cluster) streamCLI(t *testing.T, args ...string) *streamed {
	t.Helper()
	cmd := exec.Command(miniku(t), args...)
	cmd.Env = c.cliEnv(t)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &streamed{cmd: cmd, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			s.mu.Lock()
			s.out.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
		}
	}()
	go func() { _ = cmd.Wait(); pw.Close(); close(s.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-s.done
	})
	return s
}

func (s *streamed) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

func (s *streamed) waitFor(t *testing.T, what string, re *regexp.Regexp) {
	t.Helper()
	eventually(t, 60*time.Second, func() error {
		if !re.MatchString(s.output()) {
			return fmt.Errorf("%s: no match for %s in:\n%s", what, re, s.output())
		}
		return nil
	})
}

const k8sPodJSON = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"k8s-json","labels":{"app":"k8s-json"}},
 "spec":{"restartPolicy":"Never","containers":[{"name":"main","image":"alpine","command":["sh","-c"],"args":["echo from k8s json"]}]}}`

// TestCLI runs the CLI binary against a real `miniku up`: apply (own and
// Kubernetes-style, YAML and JSON, files and stdin) → get (tables, json,
// yaml, -w) → scale --wait → logs → describe → events → cordon → delete,
// and the errors people meet.
func TestCLI(t *testing.T) {
	c := newCluster(t)
	c.up(t)

	// Apply: MiniKu's own YAML with --wait, then a Kubernetes-style
	// ReplicaSet (YAML), MiniKu's own JSON pod, a Kubernetes JSON pod on stdin.
	out := c.mustCLI(t, "", "apply", "-f", "../../deployments/examples/web.yaml", "--wait", "--timeout", "2m")
	if !strings.Contains(out, "replicaset/web created") || !strings.Contains(out, "replicaset/web: 3/3 Running") {
		t.Fatalf("apply --wait output:\n%s", out)
	}
	out = c.mustCLI(t, "", "apply", "-f", "../../deployments/examples/k8s-replicaset.yaml", "-f", "../../deployments/examples/pod.json")
	if !strings.Contains(out, "replicaset/frontend created") || !strings.Contains(out, "pod/hello created") {
		t.Fatalf("apply output:\n%s", out)
	}
	out = c.mustCLI(t, k8sPodJSON, "apply", "-f", "-", "--wait")
	if !strings.Contains(out, "pod/k8s-json created") {
		t.Fatalf("apply stdin output:\n%s", out)
	}
	// Again: nothing changes; a changed count is an update (PUT with resourceVersion).
	if out := c.mustCLI(t, "", "apply", "-f", "../../deployments/examples/web.yaml"); !strings.Contains(out, "replicaset/web unchanged") {
		t.Fatalf("re-apply output:\n%s", out)
	}
	fe, err := c.api.replicaSet("frontend")
	if err != nil {
		t.Fatal(err)
	}
	if fe.DesiredCount != 2 || fe.Template.Command[2] != "echo frontend $GREETING; while true; do sleep 1; done" || fe.Template.Resources.Memory != "64Mi" {
		t.Fatalf("frontend as stored: %+v", fe)
	}
	eventually(t, 60*time.Second, func() error { _, err := running(c.api, "frontend", 2); return err })

	// get: aligned tables with the columns, json and yaml that parse.
	out = c.mustCLI(t, "", "get", "pods", "-l", "app=web")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !regexp.MustCompile(`^NAME\s+STATUS\s+RESTARTS\s+NODE\s+AGE$`).MatchString(lines[0]) {
		t.Fatalf("get pods:\n%s", out)
	}
	statusCol := strings.Index(lines[0], "STATUS")
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "web-") || !strings.HasPrefix(l[statusCol:], "Running ") || !strings.Contains(l, "node-") {
			t.Fatalf("get pods: row %q not aligned or not a running web pod:\n%s", l, out)
		}
	}
	out = c.mustCLI(t, "", "get", "pods", "-o", "json")
	var pods []schemas.Pod
	if err := json.Unmarshal([]byte(out), &pods); err != nil || len(pods) < 6 {
		t.Fatalf("get pods -o json: %v (%d pods)\n%s", err, len(pods), out)
	}
	if out := c.mustCLI(t, "", "get", "rs", "web", "-o", "yaml"); !strings.Contains(out, "desiredCount: 3") || !strings.Contains(out, "name: web") {
		t.Fatalf("get rs web -o yaml:\n%s", out)
	}
	if out := c.mustCLI(t, "", "get", "rs", "-o", "wide"); !regexp.MustCompile(`(?m)^NAME\s+DESIRED\s+CURRENT\s+READY\s+AGE\s+IMAGE\s+SELECTOR\n`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^web\s+3\s+3\s+3\s+\S+\s+busybox\s+app=web$`).MatchString(out) {
		t.Fatalf("get rs -o wide:\n%s", out)
	}
	if out := c.mustCLI(t, "", "get", "nodes"); !regexp.MustCompile(`(?m)^node-1\s+Ready\s+\d+/110\s`).MatchString(out) {
		t.Fatalf("get nodes:\n%s", out)
	}
	if out := c.mustCLI(t, "", "get", "events", "--for", "pod/hello"); !regexp.MustCompile(`(?m)Normal\s+Scheduled\s+pod/hello`).MatchString(out) {
		t.Fatalf("get events --for pod/hello:\n%s", out)
	}

	// Live: a watch of web's pods and the bus events of pods.
	watch := c.streamCLI(t, "get", "pods", "-l", "app=web", "-w")
	watch.waitFor(t, "get -w table", regexp.MustCompile(`(?m)^NAME\s+STATUS`))
	events := c.streamCLI(t, "events", "--kind", "pod")
	events.waitFor(t, "events start", regexp.MustCompile(`watching pod\.>`))

	// scale --wait: a live count until ready.
	out = c.mustCLI(t, "", "scale", "rs/web", "--replicas", "5", "--wait", "--timeout", "2m")
	if !strings.Contains(out, "replicaset/web scaled to 5") || !strings.Contains(out, "replicaset/web: 5/5 Running") {
		t.Fatalf("scale --wait output:\n%s", out)
	}
	mine, err := running(c.api, "web", 5)
	if err != nil {
		t.Fatal(err)
	}
	watch.waitFor(t, "get -w sees the new pods run", regexp.MustCompile(`(?m)^web-\S+\s+Running\s+0\s+node-\d\s+\d+s$`))
	if strings.Contains(watch.output(), "hello") || strings.Contains(watch.output(), "frontend") {
		t.Fatalf("get pods -l app=web -w printed other pods:\n%s", watch.output())
	}
	events.waitFor(t, "events sees pods run", regexp.MustCompile(`pod\.running\s+pod/web-\S+ node=node-\d`))

	// logs, describe.
	pod := mine[0].Name
	eventually(t, 30*time.Second, func() error {
		out, errOut, code := c.cli(t, "", "logs", pod)
		if code != 0 || !strings.Contains(out, "serving on "+pod) {
			return fmt.Errorf("logs %s: exit %d %q %q", pod, code, out, errOut)
		}
		return nil
	})
	eventually(t, 30*time.Second, func() error {
		out, _, _ := c.cli(t, "", "logs", "k8s-json")
		if out != "from k8s json\n" {
			return fmt.Errorf("logs k8s-json: %q", out)
		}
		return nil
	})
	out = c.mustCLI(t, "", "describe", "pod", pod)
	for _, want := range []string{"Name:                 " + pod, "Status:               Running", "Image:              busybox",
		"Environment:        GREETING=hello", "Limits:             cpu=100m memory=32Mi", "Events:", "Scheduled"} {
		if !strings.Contains(out, want) {
			t.Fatalf("describe pod: no %q in\n%s", want, out)
		}
	}

	// cordon shows in get nodes; uncordon clears it.
	c.mustCLI(t, "", "cordon", "node-1")
	if out := c.mustCLI(t, "", "get", "nodes", "node-1"); !strings.Contains(out, "Ready,SchedulingDisabled") {
		t.Fatalf("after cordon:\n%s", out)
	}
	c.mustCLI(t, "", "uncordon", "node-1")

	// A replicaset that cannot become ready: --wait fails with the reason.
	out, errOut, code := c.cli(t, `{"kind":"ReplicaSet","name":"nowhere","desiredCount":1,"selector":{"app":"nowhere"},"template":{"image":"alpine","nodeSelector":{"disk":"none"}}}`,
		"apply", "-f", "-", "--wait", "--timeout", "3s")
	if code == 0 || !strings.Contains(errOut, "replicaset/nowhere not ready after 3s: 0/1 Running; pod/nowhere-") {
		t.Fatalf("apply --wait of an unschedulable rs: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}

	// delete pods by name; then drain: node-2's pods (now only
	// replicasets') are evicted and replaced on node-1.
	c.mustCLI(t, "", "delete", "pod", "hello", "k8s-json", "--grace-period", "0")
	out = c.mustCLI(t, "", "drain", "node-2")
	if !strings.Contains(out, "evicting pod/") || !strings.HasSuffix(out, "node/node-2 drained\n") {
		t.Fatalf("drain output:\n%s", out)
	}
	eventually(t, 90*time.Second, func() error {
		pods, err := running(c.api, "web", 5)
		for _, p := range pods {
			if p.NodeName != "node-1" {
				return fmt.Errorf("pod %s still on %s", p.Name, p.NodeName)
			}
		}
		return err
	})
	c.mustCLI(t, "", "uncordon", "node-2")

	// delete replicasets by name and by manifest; then the pods go.
	if out := c.mustCLI(t, "", "delete", "rs/web", "rs", "nowhere"); out != "replicaset/web deleted\nreplicaset/nowhere deleted\n" {
		t.Fatalf("delete output %q", out)
	}
	c.mustCLI(t, "", "delete", "-f", "../../deployments/examples/k8s-replicaset.yaml")
	events.waitFor(t, "events sees pods deleted", regexp.MustCompile(`pod\.deleted\s+pod/hello`))
	eventually(t, 60*time.Second, func() error {
		pods, err := c.api.pods()
		if err != nil || len(pods) > 0 {
			return fmt.Errorf("pods left: %d %v", len(pods), err)
		}
		return nil
	})
	if _, errOut, code := c.cli(t, "", "get", "rs", "web"); code == 0 || !strings.Contains(errOut, "404") {
		t.Fatalf("get rs web after delete: exit %d %s", code, errOut)
	}

	// Errors that say what to do, and a bad manifest writes nothing.
	_, errOut, code = c.cli(t, "", "get", "pods", "--server", "127.0.0.1:1")
	if code == 0 || !strings.Contains(errOut, "cannot reach apiserver at http://127.0.0.1:1: is 'miniku up' running?") {
		t.Fatalf("unreachable server: exit %d %s", code, errOut)
	}
	_, errOut, code = c.cli(t, "", "get", "pods", "--token", "wrong")
	if code == 0 || !strings.Contains(errOut, "refused the token from --token") {
		t.Fatalf("bad token: exit %d %s", code, errOut)
	}
	_, errOut, code = c.cliEnvRun(t, []string{"MINIKU_DATA_DIR=" + t.TempDir()}, "", "get", "pods")
	if code == 0 || !strings.Contains(errOut, "wants a token and none was found") {
		t.Fatalf("no token: exit %d %s", code, errOut)
	}
	bad := "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: bad}\nspec:\n  selector: {matchLabels: {app: bad}}\n  template:\n    metadata: {labels: {app: bad}}\n    spec:\n      volumes: [{name: v}]\n      containers: [{name: c, image: alpine}]\n"
	_, errOut, code = c.cli(t, bad, "apply", "-f", "-")
	if code == 0 || !strings.Contains(errOut, "spec.template.spec.volumes: not supported by MiniKu") {
		t.Fatalf("bad manifest: exit %d %s", code, errOut)
	}
	if code, _ := c.api.do("GET", "/replicasets/bad", ""); code != 404 {
		t.Fatalf("a refused manifest was written: GET /replicasets/bad: %d", code)
	}
}
