package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// kubectl runs the machine's kubectl against a cluster's Kubernetes API.
type kubectl struct {
	// home is kubectl's HOME, for its discovery cache: a test's own.
	bin, config, home string
	// env is added to kubectl's environment (KUBE_EDITOR, say).
	env []string
}

// run runs kubectl with stdin, bounded so a hung kubectl fails the test
// instead of stalling it, and logs what it said.
func (k kubectl) run(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.bin, args...)
	cmd.Env = k.environ()
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	logged := out.String()
	if len(logged) > 1500 {
		logged = logged[:1500] + "\n[...]"
	}
	t.Logf("kubectl %s: err=%v\n%s", strings.Join(args, " "), err, logged)
	return out.String(), err
}

// environ is kubectl's environment: the test's kubeconfig and HOME, and env.
func (k kubectl) environ() []string {
	return append(append(os.Environ(), "KUBECONFIG="+k.config, "HOME="+k.home), k.env...)
}

// must runs kubectl and checks its output matches want.
func (k kubectl) must(t *testing.T, want string, args ...string) string {
	t.Helper()
	out, err := k.run(t, "", args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if !regexp.MustCompile(want).MatchString(out) {
		t.Fatalf("kubectl %s: output does not match %q:\n%s", strings.Join(args, " "), want, out)
	}
	return out
}

const kubectlRS = `apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: kweb
spec:
  replicas: 2
  selector: {matchLabels: {app: kweb}}
  template:
    metadata: {labels: {app: kweb}}
    spec:
      containers:
      - name: c
        image: alpine
        command: ["/bin/sh", "-c", "while true; do sleep 1; done"]
`

const kubectlPod = `apiVersion: v1
kind: Pod
metadata:
  name: kpod
  labels: {app: kpod}
spec:
  containers:
  - name: c
    image: alpine
    command: ["/bin/sh", "-c", "while true; do sleep 1; done"]
`

// TestKubectl drives a real `miniku up` with the machine's kubectl over
// HTTPS with the token; apply and create validate against /openapi.
func TestKubectl(t *testing.T) {
	k, dir := kubectlCluster(t)
	rsFile, podFile := filepath.Join(dir, "rs.yaml"), filepath.Join(dir, "pod.yaml")
	if err := os.WriteFile(rsFile, []byte(kubectlRS), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(podFile, []byte(kubectlPod), 0o644); err != nil {
		t.Fatal(err)
	}

	k.must(t, `Server Version: v1\.33\.0-miniku`, "version")
	k.must(t, `(?m)^pods\s+po\s+v1\s+true\s+Pod$`, "api-resources")
	k.must(t, `(?m)^replicasets\s+rs\s+apps/v1\s+true\s+ReplicaSet$`, "api-resources")
	k.must(t, `(?m)^node-1\s+Ready\s`, "get", "nodes")
	// up's own node is a server's: the control-plane role, as k3s's
	// servers have (set by the server a moment after registration).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, err := k.run(t, "", "get", "nodes")
		if err == nil && regexp.MustCompile(`(?m)^node-1\s+Ready\s+control-plane\s`).MatchString(out) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubectl get nodes: no control-plane role on node-1:\n%s%v", out, err)
		}
	}
	k.must(t, `(?s)default\s+Active.*kube-public\s+Active.*kube-system\s+Active`, "get", "ns")

	// get -w: a Table watch over HTTPS (HTTP/2) shows the pod created next.
	var wout syncBuffer
	wcmd := exec.Command(k.bin, "get", "pods", "-w")
	wcmd.Env = k.environ()
	wcmd.Stdout, wcmd.Stderr = &wout, &wout
	if err := wcmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = wcmd.Process.Kill(); _ = wcmd.Wait() })
	k.must(t, `pod/kpod created`, "create", "-f", podFile)
	eventually(t, 20*time.Second, func() error {
		if !regexp.MustCompile(`(?m)^kpod\s+0/1\s+`).MatchString(wout.String()) {
			return fmt.Errorf("kubectl get pods -w shows %q", wout.String())
		}
		return nil
	})
	// README's kubectl run (args alone would be refused: MiniKu needs the command).
	k.must(t, `pod/krun created`, "run", "krun", "--image=alpine", "--command", "--", "/bin/sh", "-c", "while true; do sleep 1; done")
	k.must(t, `pod "krun" deleted`, "delete", "pod", "krun", "--grace-period=1")
	k.must(t, `replicaset.apps/kweb created`, "apply", "-f", rsFile)
	k.must(t, `replicaset.apps/kweb unchanged`, "apply", "-f", rsFile)
	k.must(t, `replicaset.apps/kweb configured`, "apply", "--filename="+writeTemp(t, dir, strings.Replace(kubectlRS, "replicas: 2", "replicas: 3", 1)))
	eventually(t, 60*time.Second, func() error {
		out, err := k.run(t, "", "get", "rs", "kweb", "--no-headers")
		if err != nil || !regexp.MustCompile(`^kweb\s+3\s+3\s+3\s`).MatchString(out) {
			return fmt.Errorf("get rs: %v %q", err, out)
		}
		return nil
	})
	k.must(t, `replicaset.apps/kweb scaled`, "scale", "rs", "kweb", "--replicas=1")
	k.must(t, `replicaset.apps/kweb patched`, "patch", "rs", "kweb", "--type=merge", "-p", `{"metadata":{"labels":{"tier":"web"}}}`)
	k.must(t, `pod/kpod labeled`, "label", "pod", "kpod", "x=y")
	k.must(t, `pod/kpod condition met`, "wait", "--for=condition=Ready", "pod/kpod", "--timeout=60s")
	k.must(t, `(?m)^default\s+kpod\s+1/1\s+Running\s`, "get", "pods", "-A")
	k.must(t, `(?m)^kpod\s+1/1\s+Running\s+0\s+\S+\s+\S+\s+node-\d`, "get", "pods", "-l", "x=y", "-o", "wide")
	k.must(t, `^pod/kpod\n$`, "get", "pods", "--field-selector", "metadata.name=kpod", "-o", "name")
	k.must(t, `"kind": "Pod"`, "get", "pod", "kpod", "-o", "json")
	k.must(t, `^$`, "logs", "kpod", "--tail=5")
	k.must(t, `No resources found in kube-system namespace`, "get", "pods", "-n", "kube-system")
	if out, err := k.run(t, "", "get", "pods", "-n", "nope"); err == nil || !strings.Contains(out, `namespaces "nope" not found`) {
		t.Errorf("get pods -n nope: %v %q", err, out)
	}
	k.must(t, `(?s)Name:\s+kpod.*Namespace:\s+default.*Status:\s+Running`, "describe", "pod", "kpod")
	k.must(t, `namespace/kt created`, "create", "namespace", "kt")
	k.must(t, `namespace "kt" deleted`, "delete", "namespace", "kt")
	k.must(t, `node/node-2 cordoned`, "cordon", "node-2")
	k.must(t, `(?m)^node-2\s+Ready,SchedulingDisabled\s`, "get", "nodes")
	k.must(t, `node/node-1 drained`, "drain", "node-1", "--ignore-daemonsets", "--force", "--timeout=60s")
	k.must(t, `replicaset.apps "kweb" deleted`, "delete", "-f", rsFile)
	k.must(t, `^(pod "kpod" deleted\n)?$`, "delete", "pod", "kpod", "--grace-period=1", "--ignore-not-found") // drain may have evicted it
	eventually(t, 60*time.Second, func() error {
		out, err := k.run(t, "", "get", "pods", "-o", "name")
		if err != nil || strings.TrimSpace(out) != "" && !strings.Contains(out, "No resources") {
			return fmt.Errorf("pods left: %v %q", err, out)
		}
		return nil
	})
}

// kubectlCluster starts a real `miniku up` with two ready nodes and an
// HTTPS listener, and returns the machine's kubectl configured for it
// with the admin token, and the directory of its kubeconfig.
func kubectlCluster(t *testing.T) (kubectl, string) {
	t.Helper()
	k, dir, _ := kubectlClusterSeed(t)
	return k, dir
}

// kubectlClusterSeed is kubectlCluster that also returns the cluster, for
// tests that drive the seed API and the miniku CLI beside kubectl.
func kubectlClusterSeed(t *testing.T) (kubectl, string, *cluster) {
	t.Helper()
	bin, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed (looked in PATH): skipping the kubectl end-to-end test")
	}
	c := newCluster(t)
	https := freeAddr(t)
	c.upWith(t, "--https-addr", https)
	waitReadyNodes(t, c.api, 2)
	// The kubeconfig up wrote: its CA verifies the serving certificate,
	// as a user's kubectl would.
	dir := t.TempDir()
	return kubectl{bin: bin, config: filepath.Join(c.dataDir, "kubeconfig"), home: dir}, dir, c
}

func writeTemp(t *testing.T, dir, content string) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// syncBuffer is a bytes.Buffer a process writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
