package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/metrics"
	"github.com/miniku/miniku/services/apiserver/kube"
)

// handlerFunc returns the status and body to send, or an error: an
// *apiError goes to the client as is, anything else is a store failure.
// name is the unescaped, validated object name from the path, if any.
type handlerFunc func(ctx context.Context, w http.ResponseWriter, r *http.Request, name string) (int, any, error)

type endpoint struct {
	method string
	h      handlerFunc
}

// routes maps a path pattern to its endpoints. Dispatch is by hand rather
// than with http.ServeMux patterns so that a wrong method and an unknown
// path get JSON errors, and so that names are matched on the escaped path
// ("a%2Fb" must be refused as a name, not routed as two segments).
func (s *Server) routes(segs []string) (eps []endpoint, kind string, ok bool) {
	switch {
	case len(segs) == 1 && segs[0] == "healthz":
		return []endpoint{{http.MethodGet, s.healthz}}, "", true
	case (len(segs) == 1 || len(segs) == 2) && segs[0] == "readyz":
		return []endpoint{{http.MethodGet, s.readyz}}, "", true
	case (len(segs) == 1 || len(segs) == 2) && segs[0] == "livez":
		return []endpoint{{http.MethodGet, s.livez}}, "", true
	case len(segs) == 1 && segs[0] == "events":
		return []endpoint{{http.MethodGet, s.listEvents}}, "", true
	case len(segs) == 1 && segs[0] == "replicasets":
		return []endpoint{{http.MethodGet, s.listReplicaSets}, {http.MethodPost, s.createReplicaSet}}, "", true
	case len(segs) == 2 && segs[0] == "replicasets":
		return []endpoint{{http.MethodGet, s.getReplicaSet}, {http.MethodPut, s.updateReplicaSet}, {http.MethodDelete, s.deleteReplicaSet}}, "replicaset", true
	case len(segs) == 1 && segs[0] == "pods":
		return []endpoint{{http.MethodGet, s.listPods}, {http.MethodPost, s.createPod}}, "", true
	case len(segs) == 2 && segs[0] == "pods":
		return []endpoint{{http.MethodGet, s.getPod}, {http.MethodDelete, s.deletePod}}, "pod", true
	case len(segs) == 3 && segs[0] == "pods" && segs[2] == "logs":
		return []endpoint{{http.MethodGet, s.podLogs}}, "pod", true
	case len(segs) == 3 && segs[0] == "pods" && segs[2] == "exec":
		return []endpoint{{http.MethodPost, s.podExec}}, "pod", true
	case len(segs) == 1 && segs[0] == "nodes":
		return []endpoint{{http.MethodGet, s.listNodes}}, "", true
	case len(segs) == 2 && segs[0] == "nodes":
		return []endpoint{{http.MethodGet, s.getNode}}, "node", true
	case len(segs) == 3 && segs[0] == "nodes":
		return s.nodeActionRoutes(segs[2])
	}
	return nil, "", false
}

// serve is the one place every response is written, so it logs them all
// without wrapping the ResponseWriter (a wrapper would hide the
// http.MaxBytesReader hook that closes connections after oversized bodies).
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if kube.IsPath(r.URL.Path) {
		s.kube.ServeHTTP(w, r)
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.EscapedPath()),
			slog.Duration("duration", time.Since(start)))
		return
	}
	status, body, err := s.dispatch(w, r)
	var du *deletedUnreadable
	if errors.As(err, &du) {
		status, body, err = http.StatusOK, du.obj, nil
	}
	if err != nil {
		status, body = s.errorResponse(r, err)
	}
	if _, ok := body.(streamed); ok {
		status = http.StatusOK // already written by the handler
	} else {
		setRetryAfter(w, status, body)
		writeJSON(w, status, body)
	}
	s.log.LogAttrs(r.Context(), slog.LevelDebug, "request",
		slog.String("method", r.Method),
		slog.String("path", r.URL.EscapedPath()),
		slog.Int("status", status),
		slog.Duration("duration", time.Since(start)))
	metrics.APIRequest(r.Method, s.routePattern(r), status, time.Since(start))
}

