package openapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sort"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/builder"
	"k8s.io/kube-openapi/pkg/builder3"
	"k8s.io/kube-openapi/pkg/cached"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/handler"
	"k8s.io/kube-openapi/pkg/handler3"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/util"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// Config says what the documents describe.
type Config struct {
	Resources []Resource
	// FieldValidation says the REST handler honours ?fieldValidation=
	// (Strict refuses unknown and duplicate fields with 422). kubectl reads
	// it from the documents: with it, `apply --validate=strict` leaves the
	// check to the server; without it, kubectl checks against the schemas
	// itself before sending. Set it only when the server does the check.
	FieldValidation bool
	// Version is the documents' info.version, the server's gitVersion
	// ("v1.33.0"); empty means "unversioned".
	Version string
	// Logger gets one line when the documents are built (how long it took).
	Logger *slog.Logger
}

// Handler serves GET /openapi/v2 and /openapi/v3, /openapi/v3/<group path>.
// Mount it on those paths (or on every path under /openapi/).
type Handler struct {
	mux *http.ServeMux
	// built is set by each document build: the request that caused it
	// gives the garbage back (see ServeHTTP).
	built *atomic.Bool
}

var _ http.Handler = (*Handler)(nil)

// New checks the resources and returns the handler; the documents
// themselves are built on their first request, once.
func New(cfg Config) (*Handler, error) {
	byGV := map[schema.GroupVersion][]*route{}
	for _, r := range cfg.Resources {
		for _, v := range []any{r.Object, r.List} {
			if _, ok := v.(util.OpenAPIModelNamer); !ok {
				return nil, fmt.Errorf("openapi: %s/%s: %T is not a k8s.io/api type with an OpenAPI model name", r.GVK.GroupVersion(), r.Resource, v)
			}
		}
		if r.ListKind == "" {
			return nil, fmt.Errorf("openapi: %s/%s: no list kind", r.GVK.GroupVersion(), r.Resource)
		}
		routes, err := routesFor(r, cfg.FieldValidation)
		if err != nil {
			return nil, err
		}
		gv := r.GVK.GroupVersion()
		byGV[gv] = append(byGV[gv], routes...)
	}
	if len(byGV) == 0 {
		return nil, errors.New("openapi: no resources")
	}
	gvList := make([]schema.GroupVersion, 0, len(byGV))
	for gv := range byGV {
		gvList = append(gvList, gv)
	}
	sort.Slice(gvList, func(i, j int) bool { return groupPath(gvList[i]) < groupPath(gvList[j]) })
	gvks := gvksOf(cfg.Resources, gvList)

	b := &docs{cfg: cfg, gvks: gvks, built: new(atomic.Bool)}
	containers := make([]common.RouteContainer, 0, len(gvList))
	for _, gv := range gvList {
		containers = append(containers, &container{root: "/" + groupPath(gv), routes: byGV[gv]})
	}

	mux := http.NewServeMux()
	v2 := handler.NewOpenAPIServiceLazy(cached.Once(cached.Func(func() (*spec.Swagger, string, error) {
		start := time.Now()
		s, err := builder.BuildOpenAPISpecFromRoutes(containers, b.v2Config())
		b.logBuilt("v2", start, err)
		b.built.Store(true)
		return s, "v2", err
	})))
	v2.RegisterOpenAPIVersionedService("/openapi/v2", mux)

	v3 := handler3.NewOpenAPIService()
	for i, gv := range gvList {
		c := containers[i]
		path := groupPath(gv)
		v3.UpdateGroupVersionLazy(path, cached.Once(cached.Func(func() (*spec3.OpenAPI, string, error) {
			start := time.Now()
			s, err := builder3.BuildOpenAPISpecFromRoutes([]common.RouteContainer{c}, b.v3Config())
			b.logBuilt("v3 "+path, start, err)
			b.built.Store(true)
			return s, path, err
		})))
	}
	if err := v3.RegisterOpenAPIV3VersionedService("/openapi/v3", prefixMux{mux}); err != nil {
		return nil, fmt.Errorf("openapi: v3 handler: %w", err)
	}
	return &Handler{mux: mux, built: b.built}, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(w, r)
	// Building and encoding a document (all of core/v1's schemas, JSON,
	// then protobuf through a YAML tree) leaves ~20 MB of garbage for a few
	// MB kept: measured, `miniku up` stayed 21 MB larger 30 s after one
	// kubectl explain. It happens once per document, so give it back now.
	if h.built.Swap(false) {
		debug.FreeOSMemory()
	}
}

