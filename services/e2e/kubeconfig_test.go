package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// kubectlPath is the machine's kubectl; tests that need it skip without.
const kubectlPath = "/usr/bin/kubectl"

// TestKubectlWithKubeconfig: `miniku up` writes <data-dir>/kubeconfig and
// kubectl uses it as it is, verifying the serving certificate against the
// CA in it (no --insecure-skip-tls-verify); a wrong token is refused as
// Unauthorized, and `miniku kubeconfig` prints the same file.
func TestKubectlWithKubeconfig(t *testing.T) {
	if _, err := os.Stat(kubectlPath); err != nil {
		t.Skipf("no kubectl at %s (%v): the kubeconfig is checked with client-go in services/cmd only", kubectlPath, err)
	}
	dataDir := t.TempDir()
	apiAddr, httpsAddr, natsAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	start(t, "miniku up", "up", "--data-dir", dataDir, "--api-addr", apiAddr, "--https-addr", httpsAddr,
		"--nats-addr", natsAddr, "--nodes", "0")
	kubeconfig := filepath.Join(dataDir, "kubeconfig")
	kubectl := func(args ...string) (string, error) {
		cmd := exec.Command(kubectlPath, args...)
		// Its caches and the dispatcher's state in a home of the test's.
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "HOME="+t.TempDir())
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	eventually(t, 60*time.Second, func() error {
		_, err := os.Stat(kubeconfig)
		return err
	})
	fi, err := os.Stat(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("kubeconfig mode %v, want 0600", fi.Mode().Perm())
	}
	var out string
	eventually(t, 60*time.Second, func() error {
		out, err = kubectl("get", "--raw", "/readyz")
		return err
	})
	if strings.TrimSpace(out) != "ok" {
		t.Fatalf("kubectl get --raw /readyz: %q", out)
	}
	if out, err := kubectl("get", "--raw", "/pods"); err != nil || !strings.HasPrefix(strings.TrimSpace(out), "[") {
		t.Fatalf("kubectl get --raw /pods (the seed API, same token): %v\n%s", err, out)
	}
	for _, p := range []string{"/readyz", "/pods"} {
		out, err := kubectl("--token", "wrong", "get", "--raw", p)
		// kubectl's words for a 401, with the Status's message: it
		// decoded the Status.
		if err == nil || !strings.Contains(out, "You must be logged in to the server (invalid bearer token)") {
			t.Fatalf("kubectl --token wrong get --raw %s: %v\n%s, want Unauthorized with the Status's message", p, err, out)
		}
	}

	want, err := os.ReadFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cl := &cluster{dataDir: dataDir, apiAddr: "https://" + httpsAddr}
	if got, errOut, code := cl.cli(t, "", "kubeconfig", "--data-dir", dataDir); code != 0 || got != string(want) {
		t.Fatalf("miniku kubeconfig: exit %d %s\n%s, want the file:\n%s", code, errOut, got, want)
	}
	// The miniku CLI says why a wrong token fails, from the 401 Status.
	_, errOut, code := cl.cliEnvRun(t, []string{"MINIKU_TOKEN=wrong"}, "", "get", "pods")
	if code == 0 || !strings.Contains(errOut, "refused the token") || !strings.Contains(errOut, "invalid bearer token") || strings.Contains(errOut, `"kind"`) {
		t.Fatalf("miniku get pods with a wrong token: exit %d\n%s", code, errOut)
	}
}
