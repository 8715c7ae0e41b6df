package apiserver

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas"
)

// Who may call the API: whoever presents the bearer token (Config.Token).
// There is one token and it may do everything; /healthz, /readyz and
// /livez (and their /<check> paths) are open so that probes need no secret (they reveal only "ok" or which check
// fails). As on Kubernetes, where only a request without credentials is
// anonymous, a wrong token is refused there too: a client with a stale
// kubeconfig learns it at its first request, whatever the path.

// constantTimeCompare is crypto/subtle's, in a variable so a test can prove
// every token check goes through it.
var constantTimeCompare = subtle.ConstantTimeCompare

// noAuthWarnEvery bounds how often an unauthenticated server reminds the
// log that anyone who can reach it may do anything.
const noAuthWarnEvery = 10 * time.Minute

// EnsureToken returns the token in path, creating it (256 random bits, hex,
// mode 0600) if the file does not exist; created says which. A token file
// other users can read is refused.
func EnsureToken(path string) (token string, created bool, err error) {
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := bus.CheckPrivate(path); err != nil {
			return "", false, fmt.Errorf("token file: %w", err)
		}
		token = strings.TrimSpace(string(data))
		if len(token) < 32 {
			return "", false, fmt.Errorf("token file %s: token shorter than 32 characters", path)
		}
		return token, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", false, fmt.Errorf("read token file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, fmt.Errorf("create token dir: %w", err)
	}
	token = bus.RandomSecret()
	if err := bus.WriteFileAtomic(path, []byte(token+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("write token file: %w", err)
	}
	return token, true, nil
}

// checkSecurity refuses a configuration that would let other hosts in
// without a token, or an HTTPS listener without a certificate.
func checkSecurity(cfg Config) error {
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return errors.New("apiserver: TLS needs both a certificate and a key")
	}
	if cfg.HTTPSAddr != "" && cfg.TLSCert == "" {
		return fmt.Errorf("apiserver: HTTPS on %s needs a certificate and a key", cfg.HTTPSAddr)
	}
	if _, err := schemas.ParsePodSecurityLevel(string(cfg.PodSecurity)); err != nil {
		return fmt.Errorf("apiserver: %w", err)
	}
	if cfg.Token != "" {
		return nil
	}
	for _, addr := range []string{cfg.Addr, cfg.HTTPSAddr} {
		if addr == "" {
			// No address: used as a Handler only; Run checks what it binds.
			continue
		}
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("apiserver address %q: %w", addr, err)
		}
		if !bus.IsLoopback(host) {
			return fmt.Errorf("apiserver: refusing to listen on %s without authentication; use a token or a loopback address", addr)
		}
	}
	return nil
}

// openPath is a health path a probe reads without credentials.
func openPath(p string) bool {
	if p == "/healthz" {
		return true
	}
	for _, h := range []string{"/readyz", "/livez"} {
		if check, ok := strings.CutPrefix(p, h+"/"); p == h || (ok && check != "" && !strings.Contains(check, "/")) {
			return true
		}
	}
	return false
}

// authenticate wraps the API: every request but the health paths (openPath)
// needs "Authorization: Bearer <token>". Without a token configured it lets
// everything through and says so in the log.
func (s *Server) authenticate(next http.Handler) http.Handler {
	if s.cfg.Token == "" {
		s.log.Warn("authentication is DISABLED: anyone who can reach the apiserver may do anything", "addr", s.cfg.Addr)
		var lastWarn atomic.Int64
		lastWarn.Store(time.Now().UnixNano())
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			now := time.Now().UnixNano()
			if last := lastWarn.Load(); now-last > int64(noAuthWarnEvery) && lastWarn.CompareAndSwap(last, now) {
				s.log.Warn("authentication is DISABLED: serving requests without a token", "remote", r.RemoteAddr)
			}
			next.ServeHTTP(w, r)
		})
	}
	// Comparing digests keeps the comparison constant-time in the length
	// of the presented token as well.
	want := sha256.Sum256([]byte(s.cfg.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		if auth == "" && openPath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		scheme, tok, ok := strings.Cut(auth, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
			if constantTimeCompare(got[:], want[:]) == 1 {
				next.ServeHTTP(w, r)
				return
			}
		}
		msg := "missing bearer token: send Authorization: Bearer <token from the token file>"
		if auth != "" {
			msg = "invalid bearer token"
		}
		s.log.Info("unauthorized request", "method", r.Method, "path", r.URL.EscapedPath(), "remote", r.RemoteAddr)
		w.Header().Set("WWW-Authenticate", `Bearer realm="miniku"`)
		writeJSON(w, http.StatusUnauthorized, unauthorized(msg))
	})
}

// unauthorized is the 401 body on every path, the seed API's as well as
// the Kubernetes API's: Kubernetes' Status, which client-go turns into an
// error that apierrors.IsUnauthorized recognises, and whose message the
// miniku CLI prints (client.errorMessage).
func unauthorized(msg string) *metav1.Status {
	st := apierrors.NewUnauthorized(msg).ErrStatus
	st.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	return &st
}

// apiListener is one bound listener; tls marks the HTTPS one.
type apiListener struct {
	net.Listener
	tls bool
}

// listeners binds Config.Addr (plain HTTP) and Config.HTTPSAddr (TLS),
// whichever are set, and refuses an unauthenticated listener that other
// hosts can reach.
func (s *Server) listeners() ([]apiListener, error) {
	var lns []apiListener
	fail := func(err error) ([]apiListener, error) {
		for _, l := range lns {
			l.Close()
		}
		return nil, err
	}
	for _, want := range []struct {
		addr string
		tls  bool
		on   bool
	}{
		// Without either address, "" is net.Listen's: every interface,
		// a free port (refused below without a token).
		{s.cfg.Addr, false, s.cfg.Addr != "" || s.cfg.HTTPSAddr == ""},
		{s.cfg.HTTPSAddr, true, s.cfg.HTTPSAddr != ""},
	} {
		if !want.on {
			continue
		}
		ln, err := net.Listen("tcp", want.addr)
		if err != nil {
			return fail(fmt.Errorf("apiserver listen on %s: %w", want.addr, err))
		}
		lns = append(lns, apiListener{ln, want.tls})
		if a, ok := ln.Addr().(*net.TCPAddr); s.cfg.Token == "" && (!ok || !a.IP.IsLoopback()) {
			return fail(fmt.Errorf("apiserver: refusing to listen on %s without authentication; use a token or a loopback address", ln.Addr()))
		}
		if !want.tls {
			continue
		}
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
		if err != nil {
			return fail(fmt.Errorf("apiserver TLS: %w", err))
		}
		lns[len(lns)-1].Listener = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	return lns, nil
}