func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) (int, any, error) {
	escaped := r.URL.EscapedPath()
	segs := strings.Split(strings.TrimPrefix(escaped, "/"), "/")
	eps, kind, ok := s.routes(segs)
	if !ok {
		return 0, nil, newError(http.StatusNotFound, "no such path: %s", escaped)
	}
	var h handlerFunc
	allow := make([]string, 0, len(eps))
	for _, ep := range eps {
		allow = append(allow, ep.method)
		if ep.method == r.Method {
			h = ep.h
		}
	}
	if h == nil {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		return 0, nil, newError(http.StatusMethodNotAllowed, "method %s is not allowed on %s (allowed: %s)",
			r.Method, escaped, strings.Join(allow, ", "))
	}
	var name string
	if kind != "" {
		var err error
		name, err = url.PathUnescape(segs[1])
		if err != nil {
			return 0, nil, badRequest("invalid %s name in path: %v", kind, err)
		}
		if err := validatePathName(kind, name); err != nil {
			return 0, nil, err
		}
	}
	if err := s.checkRoom(r); err != nil {
		return 0, nil, err
	}
	buckets := seedBuckets(segs[0])
	for _, b := range buckets {
		if qe := s.storeUnavailable(b); qe != nil {
			return 0, nil, quorumAPIError(qe)
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
	defer cancel()
	if len(buckets) == 0 {
		return h(ctx, w, r, name)
	}
	ctx, stop := s.untilLost(ctx, buckets[0])
	defer stop()
	status, body, err := h(ctx, w, r, name)
	if qe := s.lostErr(ctx, buckets[0], err); qe != nil {
		return 0, nil, quorumAPIError(qe)
	}
	return status, body, err
}

type errorBody struct {
	Error string `json:"error"`
	// Reason and Details are set as in Kubernetes' Status for errors a
	// client may act on (a watch from a future resourceVersion).
	Reason  string         `json:"reason,omitempty"`
	Details *statusDetails `json:"details,omitempty"`
}

type statusDetails struct {
	Causes            []statusCause `json:"causes,omitempty"`
	RetryAfterSeconds int           `json:"retryAfterSeconds,omitempty"`
}

type statusCause struct {
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
}

// defaultRetryAfter is the Retry-After of a 503 or 429 that names none:
// the store is usually back within a NATS reconnect or leader election.
const defaultRetryAfter = 1

// setRetryAfter tells a client when to retry (Kubernetes' clients and the
// CLI honour it): every 503 and 429, with the error's own hint or a
// second, and any other error that carries a hint (a 504 for a future
// resourceVersion), as kube-apiserver does.
func setRetryAfter(w http.ResponseWriter, status int, body any) {
	if w.Header().Get("Retry-After") != "" {
		return
	}
	secs := 0
	if eb, ok := body.(errorBody); ok && eb.Details != nil {
		secs = eb.Details.RetryAfterSeconds
	}
	if secs == 0 && (status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests) {
		secs = defaultRetryAfter
	}
	if secs > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
}

func (ae *apiError) body() errorBody {
	b := errorBody{Error: ae.msg, Reason: ae.reason}
	if ae.cause != "" || ae.retryAfter > 0 {
		b.Details = &statusDetails{RetryAfterSeconds: ae.retryAfter}
		if ae.cause != "" {
			b.Details.Causes = []statusCause{{Reason: ae.cause, Message: ae.msg}}
		}
	}
	return b
}

// errorResponse maps a handler error to a status. Store failures are
// logged here, once, and passed on verbatim: MiniKu's clients are its
// operators, and the bus error names the bucket and key that failed.
func (s *Server) errorResponse(r *http.Request, err error) (int, any) {
	if ae, ok := isAPIError(err); ok {
		return ae.status, ae.body()
	}
	if r.Context().Err() != nil {
		// The client went away; nobody reads this and it is not a failure.
		s.log.Debug("request abandoned by client", "method", r.Method, "path", r.URL.EscapedPath(), "err", err)
		return http.StatusServiceUnavailable, errorBody{Error: "request cancelled: " + err.Error()}
	}
	status := http.StatusInternalServerError
	if unavailable(err) || !s.conn.NATS().IsConnected() {
		status = http.StatusServiceUnavailable
	}
	s.log.Error("request failed", "method", r.Method, "path", r.URL.EscapedPath(), "status", status, "err", err)
	if errors.Is(err, nats.ErrReconnectBufExceeded) {
		// nats.go refusing to buffer while it reconnects (NoReconnectBuffer):
		// its wording would send the reader looking for a buffer to grow.
		return status, errorBody{Error: "state store unavailable, retry later: not connected to NATS (" + s.conn.NATS().Status().String() + ")"}
	}
	if status == http.StatusServiceUnavailable {
		return status, errorBody{Error: "state store unavailable, retry later: " + err.Error()}
	}
	return status, errorBody{Error: "internal error: " + err.Error()}
}

func unavailable(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, bus.ErrWriteInFlight) ||
		errors.Is(err, nats.ErrConnectionClosed) ||
		errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrReconnectBufExceeded) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled)
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	if t, ok := body.(textBody); ok {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(t))
		return
	}
	w.WriteHeader(status)
	if raw, ok := body.(rawJSON); ok {
		_, _ = w.Write(raw)
		return
	}
	// The status line is already sent, so an encoding failure can only
	// show as a truncated body; the client sees a broken connection.
	_ = json.NewEncoder(w).Encode(body)
}

func (s *Server) healthz(_ context.Context, _ http.ResponseWriter, r *http.Request, _ string) (int, any, error) {
	if err := checkQuery(r.URL.Query()); err != nil {
		return 0, nil, err
	}
	if !s.conn.NATS().IsConnected() {
		return 0, nil, newError(http.StatusServiceUnavailable, "not connected to NATS (status %s)", s.conn.NATS().Status())
	}
	return http.StatusOK, map[string]string{"status": "ok"}, nil
}
