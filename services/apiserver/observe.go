package apiserver

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/miniku/miniku/bus/metrics"
)

// withMetrics serves GET /metrics (Prometheus text format) behind the same
// token as the rest of the API: metric labels name nodes and routes, which
// is not for anyone who can reach the port.
func (s *Server) withMetrics(next http.Handler) http.Handler {
	prom := metrics.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "method " + r.Method + " is not allowed on /metrics (allowed: GET, HEAD)"})
			return
		}
		prom.ServeHTTP(w, r)
	})
}

// routePattern is the route label of a request: the path pattern with
// names replaced by {name} ("/pods/{name}/logs"), so the label has a
// bounded set of values; "other" for unknown paths. Streams are their own
// routes (…?watch, …?follow) so that their long durations do not swamp the
// latency of ordinary requests.
func (s *Server) routePattern(r *http.Request) string {
	segs := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	_, kind, ok := s.routes(segs)
	if !ok {
		return "other"
	}
	if kind != "" {
		segs[1] = "{name}"
	}
	route := "/" + strings.Join(segs, "/")
	q := r.URL.Query()
	if b, _ := strconv.ParseBool(q.Get("watch")); b {
		route += "?watch"
	} else if b, _ := strconv.ParseBool(q.Get("follow")); b {
		route += "?follow"
	}
	return route
}
