package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/miniku/miniku/bus"
)

// StoreHealth is the store's disk as the process embedding the store sees
// it (bus.StoreGuard): room for writes, and readiness checks.
type StoreHealth interface {
	// Room is nil when a write may go ahead; system writes may use half
	// of the reserve that users' writes must leave.
	Room(system bool) error
	Checks() []bus.StoreCheck
}

var _ StoreHealth = (*bus.StoreGuard)(nil)

// checkRoom refuses a write when the store's disk is below its reserve,
// before the write can fail halfway: 507 Insufficient Storage (WebDAV's;
// Kubernetes has no status of its own for a full etcd, which answers
// "mvcc: database space exceeded" as a 500). Creates and updates need the
// whole reserve; deletes, which write a tiny marker and are how room is
// made, only a sixteenth of it.
// A write while JetStream waits to be reopened after a failed write gets
// a 503 at once instead of failing in the stream or hanging on the reopen.
func (s *Server) checkRoom(r *http.Request) error {
	if s.cfg.Store == nil {
		return nil
	}
	var system bool
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		if strings.HasSuffix(r.URL.Path, "/exec") {
			return nil // no store write
		}
	case http.MethodDelete:
		system = true
	default:
		return nil
	}
	err := s.cfg.Store.Room(system)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, bus.ErrStoreRecovering):
		// Retry-After: the reopen takes milliseconds once it starts.
		return newError(http.StatusServiceUnavailable, "%v, retry", err)
	}
	return newError(http.StatusInsufficientStorage, "%v: free space on the store's disk, then retry", err)
}

// readyCheck is one line of /readyz.
type readyCheck struct {
	name string
	err  error
}

// writeHealthWindow: a store write that failed within it, with none
// succeeding since, makes /readyz fail.
const writeHealthWindow = time.Minute

// readyz is Kubernetes' readiness endpoint: 200 "ok" when every check
// passes, else 503 with a "[-]name failed: reason" line per failing check;
// ?verbose lists every check, and /readyz/<check> answers for one. A store
// that cannot serve (a full disk, a lost quorum) fails it: clients and load
// balancers go to another apiserver. It is not a reason to restart this
// one: /livez and /healthz stay 200.
func (s *Server) readyz(ctx context.Context, _ http.ResponseWriter, r *http.Request, _ string) (int, any, error) {
	return healthEndpoint("readyz", r, s.readyChecks(ctx))
}

// livez is Kubernetes' liveness endpoint: 200 while the process serves
// requests. Nothing about the store is in it: restarting an apiserver
// does not bring a quorum back.
func (s *Server) livez(_ context.Context, _ http.ResponseWriter, r *http.Request, _ string) (int, any, error) {
	return healthEndpoint("livez", r, []readyCheck{{name: "ping"}})
}

// healthEndpoint answers /<endpoint>[/<check>][?verbose] as kube-apiserver
// does.
func healthEndpoint(endpoint string, r *http.Request, checks []readyCheck) (int, any, error) {
	q := r.URL.Query()
	if err := checkQuery(q, "verbose", "exclude"); err != nil {
		return 0, nil, err
	}
	if one := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/"+endpoint), "/"); one != "" {
		for _, c := range checks {
			if c.name != one {
				continue
			}
			if c.err != nil {
				return http.StatusServiceUnavailable, textBody(fmt.Sprintf("internal server error: %v\n", c.err)), nil
			}
			return http.StatusOK, textBody("ok"), nil
		}
		return 0, nil, newError(http.StatusNotFound, "no %s check %q", endpoint, one)
	}
	excluded := map[string]bool{}
	for _, e := range q["exclude"] {
		excluded[e] = true
	}
	var b strings.Builder
	failed := false
	for _, c := range checks {
		switch {
		case excluded[c.name]:
			fmt.Fprintf(&b, "[+]%s excluded: ok\n", c.name)
		case c.err != nil:
			failed = true
			fmt.Fprintf(&b, "[-]%s failed: %v\n", c.name, c.err)
		default:
			fmt.Fprintf(&b, "[+]%s ok\n", c.name)
		}
	}
	switch {
	case failed:
		b.WriteString(endpoint + " check failed\n")
		return http.StatusServiceUnavailable, textBody(b.String()), nil
	case q.Has("verbose"):
		b.WriteString(endpoint + " check passed\n")
		return http.StatusOK, textBody(b.String()), nil
	}
	return http.StatusOK, textBody("ok"), nil
}

func (s *Server) readyChecks(ctx context.Context) []readyCheck {
	out := []readyCheck{{name: "ping"}}
	nc := s.conn.NATS()
	var natsErr error
	if !nc.IsConnected() {
		natsErr = fmt.Errorf("not connected (status %s)", nc.Status())
	}
	out = append(out, readyCheck{"nats", natsErr})
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := s.conn.Pods.Revision(cctx)
	out = append(out, readyCheck{"jetstream", err})
	out = append(out, readyCheck{"store-writes", bus.WriteHealth(time.Now(), writeHealthWindow)})
	// Every bucket's stream has a leader reaching a majority (quorum.go).
	out = append(out, readyCheck{"store-quorum", s.quorum.Summary()})
	if s.cfg.Store != nil {
		for _, c := range s.cfg.Store.Checks() {
			out = append(out, readyCheck{c.Name, c.Err})
		}
	}
	return out
}

// textBody is a text/plain response (readyz).
type textBody string
