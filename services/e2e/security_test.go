package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/bus/pki"
	"github.com/miniku/miniku/schemas"
)

// `miniku up` requires a token for the API and credentials for NATS, and
// writes a nats CLI context for the read-only viewer.
func TestUpRequiresAuth(t *testing.T) {
	dataDir := t.TempDir()
	apiAddr, natsAddr := freeAddr(t), freeAddr(t)
	start(t, "miniku up", "up", "--data-dir", dataDir, "--api-addr", apiAddr, "--nats-addr", natsAddr, "--nodes", "0")
	a := api{t: t, base: "http://" + apiAddr}

	// /healthz is open for liveness probes.
	eventually(t, 30*time.Second, func() error {
		resp, err := http.Get(a.base + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("healthz without token: %d", resp.StatusCode)
		}
		return nil
	})
	resp, err := http.Get(a.base + "/pods")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("GET /pods without token: %d %q, want 401 with WWW-Authenticate: Bearer", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	fi, err := os.Stat(filepath.Join(dataDir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, want 0600", fi.Mode().Perm())
	}

	// NATS: no anonymous clients; the viewer's context works for watching.
	if nc, err := nats.Connect("nats://"+natsAddr, nats.MaxReconnects(0), natsCA(dataDir)); err == nil {
		nc.Close()
		t.Fatal("anonymous NATS connection accepted")
	}
	ctxPath := filepath.Join(configHome(t), "nats", "context", "miniku.json")
	data, err := os.ReadFile(ctxPath)
	if err != nil {
		t.Fatalf("nats CLI context: %v", err)
	}
	var nctx struct{ URL, User, Password, CA string }
	if err := json.Unmarshal(data, &nctx); err != nil || nctx.User != "viewer" || nctx.Password == "" || nctx.CA != pki.CAPath(dataDir) {
		t.Fatalf("nats context %s: %+v %v", ctxPath, nctx, err)
	}
	nc, err := nats.Connect(nctx.URL, nats.UserInfo(nctx.User, nctx.Password), nats.RootCAs(nctx.CA))
	if err != nil {
		t.Fatalf("connect with the nats context: %v", err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("pod.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if code, body := a.do("POST", "/pods", `{"name":"p","image":"busybox","command":["true"]}`); code != 201 {
		t.Fatalf("POST /pods with the token: %d %s", code, body)
	}
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("viewer got no pod event: %v", err)
	}
	var ev schemas.Event
	if err := schemas.Unmarshal(msg.Data, &ev); err != nil || ev.Name != "p" {
		t.Fatalf("event on %s: %+v %v", msg.Subject, ev, err)
	}
}

// An unauthenticated API on a non-loopback address is refused at start.
func TestUpRefusesOpenNonLoopback(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	port := strings.Split(freeAddr(t), ":")[1]
	cmd := exec.CommandContext(ctx, miniku(t), "up", "--data-dir", t.TempDir(), "--api-addr", "0.0.0.0:"+port,
		"--nats-addr", freeAddr(t), "--nodes", "0", "--insecure-no-auth")
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+configHome(t))
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "without authentication") {
		t.Fatalf("up --api-addr 0.0.0.0 --insecure-no-auth: %v\n%s", err, out)
	}
}

// A kubelet started on the NATS server's host creates its own NATS user,
// which the running server admits: no restart, no copied file.
func TestKubeletJoinsWithOwnCredentials(t *testing.T) {
	requireRoot(t)
	dataDir := t.TempDir()
	t.Cleanup(func() { cleanupContainers(t, dataDir) })
	apiAddr, natsAddr := freeAddr(t), freeAddr(t)
	start(t, "miniku up", "up", "--data-dir", dataDir, "--api-addr", apiAddr, "--nats-addr", natsAddr, "--nodes", "0")
	a := api{t: t, base: "http://" + apiAddr}
	eventually(t, 30*time.Second, func() error {
		if code, body := a.do("GET", "/healthz", ""); code != 200 {
			return fmt.Errorf("healthz: %d %s", code, body)
		}
		return nil
	})
	start(t, "kubelet node-3", "kubelet", "--nats", "nats://"+natsAddr, "--node-name", "node-3",
		"--data-dir", dataDir, "--heartbeat-interval", "500ms")
	eventually(t, 30*time.Second, func() error {
		var n schemas.Node
		if err := a.getJSON("/nodes/node-3", &n); err != nil {
			return err
		}
		if n.Status != schemas.NodeReady {
			return fmt.Errorf("node-3 is %s", n.Status)
		}
		return nil
	})
	fi, err := os.Stat(filepath.Join(dataDir, "nats", "auth", "kubelet-node-3.json"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("kubelet credentials mode %v", fi.Mode().Perm())
	}
}

// With --tls-cert and --tls-key, `up` serves HTTPS on --https-addr and
// NATS over TLS with that certificate instead of one from its CA; with
// --api-addr "" there is no plain HTTP at all. The nats CLI context names
// the certificate as the CA.
func TestUpTLS(t *testing.T) {
	dataDir := t.TempDir()
	httpsAddr, natsAddr := freeAddr(t), freeAddr(t)
	cert, key := bustest.SelfSignedCert(t)
	start(t, "miniku up", "up", "--data-dir", dataDir, "--api-addr", "", "--https-addr", httpsAddr, "--nats-addr", natsAddr, "--nodes", "0",
		"--tls-cert", cert, "--tls-key", key)
	pem, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(client.CloseIdleConnections)
	get := func(c *http.Client, url string) (int, error) {
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			return 0, err
		}
		tok, err := os.ReadFile(filepath.Join(dataDir, "token"))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	eventually(t, 30*time.Second, func() error {
		code, err := get(client, "https://"+httpsAddr+"/pods")
		if err == nil && code != 200 {
			err = fmt.Errorf("GET /pods over HTTPS: %d", code)
		}
		return err
	})
	if code, err := get(http.DefaultClient, "http://"+httpsAddr+"/pods"); err == nil && code == 200 {
		t.Fatal("plain HTTP answered with 200")
	}

	var nctx struct{ URL, User, Password, CA string }
	data, err := os.ReadFile(filepath.Join(configHome(t), "nats", "context", "miniku.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &nctx); err != nil || nctx.CA != cert {
		t.Fatalf("nats context %+v (%v), want ca %s", nctx, err, cert)
	}
	nc, err := nats.Connect(nctx.URL, nats.UserInfo(nctx.User, nctx.Password), nats.RootCAs(nctx.CA))
	if err != nil {
		t.Fatalf("nats over TLS with the context: %v", err)
	}
	if !nc.TLSRequired() {
		t.Fatal("nats connection without TLS")
	}
	nc.Close()
	// A client that does not do TLS (here: one that does not trust the
	// certificate, so its handshake fails) gets no connection.
	if nc, err := nats.Connect(nctx.URL, nats.UserInfo(nctx.User, nctx.Password), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("connected without the CA")
	}
}

// `miniku up` on non-default ports writes <data-dir>/cli.yaml, so the CLI
// on that host finds it with only --data-dir (as k3s's k3s.yaml), over
// HTTPS trusting the data dir's CA, and leaves the user's config alone.
func TestUpNonDefaultPortsCLIFindsIt(t *testing.T) {
	requireRoot(t)
	dataDir := t.TempDir()
	apiAddr, natsAddr, httpsAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	start(t, "miniku up", "up", "--data-dir", dataDir, "--api-addr", apiAddr, "--https-addr", httpsAddr,
		"--nats-addr", natsAddr, "--nodes", "0")
	home := t.TempDir()
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "MINIKU_") && !strings.HasPrefix(e, "XDG_CONFIG_HOME=") {
			env = append(env, e)
		}
	}
	env = append(env, "XDG_CONFIG_HOME="+home)
	var out, errOut bytes.Buffer
	eventually(t, 30*time.Second, func() error {
		out.Reset()
		errOut.Reset()
		cmd := exec.Command(miniku(t), "get", "nodes", "--data-dir", dataDir)
		cmd.Env, cmd.Stdout, cmd.Stderr = env, &out, &errOut
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("miniku get nodes --data-dir %s: %v\n%s", dataDir, err, errOut.String())
		}
		return nil
	})
	data, err := os.ReadFile(filepath.Join(dataDir, "cli.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "https://"+httpsAddr) || !strings.Contains(string(data), pki.CAPath(dataDir)) {
		t.Errorf("cli.yaml = %s, want server https://%s and ca %s", data, httpsAddr, pki.CAPath(dataDir))
	}
	if _, err := os.Stat(filepath.Join(configHome(t), "miniku")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("up wrote into the user's config dir: %v", err)
	}
}
