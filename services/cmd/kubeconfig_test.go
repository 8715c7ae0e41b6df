//go:build linux

package cmd

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/services/apiserver"
)

const kubeconfigTestToken = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// kubeconfigServer runs a real apiserver over HTTPS with a certificate
// from dataDir's CA, as up does, and returns its config with the bound
// HTTPS address.
func kubeconfigServer(t *testing.T, dataDir string) apiserver.Config {
	t.Helper()
	ns := bustest.Server(t, "", "")
	log := bustest.Logger(t)
	conn := bustest.Conn(t, ns.ClientURL(), log)
	cfg := apiserver.Config{HTTPSAddr: "127.0.0.1:0", Logger: log, Token: kubeconfigTestToken}
	var err error
	if cfg.TLSCert, cfg.TLSKey, err = serverCert(dataDir, "apiserver", cfg.HTTPSAddr); err != nil {
		t.Fatal(err)
	}
	srv, err := apiserver.New(cfg, conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	select {
	case <-srv.Listening():
	case err := <-done:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("apiserver not listening")
	}
	cfg.HTTPSAddr = srv.HTTPSAddr()
	return cfg
}

// restClient is client-go's REST client for a kubeconfig, as kubectl
// builds it: certificate verification against the file's CA, its token.
func restClient(t *testing.T, path string, edit func(*rest.Config)) *rest.RESTClient {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Insecure || len(rc.CAData) == 0 {
		t.Fatalf("kubeconfig: insecure %v, %d bytes of CA: want verification against the CA", rc.Insecure, len(rc.CAData))
	}
	rc.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	if edit != nil {
		edit(rc)
	}
	c, err := rest.UnversionedRESTClientFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestKubeconfigReachesAPIServer: the kubeconfig up writes (mode 0600)
// loads with clientcmd into one cluster, user and context, and client-go
// reaches the real apiserver with it over verified HTTPS; a wrong or
// missing token is a 401 Status client-go recognises, with its message.
func TestKubeconfigReachesAPIServer(t *testing.T) {
	dataDir := t.TempDir()
	cfg := kubeconfigServer(t, dataDir)
	upKubeconfig(dataDir, cfg, "", bustest.Logger(t))
	path := filepath.Join(dataDir, KubeconfigName)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("kubeconfig mode %v, want 0600 (it holds the token)", fi.Mode().Perm())
	}
	kc, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := kc.Contexts[kc.CurrentContext]
	if kc.CurrentContext != "miniku" || ctx == nil || ctx.Cluster != "miniku" || ctx.Namespace != "default" ||
		len(kc.Clusters) != 1 || len(kc.AuthInfos) != 1 || len(kc.Contexts) != 1 {
		t.Fatalf("kubeconfig: current %q, contexts %v, %d clusters, %d users", kc.CurrentContext, kc.Contexts, len(kc.Clusters), len(kc.AuthInfos))
	}
	if got, want := kc.Clusters["miniku"].Server, "https://"+cfg.HTTPSAddr; got != want {
		t.Fatalf("server %q, want %q", got, want)
	}
	if kc.AuthInfos[ctx.AuthInfo].Token != kubeconfigTestToken {
		t.Fatal("the kubeconfig's user lacks the API token")
	}

	bg := context.Background()
	for _, p := range []string{"/readyz", "/healthz"} {
		body, err := restClient(t, path, nil).Get().AbsPath(p).DoRaw(bg)
		if err != nil || !strings.Contains(string(body), "ok") {
			t.Fatalf("GET %s with the kubeconfig: %q %v", p, body, err)
		}
	}
	if body, err := restClient(t, path, nil).Get().AbsPath("/pods").DoRaw(bg); err != nil {
		t.Fatalf("GET /pods with the kubeconfig: %q %v", body, err)
	}

	for _, tc := range []struct{ name, token, path, msg string }{
		{"wrong token", "wrong", "/readyz", "invalid bearer token"},
		{"wrong token", "wrong", "/pods", "invalid bearer token"},
		{"no token", "", "/pods", "missing bearer token"},
	} {
		// Do, not DoRaw: DoRaw (kubectl get --raw) never decodes an
		// error body. The message is the Status's own: client-go only
		// has it when it decoded the body (it makes up a 401 otherwise).
		err := restClient(t, path, func(c *rest.Config) { c.BearerToken = tc.token }).Get().AbsPath(tc.path).Do(bg).Error()
		var st apierrors.APIStatus
		if !apierrors.IsUnauthorized(err) || !errors.As(err, &st) || !strings.HasPrefix(st.Status().Message, tc.msg) || st.Status().Code != 401 {
			t.Errorf("%s, GET %s: %v, want Unauthorized %q", tc.name, tc.path, err, tc.msg)
		}
	}

	// The CA in the file is what is trusted: another data dir's is not.
	other := t.TempDir()
	if _, _, err := serverCert(other, "apiserver", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	upKubeconfig(other, cfg, "", bustest.Logger(t))
	_, err = restClient(t, filepath.Join(other, KubeconfigName), nil).Get().AbsPath("/readyz").DoRaw(bg)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("GET /readyz trusting another CA: %v, want a certificate error", err)
	}
}

// TestKubeconfigCommand: `miniku kubeconfig` prints the file, --server
// changes only the address, and a data dir without one says what to do;
// an up without HTTPS removes a kubeconfig of an earlier start.
func TestKubeconfigCommand(t *testing.T) {
	dataDir := t.TempDir()
	if _, err := writeKubeconfig(dataDir, "https://127.0.0.1:6443", []byte("not checked here"), "tok"); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(dataDir, KubeconfigName))
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if err := Run(context.Background(), []string{"kubeconfig", "--data-dir", dataDir}, &out, &errOut); err != nil || !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("miniku kubeconfig: %v\n%s, want the file:\n%s", err, out.String(), want)
	}
	out.Reset()
	if err := Run(context.Background(), []string{"kubeconfig", "--data-dir", dataDir, "--server", "https://10.0.0.5:6443"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	kc, err := clientcmd.Load(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if c := kc.Clusters["miniku"]; c == nil || c.Server != "https://10.0.0.5:6443" || kc.AuthInfos["miniku"].Token != "tok" {
		t.Fatalf("--server: %s", out.String())
	}
	t.Setenv("MINIKU_DATA_DIR", "")
	err = Run(context.Background(), []string{"kubeconfig", "--data-dir", t.TempDir()}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "--data-dir") || !strings.Contains(err.Error(), "miniku up") {
		t.Fatalf("no kubeconfig: %v, want a hint at --data-dir and up", err)
	}

	upKubeconfig(dataDir, apiserver.Config{Addr: "127.0.0.1:8080"}, "", bustest.Logger(t))
	if _, err := os.Stat(filepath.Join(dataDir, KubeconfigName)); !os.IsNotExist(err) {
		t.Fatalf("kubeconfig after an up without HTTPS: %v, want it removed", err)
	}
}
