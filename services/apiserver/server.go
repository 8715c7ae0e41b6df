package apiserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/registry"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/apiserver/quorum"
)

// Config configures a Server.
type Config struct {
	// Addr is host:port to serve plain HTTP on (port 0 picks a free one;
	// empty: none). Meant for loopback: the token crosses it in clear.
	Addr string
	// HTTPSAddr is host:port to serve the same API over HTTPS on, with
	// TLSCert and TLSKey (empty: none).
	HTTPSAddr string
	Logger    *slog.Logger
	// Token is the bearer token every request but /healthz must present
	// (auth.go). Empty disables authentication, which New refuses on a
	// non-loopback address.
	Token string
	// TokenFile is where Token was read from, shown (the path only) on the
	// dashboard's login so a user of a non-default data dir is told where
	// to look.
	TokenFile string
	// TLSCert and TLSKey (PEM files) are the HTTPS listener's certificate.
	TLSCert, TLSKey string
	// PodSecurity is the Pod Security Standards level enforced on every
	// pod and replicaset template written through the API; empty means
	// schemas.PodSecurityBaseline.
	PodSecurity schemas.PodSecurityLevel
	// Pods, ReplicaSets and Nodes, when set, are caches the caller runs
	// and shares with other components of the process (miniku up); nil:
	// Run runs the apiserver's own.
	Pods        *bus.Informer[schemas.Pod, *schemas.Pod]
	ReplicaSets *bus.Informer[schemas.ReplicaSet, *schemas.ReplicaSet]
	Nodes       *bus.Informer[schemas.Node, *schemas.Node]
	// CompactionDelay is how long delete markers are kept (the window in
	// which a watch may resume; older resumes get 410): 0 is
	// bus.DefaultCompactionDelay, negative disables compaction.
	CompactionDelay time.Duration
	// Store, when set, is the state of the store's disk (free space
	// against its reserve, write failures): writes are refused with 507
	// below the reserve and /readyz reports it (store.go).
	Store StoreHealth
	// OpenAPI serves the Kubernetes API's /openapi/v2 and /openapi/v3
	// (nil: 404 Status).
	OpenAPI http.Handler
	// Build is the N in /version's gitVersion v1.33.0-miniku.N.
	Build string
	// Namespaces, like Pods, is a shared cache of the namespaces bucket.
	Namespaces *bus.Informer[schemas.Namespace, *schemas.Namespace]
}

const (
	shutdownTimeout = 5 * time.Second
	// requestTimeout is long enough to ride out a NATS reconnect or a
	// JetStream leader election, during which requests are buffered.
	requestTimeout = 10 * time.Second
)

// Server serves the MiniKu HTTP API from the bus's KV buckets.
type Server struct {
	cfg     Config
	conn    *bus.Conn
	log     *slog.Logger
	handler http.Handler
	// now is the clock for createdAt; tests may replace it.
	now func() time.Time
	// reg writes objects through their kinds' rules (bus/registry).
	reg *registry.Registry
	// timeout bounds every request's store operations, so a NATS outage
	// turns into a 503 instead of requests piling up.
	timeout time.Duration
	// streamsCtx is cancelled when the server shuts down and ends every
	// watch and log stream (see stream.go).
	streamsCtx  context.Context
	stopStreams context.CancelFunc
	// watchHeartbeat is the BOOKMARK interval of idle watches.
	watchHeartbeat time.Duration
	// watchStats counts watches by where they were served from (as the
	// miniku_apiserver_watches_total metric does, per server).
	watchStats struct{ cache, bucket, handover atomic.Int64 }
	// Lists are served from these caches, once they reflect every write
	// made before the request, while Run runs them (listSource).
	pods  *bus.Informer[schemas.Pod, *schemas.Pod]
	rss   *bus.Informer[schemas.ReplicaSet, *schemas.ReplicaSet]
	nodes *bus.Informer[schemas.Node, *schemas.Node]
	// namespaces is the Kubernetes API's Namespace objects.
	namespaces *bus.Informer[schemas.Namespace, *schemas.Namespace]
	// configMaps, serviceAccounts and secrets back the Kubernetes API's
	// lists and watches of those kinds; secrets is nil when the
	// connection has no secrets key (Conn.Secrets nil).
	configMaps      *bus.Informer[schemas.ConfigMap, *schemas.ConfigMap]
	serviceAccounts *bus.Informer[schemas.ServiceAccount, *schemas.ServiceAccount]
	secrets         *bus.Informer[schemas.Secret, *schemas.Secret]
	// kube serves the Kubernetes API paths (/api, /apis, /version, ...).
	kube http.Handler
	// ownCaches are the Runs of the caches made here (not shared ones).
	ownCaches []func(context.Context) error
	// podsJSON: pods as last encoded for a list (objects.go).
	podsJSON *jsonCache
	// quorum probes whether each bucket's stream can serve (quorum.go);
	// Run runs it.
	quorum *quorum.Probe

	mu        sync.Mutex
	started   bool
	addr      string
	httpsAddr string
	listening chan struct{}
}

