package apiserver_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/services/apiserver"
)

const testToken = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func authEnv(t *testing.T) string {
	t.Helper()
	ns := bustest.Server(t, "", "")
	log := bustest.Logger(t)
	conn := bustest.Conn(t, ns.ClientURL(), log)
	srv, err := apiserver.New(apiserver.Config{Addr: "127.0.0.1:0", Logger: log, Token: testToken}, conn)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts.URL
}

func get(t *testing.T, c *http.Client, url, auth string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}

func TestBearerToken(t *testing.T) {
	url := authEnv(t)
	compares := apiserver.CountTokenCompares(t)
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"no token", "", 401},
		{"wrong token", "Bearer " + strings.Repeat("0", 64), 401},
		{"prefix of the token", "Bearer " + testToken[:63], 401},
		{"token with a suffix", "Bearer " + testToken + "0", 401},
		{"not bearer", "Basic " + testToken, 401},
		{"right token", "Bearer " + testToken, 200},
		{"scheme is case-insensitive", "bearer " + testToken, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, h, body := get(t, http.DefaultClient, url+"/pods", tc.auth)
			if code != tc.want {
				t.Fatalf("status %d, want %d: %s", code, tc.want, body)
			}
			if code != 401 {
				return
			}
			if h.Get("WWW-Authenticate") == "" || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("WWW-Authenticate %q", h.Get("WWW-Authenticate"))
			}
			// Kubernetes' Status, on the seed API's paths too.
			var st struct {
				Kind, APIVersion, Status, Reason, Message string
				Code                                      int
			}
			if err := json.Unmarshal(body, &st); err != nil || st.Kind != "Status" || st.APIVersion != "v1" ||
				st.Status != "Failure" || st.Reason != "Unauthorized" || st.Code != 401 || st.Message == "" {
				t.Fatalf("401 body is not a v1 Status Failure Unauthorized 401 with a message: %q", body)
			}
		})
	}
	// Every presented bearer token went through the constant-time compare.
	if n := compares.Load(); n != 5 {
		t.Fatalf("%d constant-time compares, want 5 (one per bearer token)", n)
	}
	// Liveness probes need no token; nothing else is open.
	if code, _, body := get(t, http.DefaultClient, url+"/healthz", ""); code != 200 {
		t.Fatalf("/healthz without token: %d %s", code, body)
	}
	// Only a request without credentials is anonymous: a wrong token is
	// refused on the open paths too, as Kubernetes does, so a stale
	// kubeconfig shows at its first request.
	for _, p := range []string{"/livez", "/livez/ping", "/readyz/ping"} {
		if code, _, body := get(t, http.DefaultClient, url+p, ""); code != 200 {
			t.Fatalf("%s without token: %d %s", p, code, body)
		}
	}
	for _, p := range []string{"/readyz/", "/livez/", "/livez/ping/x"} {
		if code, _, _ := get(t, http.DefaultClient, url+p, ""); code != 401 {
			t.Fatalf("%s without token: %d, want 401", p, code)
		}
	}
	for _, p := range []string{"/healthz", "/readyz", "/livez"} {
		if code, _, body := get(t, http.DefaultClient, url+p, "Bearer wrong"); code != 401 {
			t.Fatalf("%s with a wrong token: %d %s, want 401", p, code, body)
		}
		// (Readiness itself may be 503 here: what matters is the token.)
		if code, _, body := get(t, http.DefaultClient, url+p, "Bearer "+testToken); code == 401 {
			t.Fatalf("%s with the token: %d %s", p, code, body)
		}
	}
	if code, _, _ := get(t, http.DefaultClient, url+"/healthz/", ""); code != 401 {
		t.Fatalf("/healthz/ without token: %d, want 401", code)
	}
	if code, _, _ := get(t, http.DefaultClient, url+"/nodes", ""); code != 401 {
		t.Fatalf("/nodes without token: %d, want 401", code)
	}
}

func TestEnsureToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "token")
	tok, created, err := apiserver.EnsureToken(path)
	if err != nil || !created || len(tok) != 64 {
		t.Fatalf("EnsureToken: %q %v %v", tok, created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("token mode %v, want 0600", fi.Mode().Perm())
	}
	again, created, err := apiserver.EnsureToken(path)
	if err != nil || created || again != tok {
		t.Fatalf("second EnsureToken: %q %v %v (want the same token)", again, created, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := apiserver.EnsureToken(path); err == nil {
		t.Fatal("world-readable token file accepted")
	}
}

func TestNonLoopbackWithoutTokenRefused(t *testing.T) {
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), nil)
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:8080"} {
		if _, err := apiserver.New(apiserver.Config{Addr: addr}, conn); err == nil || !strings.Contains(err.Error(), "without authentication") {
			t.Fatalf("%s without a token: %v, want a refusal", addr, err)
		}
	}
	if _, err := apiserver.New(apiserver.Config{Addr: "0.0.0.0:0", Token: testToken}, conn); err != nil {
		t.Fatalf("0.0.0.0 with a token: %v", err)
	}
	// No address (a Handler only) is fine until Run binds every interface.
	srv, err := apiserver.New(apiserver.Config{}, conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Run(ctx); err == nil || !strings.Contains(err.Error(), "without authentication") {
		t.Fatalf("Run on every interface without a token: %v, want a refusal", err)
	}
}

// runServer runs srv until the test ends and waits for its listeners.
func runServer(t *testing.T, srv *apiserver.Server) {
	t.Helper()
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
		t.Fatal("not listening")
	}
}

// The same API, token and handlers on plain HTTP (Addr) and HTTPS
// (HTTPSAddr); the HTTPS port answers no plain-text request.
func TestHTTPSBesidePlainHTTP(t *testing.T) {
	ns := bustest.Server(t, "", "")
	log := bustest.Logger(t)
	conn := bustest.Conn(t, ns.ClientURL(), log)
	cert, key := bustest.SelfSignedCert(t)
	srv, err := apiserver.New(apiserver.Config{Addr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", Logger: log, Token: testToken, TLSCert: cert, TLSKey: key}, conn)
	if err != nil {
		t.Fatal(err)
	}
	runServer(t, srv)
	httpsAddr := srv.HTTPSAddr()
	if httpsAddr == "" || srv.Addr() == "" || httpsAddr == srv.Addr() {
		t.Fatalf("addresses: http %q, https %q", srv.Addr(), httpsAddr)
	}

	// Plain HTTP on the HTTPS port gets no API response, even with the
	// right token.
	code, _, body := get(t, http.DefaultClient, "http://"+httpsAddr+"/pods", "Bearer "+testToken)
	if code == 200 || strings.Contains(string(body), "[") {
		t.Fatalf("plain-text request answered: %d %s", code, body)
	}
	// HTTPS with the CA works, with the same token as plain HTTP.
	pem, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(c.CloseIdleConnections)
	if code, _, body := get(t, c, "https://"+httpsAddr+"/pods", "Bearer "+testToken); code != 200 {
		t.Fatalf("HTTPS: %d %s", code, body)
	}
	if code, _, body := get(t, http.DefaultClient, "http://"+srv.Addr()+"/pods", "Bearer "+testToken); code != 200 {
		t.Fatalf("plain HTTP: %d %s", code, body)
	}
	if code, _, _ := get(t, c, "https://"+httpsAddr+"/pods", ""); code != 401 {
		t.Fatalf("HTTPS without token: %d, want 401", code)
	}
	if code, _, _ := get(t, c, "https://"+httpsAddr+"/pods", "Bearer wrong"); code != 401 {
		t.Fatalf("HTTPS with a wrong token: %d, want 401", code)
	}
}

// Without Addr, HTTPSAddr is the only listener; an HTTPS address without
// a certificate is refused.
func TestHTTPSOnly(t *testing.T) {
	ns := bustest.Server(t, "", "")
	log := bustest.Logger(t)
	conn := bustest.Conn(t, ns.ClientURL(), log)
	if _, err := apiserver.New(apiserver.Config{HTTPSAddr: "127.0.0.1:0", Token: testToken}, conn); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("HTTPS without a certificate: %v, want a refusal", err)
	}
	cert, key := bustest.SelfSignedCert(t)
	if _, err := apiserver.New(apiserver.Config{Addr: "127.0.0.1:0", HTTPSAddr: "0.0.0.0:0", TLSCert: cert, TLSKey: key}, conn); err == nil || !strings.Contains(err.Error(), "without authentication") {
		t.Fatalf("HTTPS on every interface without a token: %v, want a refusal", err)
	}
	srv, err := apiserver.New(apiserver.Config{HTTPSAddr: "127.0.0.1:0", Logger: log, Token: testToken, TLSCert: cert, TLSKey: key}, conn)
	if err != nil {
		t.Fatal(err)
	}
	runServer(t, srv)
	if srv.Addr() != "" || srv.HTTPSAddr() == "" {
		t.Fatalf("addresses: http %q, https %q", srv.Addr(), srv.HTTPSAddr())
	}
}
