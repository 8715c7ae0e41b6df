package apiserver_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/services/apiserver"
)

// TestMetricsEndpoint: /metrics is behind the token like the API, serves
// the Prometheus text format, and counts requests by route pattern, not by
// raw path.
func TestMetricsEndpoint(t *testing.T) {
	url := authEnv(t)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if code, _, _ := get(t, noRedirect, url+"/metrics", ""); code != http.StatusUnauthorized {
		t.Fatalf("GET /metrics without token: %d, want 401", code)
	}
	auth := "Bearer " + testToken
	if code, _, body := get(t, noRedirect, url+"/pods/no-such-pod", auth); code != http.StatusNotFound {
		t.Fatalf("GET /pods/no-such-pod: %d %s", code, body)
	}
	code, hdr, body := get(t, noRedirect, url+"/metrics", auth)
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %s", code, hdr.Get("Content-Type"))
	}
	text := string(body)
	for _, want := range []string{
		`miniku_apiserver_requests_total{code="404",method="GET",route="/pods/{name}"}`,
		`miniku_apiserver_request_duration_seconds_bucket{code="404",method="GET",route="/pods/{name}",le="+Inf"}`,
		`miniku_kv_operation_duration_seconds_count{bucket="pods",op="get",result="notfound"}`,
		"go_goroutines",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(text, "no-such-pod") {
		t.Errorf("/metrics holds a raw path")
	}
	if code, _, _ := get(t, noRedirect, url+"/metrics", auth+"x"); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics with a wrong token: %d, want 401", code)
	}
}

// TestUI: the dashboard's files are served without the token (they hold
// no data) and with a policy that runs only our own scripts; /ui?token=
// keeps the query through the redirect, and the API behind it still needs
// the token.
func TestUI(t *testing.T) {
	url := authEnv(t)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	code, hdr, _ := get(t, noRedirect, url+"/ui?token=abc", "")
	if code != http.StatusMovedPermanently || hdr.Get("Location") != "/ui/?token=abc" {
		t.Fatalf("GET /ui?token=abc: %d Location %q, want 301 to /ui/?token=abc", code, hdr.Get("Location"))
	}
	for path, want := range map[string]string{
		"/ui/":          `<script src="app.js"`,
		"/ui/app.js":    "watch=true",
		"/ui/style.css": "table",
	} {
		code, hdr, body := get(t, noRedirect, url+path, "")
		if code != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("GET %s: %d, body lacks %q", path, code, want)
		}
		if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
		if hdr.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("GET %s: Referrer-Policy %q", path, hdr.Get("Referrer-Policy"))
		}
	}
	if code, _, _ := get(t, noRedirect, url+"/ui/nope.js", ""); code != http.StatusNotFound {
		t.Errorf("GET /ui/nope.js: %d, want 404", code)
	}
	if code, _, _ := get(t, noRedirect, url+"/pods", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /pods without token next to /ui: %d, want 401", code)
	}
}

// TestUIConfigNamesTokenFile: the login page learns this apiserver's own
// token path (its --data-dir), never the token, from the public
// /ui/config.json, and the page no longer hard-codes the default data dir
// nor starts out "reconnecting" before any token is given.
func TestUIConfigNamesTokenFile(t *testing.T) {
	ns := bustest.Server(t, "", "")
	log := bustest.Logger(t)
	conn := bustest.Conn(t, ns.ClientURL(), log)
	const path = "/srv/other-data-dir/token"
	srv, err := apiserver.New(apiserver.Config{Addr: "127.0.0.1:0", Logger: log, Token: testToken, TokenFile: path}, conn)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)

	code, hdr, body := get(t, http.DefaultClient, ts.URL+"/ui/config.json", "")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /ui/config.json: %d %s %s", code, hdr.Get("Content-Type"), body)
	}
	var c struct {
		TokenFile    string `json:"tokenFile"`
		AuthRequired bool   `json:"authRequired"`
	}
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatalf("GET /ui/config.json: %v: %s", err, body)
	}
	if c.TokenFile != path || !c.AuthRequired {
		t.Errorf("GET /ui/config.json = %+v, want tokenFile %q and authRequired", c, path)
	}
	if strings.Contains(string(body), testToken) {
		t.Errorf("GET /ui/config.json leaks the token: %s", body)
	}
	_, _, page := get(t, http.DefaultClient, ts.URL+"/ui/", "")
	if strings.Contains(string(page), "/var/lib/miniku/token") {
		t.Errorf("the login page hard-codes /var/lib/miniku/token")
	}
	if !strings.Contains(string(page), `id="token-hint"`) || !strings.Contains(string(page), `id="conn" class="badge idle">no token<`) {
		t.Errorf("the login page lacks the token hint or the neutral 'no token' badge:\n%s", page)
	}
}
