package kube

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/miniku/miniku/schemas/kinds"
)

// DefaultNamespace is the one namespace MiniKu keeps namespaced objects
// in for now; the others exist (kube-system, kube-public) but are empty.
const DefaultNamespace = "default"

// BuiltinNamespaces exist from the start, as on Kubernetes.
var BuiltinNamespaces = []string{DefaultNamespace, "kube-system", "kube-public"}

// Config configures a Handler.
type Config struct {
	Store Store
	Log   *slog.Logger
	// OpenAPI serves /openapi/...; nil: 404.
	OpenAPI http.Handler
	// Build and Commit go into /version (gitVersion v1.33.0-miniku.<Build>).
	Build, Commit string
	// StreamContext bounds a watch: it ends with the request or the
	// server's shutdown (nil: the request's context).
	StreamContext func(*http.Request) (context.Context, context.CancelFunc)
	// Bookmark is the interval of BOOKMARK events on watches that allow
	// them (0: a minute, as kube-apiserver).
	Bookmark time.Duration
	// Now is the clock (creation timestamps, table ages); nil: time.Now.
	Now func() time.Time
	// Streams serve pods/log and pods/exec ("log", "exec"); the object's
	// name is NameFrom(r.Context()). Absent: 501 saying so.
	Streams map[string]http.Handler
	// Timeout bounds every non-watch request's store operations.
	Timeout time.Duration
}

// Handler serves the Kubernetes API paths.
type Handler struct {
	cfg Config
	log *slog.Logger

	cacheMu sync.Mutex
	caches  map[string]*wireCache // by resource

	managers fieldManagers

	disc *discoveryDocs
}

// New returns a Handler.
func New(cfg Config) *Handler {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Bookmark == 0 {
		cfg.Bookmark = time.Minute
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.StreamContext == nil {
		cfg.StreamContext = func(r *http.Request) (context.Context, context.CancelFunc) {
			return context.WithCancel(r.Context())
		}
	}
	if cfg.Build == "" {
		cfg.Build = "0"
	}
	disc, err := buildDiscovery()
	if err != nil {
		// The kinds are declared at init: a declaration discovery cannot
		// describe is a programming error any test starting a Handler finds.
		panic(fmt.Sprintf("kube: discovery: %v", err))
	}
	return &Handler{cfg: cfg, log: cfg.Log.With("component", "kubeapi"), caches: map[string]*wireCache{}, disc: disc}
}

// IsPath says whether path belongs to the Kubernetes API.
func IsPath(path string) bool {
	for _, p := range []string{"/api", "/apis", "/version", "/openapi"} {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// request is a resource request as parsed from its path.
type request struct {
	kind      kinds.Kind
	info      *kinds.Info
	namespace string
	name      string
	sub       string
}

func (q *request) gr() schema.GroupResource { return q.info.GVR().GroupResource() }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	segs := splitPath(r.URL.EscapedPath())
	for i, s := range segs {
		u, err := url.PathUnescape(s)
		if err != nil {
			writeStatus(w, apierrors.NewBadRequest("invalid path: "+err.Error()))
			return
		}
		segs[i] = u
	}
	switch {
	case len(segs) >= 1 && segs[0] == "openapi":
		if h.cfg.OpenAPI == nil {
			writeStatus(w, apierrors.NewNotFound(schema.GroupResource{}, r.URL.Path))
			return
		}
		h.cfg.OpenAPI.ServeHTTP(w, r)
		return
	case len(segs) == 1 && segs[0] == "version":
		if !getOnly(w, r) {
			return
		}
		h.serveVersion(w)
		return
	case len(segs) == 1 && segs[0] == "api":
		if !getOnly(w, r) {
			return
		}
		h.serveDiscovery(w, r, "api")
		return
	case len(segs) == 1 && segs[0] == "apis":
		if !getOnly(w, r) {
			return
		}
		h.serveDiscovery(w, r, "apis")
		return
	}
	var gv schema.GroupVersion
	var rest []string
	switch {
	case len(segs) >= 2 && segs[0] == "api":
		gv, rest = schema.GroupVersion{Version: segs[1]}, segs[2:]
	case len(segs) >= 3 && segs[0] == "apis":
		gv, rest = schema.GroupVersion{Group: segs[1], Version: segs[2]}, segs[3:]
	case len(segs) == 2 && segs[0] == "apis":
		h.serveGroup(w, r, segs[1])
		return
	default:
		writeStatus(w, notFoundPath(r))
		return
	}
	if len(rest) == 0 {
		if !getOnly(w, r) {
			return
		}
		list, ok := h.disc.legacy[gv]
		if !ok {
			writeStatus(w, notFoundPath(r))
			return
		}
		writeJSON(w, http.StatusOK, list)
		return
	}
	q, ok := parseResource(gv, rest)
	if !ok {
		writeStatus(w, notFoundPath(r))
		return
	}
	h.serveResource(w, r, q)
}

// parseResource reads <resource>[/<name>[/<sub>]], prefixed by
// namespaces/<ns> for namespaced kinds; namespaces/<name>[/<sub>] is the
// Namespace object itself.
func parseResource(gv schema.GroupVersion, rest []string) (*request, bool) {
	q := &request{}
	if len(rest) >= 3 && rest[0] == "namespaces" {
		if k, ok := kinds.ByResource(rest[2]); ok && k.Info().Namespaced && k.Info().GroupVersion == gv {
			q.namespace = rest[1]
			rest = rest[2:]
		}
	}
	k, ok := kinds.ByResource(rest[0])
	if !ok || k.Info().GroupVersion != gv || len(rest) > 3 {
		return nil, false
	}
	q.kind, q.info = k, k.Info()
	if len(rest) > 1 {
		q.name = rest[1]
		if q.name == "" {
			return nil, false
		}
	}
	if len(rest) > 2 {
		q.sub = rest[2]
		if !contains(q.info.Subresources, q.sub) {
			return nil, false
		}
	}
	return q, true
}

func (h *Handler) serveGroup(w http.ResponseWriter, r *http.Request, group string) {
	for _, gv := range h.disc.groups {
		if gv.Group == group {
			list := map[string]any{"kind": "APIGroup", "apiVersion": "v1", "name": group,
				"versions":         []map[string]string{{"groupVersion": gv.String(), "version": gv.Version}},
				"preferredVersion": map[string]string{"groupVersion": gv.String(), "version": gv.Version}}
			writeJSON(w, http.StatusOK, list)
			return
		}
	}
	writeStatus(w, notFoundPath(r))
}

func notFoundPath(r *http.Request) *apierrors.StatusError {
	se := apierrors.NewNotFound(schema.GroupResource{}, "")
	se.ErrStatus.Message = "the server could not find the requested resource"
	se.ErrStatus.Details = nil
	_ = r
	return se
}

func getOnly(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	writeStatus(w, apierrors.NewMethodNotSupported(schema.GroupResource{}, r.Method))
	return false
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func contextWithTimeout(ctx context.Context, d time.Duration) (context.Context, func()) {
	return context.WithTimeout(ctx, d)
}

var slogDiscard = slog.New(slog.DiscardHandler)
