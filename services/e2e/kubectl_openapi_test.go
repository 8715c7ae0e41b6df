package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miniku/miniku/bus/pki"
)

// kubectlEnv writes a kubeconfig for `up`'s HTTPS listener (its CA, its
// token) and returns kubectl with an environment that uses it: a temp HOME,
// so kubectl's discovery and OpenAPI caches start empty.
func kubectlEnv(t *testing.T, dataDir, httpsAddr string) (string, []string) {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed: this test drives the real kubectl (the test machines have /usr/bin/kubectl)")
	}
	tok, err := os.ReadFile(filepath.Join(dataDir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	kc := filepath.Join(home, "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: miniku, cluster: {server: "https://%s", certificate-authority: %q}}]
users: [{name: miniku, user: {token: %q}}]
contexts: [{name: miniku, context: {cluster: miniku, user: miniku, namespace: default}}]
current-context: miniku
`, httpsAddr, pki.CAPath(dataDir), strings.TrimSpace(string(tok)))
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return kubectl, append(os.Environ(), "KUBECONFIG="+kc, "HOME="+home)
}

func runKubectl(t *testing.T, kubectl string, env []string, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectl, args...)
	cmd.Env = env
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

const explainPod = `apiVersion: v1
kind: Pod
metadata:
  name: explained
spec:
  containers:
  - name: c
    image: alpine
    command: ["/bin/sh", "-c", "while true; do sleep 1; done"]
`

// TestKubectlExplainAndFieldValidation: the OpenAPI documents of a real
// `miniku up` are complete enough for kubectl: explain shows Kubernetes'
// own field descriptions, and apply --validate=strict refuses a typo'd
// field — on create and on the patch of an existing pod — naming it.
func TestKubectlExplainAndFieldValidation(t *testing.T) {
	c := newCluster(t)
	httpsAddr := freeAddr(t)
	start(t, "miniku up", "up",
		"--data-dir", c.dataDir, "--api-addr", c.apiAddr, "--https-addr", httpsAddr, "--nats-addr", c.natsAddr,
		"--nodes", "1", "--registry-mirror", "http://"+c.registry, "--heartbeat-interval", "500ms")
	eventually(t, 30*time.Second, func() error {
		if code, body := c.api.do("GET", "/healthz", ""); code != 200 {
			return fmt.Errorf("healthz: %d %s", code, body)
		}
		return nil
	})
	kubectl, env := kubectlEnv(t, c.dataDir, httpsAddr)

	out, err := runKubectl(t, kubectl, env, "", "explain", "pod.spec")
	if err != nil {
		t.Fatalf("kubectl explain pod.spec: %v\n%s", err, out)
	}
	for _, want := range []string{"KIND:       Pod", "FIELD: spec <PodSpec>", "containers\t<[]Container> -required-", "List of containers belonging to the pod"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl explain pod.spec lacks %q", want)
		}
	}
	if out, err := runKubectl(t, kubectl, env, "", "explain", "rs.spec.replicas"); err != nil || !strings.Contains(out, "FIELD: replicas <integer>") {
		t.Errorf("kubectl explain rs.spec.replicas: %v", err)
	}

	typo := strings.Replace(explainPod, "command:", "commnd:", 1)
	out, err = runKubectl(t, kubectl, env, typo, "apply", "--validate=strict", "-f", "-")
	if err == nil {
		t.Fatal("kubectl apply --validate=strict of a pod with a typo'd field succeeded")
	}
	if !strings.Contains(out, `unknown field "spec.containers[0].commnd"`) && !strings.Contains(out, `unknown field "commnd"`) {
		t.Errorf("kubectl apply of the typo: want an unknown-field error naming commnd, got:\n%s", out)
	}
	if code, body := c.api.do("GET", "/api/v1/namespaces/default/pods/explained", ""); code != 404 {
		t.Fatalf("the refused pod exists: %d %s", code, body)
	}

	if out, err := runKubectl(t, kubectl, env, explainPod, "apply", "--validate=strict", "-f", "-"); err != nil || !strings.Contains(out, "pod/explained created") {
		t.Fatalf("kubectl apply of the valid pod: %v\n%s", err, out)
	}
	// Now apply patches the existing pod (strategic merge, from the
	// documents' patch strategies): the typo is refused there too.
	typo2 := strings.Replace(explainPod, "metadata:\n", "metadata:\n  labelz: {a: b}\n", 1)
	out, err = runKubectl(t, kubectl, env, typo2, "apply", "--validate=strict", "-f", "-")
	if err == nil || !strings.Contains(out, "labelz") {
		t.Errorf("kubectl apply of a typo onto the existing pod: want an error naming labelz, got %v:\n%s", err, out)
	}
	if _, err := runKubectl(t, kubectl, env, "", "delete", "pod", "explained", "--wait=false"); err != nil {
		t.Errorf("kubectl delete pod: %v", err)
	}
}