// New builds a Server; it does not listen until Run.
func New(cfg Config, conn *bus.Conn) (*Server, error) {
	if conn == nil {
		return nil, errors.New("apiserver: nil bus connection")
	}
	if err := checkSecurity(cfg); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		cfg:       cfg,
		conn:      conn,
		log:       log.With("component", "apiserver"),
		now:       time.Now,
		timeout:   requestTimeout,
		listening: make(chan struct{}),

		watchHeartbeat: defaultWatchHeartbeat,
	}
	s.reg = registry.For(conn, func() time.Time { return s.now() })
	probe, err := newQuorumProbe(s)
	if err != nil {
		return nil, err
	}
	s.quorum = probe
	// Caches of its own keep a history: watches are served from it.
	caches := &bus.Caches{Conn: conn, Resync: informerResync, Log: s.log, History: bus.DefaultHistory}
	s.pods = bus.CacheOf(caches, cfg.Pods, conn.Pods, nil)
	s.rss = bus.CacheOf(caches, cfg.ReplicaSets, conn.ReplicaSets, nil)
	s.nodes = bus.CacheOf(caches, cfg.Nodes, conn.Nodes, nil)
	s.namespaces = bus.CacheOf(caches, cfg.Namespaces, conn.Namespaces, nil)
	s.configMaps = bus.CacheOf(caches, nil, conn.ConfigMaps, nil)
	s.serviceAccounts = bus.CacheOf(caches, nil, conn.ServiceAccounts, nil)
	if conn.Secrets != nil {
		s.secrets = bus.CacheOf(caches, nil, conn.Secrets, nil)
	}
	s.ownCaches = caches.Own
	s.podsJSON = newJSONCache()
	// Entries are checked by revision when used; only a deleted pod's is
	// dropped.
	s.pods.AddEventHandler(bus.HandlerFuncs[*schemas.Pod]{Delete: func(old *schemas.Pod) { s.podsJSON.forget(old.Name) }})
	s.streamsCtx, s.stopStreams = context.WithCancel(context.Background())
	s.kube = s.newKube()
	s.handler = s.withUI(s.authenticate(s.withMetrics(http.HandlerFunc(s.serve))))
	return s, nil
}

// Handler serves the API without a listener (tests, embedding).
func (s *Server) Handler() http.Handler { return s.handler }

// Listening is closed once Run has bound its address.
func (s *Server) Listening() <-chan struct{} { return s.listening }

// Addr is the bound plain-HTTP address once Listening is closed ("" before,
// or without Config.Addr), which is how callers learn the port when
// Config.Addr ends in ":0".
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// HTTPSAddr is Addr for the HTTPS listener.
func (s *Server) HTTPSAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.httpsAddr
}

// Run listens on cfg.Addr and serves until ctx ends, then gives in-flight
// requests up to 5 s to finish. It returns nil on a clean stop.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("apiserver: Run called twice")
	}
	s.started = true
	s.mu.Unlock()

	// The built-in namespaces exist before the first request is served.
	if err := s.ensureNamespacesRetry(ctx); err != nil {
		return err
	}
	lns, err := s.listeners()
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		// Bodies are at most 1 MiB; a client slower than that is stuck.
		ReadTimeout:  30 * time.Second,
		WriteTimeout: requestTimeout + 10*time.Second,
		IdleTimeout:  2 * time.Minute,
		ErrorLog:     slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(s.stopStreams)
	// The caches outlive the server's shutdown grace: requests still
	// running may list.
	ictx, stopInformers := context.WithCancel(context.Background())
	var iwg sync.WaitGroup
	defer func() { stopInformers(); iwg.Wait() }()
	for _, run := range s.ownCaches {
		iwg.Add(1)
		go func() { defer iwg.Done(); _ = run(ictx) }()
	}
	iwg.Go(func() { _ = s.quorum.Run(ictx) })
	// Kubelets write their pods' status and record events through the
	// node API, which every apiserver serves (bus/nodeapi.go).
	iwg.Go(func() {
		if err := bus.ServeNodeAPI(ictx, s.conn, bus.NodeAPIConfig{PodStatus: s.reg.Pods, Pods: s.pods, Logger: s.log}); err != nil {
			s.log.Error("node API not served: kubelets cannot report pod status", "err", err)
		}
	})
	if s.cfg.CompactionDelay >= 0 {
		comp := bus.NewCompactor(s.conn, s.cfg.CompactionDelay, s.log)
		iwg.Go(func() {
			if err := comp.Run(ictx); err != nil && ictx.Err() == nil {
				s.log.Error("store compaction stopped: delete markers are no longer purged", "err", err)
			}
		})
	}
	s.mu.Lock()
	for _, l := range lns {
		if l.tls {
			s.httpsAddr = l.Addr().String()
		} else {
			s.addr = l.Addr().String()
		}
	}
	s.mu.Unlock()
	close(s.listening)

	// One server for both listeners: same handler, same shutdown.
	serveErr := make(chan error, len(lns))
	for _, l := range lns {
		s.log.Info("apiserver listening", "addr", l.Addr().String(), "tls", l.tls)
		go func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("apiserver serve on %s: %w", l.Addr(), err)
				return
			}
			serveErr <- nil
		}()
	}

	select {
	case err := <-serveErr:
		// Serve only returns early on a listener failure.
		srv.Close()
		for range len(lns) - 1 {
			<-serveErr
		}
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	shutErr := srv.Shutdown(sctx)
	if shutErr != nil {
		// Requests still running after the grace period are cut off.
		srv.Close()
	}
	var errs []error
	for range lns {
		errs = append(errs, <-serveErr)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if shutErr != nil {
		return fmt.Errorf("apiserver shutdown: %w", shutErr)
	}
	s.log.Info("apiserver stopped")
	return nil
}