// gvksOf is the group, version and kind of each model name: the
// resources' objects and lists, their subresources' bodies, and, as
// kube-apiserver's scheme has them (metav1.AddToGroupVersion), the
// options and watch types of every group version and Status of v1.
func gvksOf(rs []Resource, gvList []schema.GroupVersion) map[string][]schema.GroupVersionKind {
	gvks := map[string][]schema.GroupVersionKind{}
	add := func(model any, gvk schema.GroupVersionKind) {
		name := modelName(model)
		for _, have := range gvks[name] {
			if have == gvk {
				return
			}
		}
		gvks[name] = append(gvks[name], gvk)
	}
	for _, r := range rs {
		add(r.Object, r.GVK)
		add(r.List, r.GVK.GroupVersion().WithKind(r.ListKind))
		for _, name := range r.Subresources {
			sub, err := subresourceOf(name, r)
			if err == nil && sub.body != nil && sub.gvk.Kind != "" {
				add(sub.body, sub.gvk)
			}
		}
	}
	for _, gv := range gvList {
		add(&metav1.DeleteOptions{}, gv.WithKind("DeleteOptions"))
		add(&metav1.WatchEvent{}, gv.WithKind("WatchEvent"))
	}
	add(&metav1.Status{}, schema.GroupVersion{Version: "v1"}.WithKind("Status"))
	return gvks
}

// prefixMux is handler3's view of a ServeMux: a pattern ending in "/" is
// already a prefix there.
type prefixMux struct{ *http.ServeMux }

func (m prefixMux) HandlePrefix(path string, h http.Handler) { m.Handle(path, h) }

// docs holds what both builders share.
type docs struct {
	cfg   Config
	gvks  map[string][]schema.GroupVersionKind
	built *atomic.Bool
}

func (d *docs) logBuilt(what string, start time.Time, err error) {
	if d.cfg.Logger == nil {
		return
	}
	if err != nil {
		d.cfg.Logger.Error("building openapi document", "component", "openapi", "document", what, "err", err)
		return
	}
	d.cfg.Logger.Info("built openapi document", "component", "openapi", "document", what, "took", time.Since(start))
}

// definitionName keeps the model names openapi-gen wrote (kube-apiserver's
// "io.k8s.api.core.v1.Pod") and adds x-kubernetes-group-version-kind, the
// extension kubectl finds a kind's schema by.
func (d *docs) definitionName(name string) (string, spec.Extensions) {
	list := d.gvks[name]
	if len(list) == 0 {
		return name, nil
	}
	vals := make([]any, len(list))
	for i, gvk := range list {
		vals[i] = map[string]any{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind}
	}
	return name, spec.Extensions{"x-kubernetes-group-version-kind": vals}
}

func (d *docs) info() *spec.Info {
	v := d.cfg.Version
	if v == "" {
		v = "unversioned"
	}
	return &spec.Info{InfoProps: spec.InfoProps{Title: "Kubernetes", Version: v}}
}

func operationIDAndTags(r common.Route) (string, []string, error) {
	rt, ok := r.(*route)
	if !ok {
		return "", nil, fmt.Errorf("openapi: unexpected route %T", r)
	}
	tags := []string{}
	if rt.gvk != nil {
		tags = []string{tag(rt.gvk.GroupVersion())}
	}
	return rt.opID, tags, nil
}

func (d *docs) v2Config() *common.Config {
	return &common.Config{
		Info:                           d.info(),
		GetDefinitions:                 GetOpenAPIDefinitions,
		GetDefinitionName:              d.definitionName,
		GetOperationIDAndTagsFromRoute: operationIDAndTags,
		CommonResponses:                map[int]spec.Response{http.StatusUnauthorized: {ResponseProps: spec.ResponseProps{Description: "Unauthorized"}}},
		SecurityDefinitions: &spec.SecurityDefinitions{"BearerToken": &spec.SecurityScheme{SecuritySchemeProps: spec.SecuritySchemeProps{
			Type: "apiKey", Name: "authorization", In: "header", Description: "Bearer Token authentication",
		}}},
		DefaultSecurity: []map[string][]string{{"BearerToken": {}}},
	}
}

func (d *docs) v3Config() *common.OpenAPIV3Config {
	return &common.OpenAPIV3Config{
		Info:                           d.info(),
		GetDefinitions:                 GetOpenAPIDefinitions,
		GetDefinitionName:              d.definitionName,
		GetOperationIDAndTagsFromRoute: operationIDAndTags,
		CommonResponses:                map[int]*spec3.Response{http.StatusUnauthorized: {ResponseProps: spec3.ResponseProps{Description: "Unauthorized"}}},
		SecuritySchemes: spec3.SecuritySchemes{"BearerToken": &spec3.SecurityScheme{SecuritySchemeProps: spec3.SecuritySchemeProps{
			Type: "apiKey", Name: "authorization", In: "header", Description: "Bearer Token authentication",
		}}},
		DefaultSecurity: []map[string][]string{{"BearerToken": {}}},
	}
}
