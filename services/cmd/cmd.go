//go:build linux

// Package cmd implements the miniku binary's server commands: `up` runs an
// embedded NATS server, the apiserver, scheduler, controller and kubelets in
// one process; `nats`, `apiserver`, `scheduler`, `controller` and `kubelet`
// run each part alone against a shared NATS server or cluster. Client
// commands live in services/cli; main.go only dispatches.
package cmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/metrics"
	"github.com/miniku/miniku/bus/pki"
	"github.com/miniku/miniku/bus/registry"
	mkrt "github.com/miniku/miniku/runtime"
	"github.com/miniku/miniku/runtime/image"
	"github.com/miniku/miniku/services/apiserver"
	"github.com/miniku/miniku/services/cli"
	"github.com/miniku/miniku/services/controller"
	"github.com/miniku/miniku/services/garbagecollector"
	"github.com/miniku/miniku/services/kubelet"
	"github.com/miniku/miniku/services/noderoles"
	"github.com/miniku/miniku/services/scheduler"
	"github.com/miniku/miniku/services/serviceaccounts"
)

// common flags of every command.
type common struct {
	dataDir  string
	natsURL  string
	logLevel string
	replicas int
	obs      obsFlags // observe.go: --log-format, --v, --metrics-addr
	// NATS login: role is the NATS user (security.go).
	role, natsCreds, natsCA string
}

func (c *common) register(fs *flag.FlagSet, withData bool) {
	if withData {
		fs.StringVar(&c.dataDir, "data-dir", "/var/lib/miniku", "directory for state: JetStream store, images, containers")
	}
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	c.obs.register(fs)
}

func (c *common) registerNATS(fs *flag.FlagSet) {
	fs.StringVar(&c.natsURL, "nats", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated for a cluster")
	fs.IntVar(&c.replicas, "replicas", 1, "replicas of the KV buckets this component creates (3 on a NATS cluster)")
	fs.StringVar(&c.natsCreds, "nats-creds", "", "NATS credentials file (default <data-dir>/nats/auth/<user>.json if it exists)")
	fs.StringVar(&c.natsCA, "nats-ca", "", "CA certificate (PEM) of the NATS server, which uses TLS (default <data-dir>/tls/ca.crt if it exists)")
}

func (c *common) logger(stderr io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", c.logLevel, err)
	}
	h, err := c.obs.handler(stderr, lvl)
	if err != nil {
		return nil, err
	}
	return slog.New(h), nil
}

func (c *common) connect(ctx context.Context, name string, log *slog.Logger) (*bus.Conn, error) {
	o, err := c.busOptions(log)
	if err != nil {
		return nil, err
	}
	o.Name = name
	return bus.Connect(ctx, o)
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments %q", fs.Name(), fs.Args())
	}
	return nil
}

// group runs services until the first fails or ctx ends, then stops all
// and waits for them.
type group struct {
	wg     sync.WaitGroup
	cancel context.CancelFunc
	once   sync.Once
	err    error
}

func newGroup(ctx context.Context) (*group, context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	return &group{cancel: cancel}, ctx
}

func (g *group) Go(name string, f func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := f(); err != nil {
			g.once.Do(func() { g.err = fmt.Errorf("%s: %w", name, err) })
		}
		g.cancel()
	}()
}

func (g *group) Wait() error {
	g.wg.Wait()
	g.cancel()
	return g.err
}

func cmdUp(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	var c common
	c.register(fs, true)
	apiAddr := fs.String("api-addr", "127.0.0.1:8080", "apiserver listen address")
	natsAddr := fs.String("nats-addr", "127.0.0.1:4222", "embedded NATS listen address (for the nats CLI and separate components)")
	nodes := fs.Int("nodes", 2, "number of in-process kubelets, named node-1..node-N")
	hollowNodes := fs.Int("hollow-nodes", 0, "number of hollow nodes (real kubelet code, fake runtime: for scale tests), named hollow-1..hollow-N")
	mirror := fs.String("registry-mirror", "", "registry to pull docker.io images from, e.g. http://127.0.0.1:5000")
	ctl := controllerFlags(fs)
	hb := fs.Duration("heartbeat-interval", kubelet.DefaultHeartbeatInterval, "kubelet heartbeat interval")
	bo := backoffFlags(fs)
	nf := nodeFlags(fs)
	rf := runtimeFlags(fs)
	ef := evictionFlags(fs)
	lf := leaseFlags(fs)
	sec := registerAPIFlags(fs)
	natsContext := fs.String("nats-context", "miniku", "name of the nats CLI context written for the read-only viewer (empty: none)")
	sync := syncFlag(fs)
	cf := registerClusterFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	cc, err := cf.resolve(*natsAddr)
	if err != nil {
		return fmt.Errorf("up: %w", err)
	}
	nodesSet := false
	fs.Visit(func(f *flag.Flag) { nodesSet = nodesSet || f.Name == "nodes" })
	if cc != nil && !nodesSet {
		*nodes = 1 // one kubelet per host, named --node-name
	}
	if *nodes < 0 || *nodes > 1000 {
		return fmt.Errorf("--nodes must be between 0 and 1000")
	}
	if err := checkHollowCount("--hollow-nodes", *hollowNodes); err != nil {
		return err
	}
	info, err := nf.info()
	if err != nil {
		return err
	}
	rc, err := rf.config(info)
	if err != nil {
		return err
	}
	evCfg, imgOpts, err := ef.config()
	if err != nil {
		return err
	}
	listens := []listenAddr{{"--nats-addr", *natsAddr}}
	if cc != nil {
		listens = append(listens, listenAddr{"--cluster-addr", cc.clusterAddr}, listenAddr{"--join-addr", cc.joinAddr})
	}
	if err := c.checkStart(&sec, *apiAddr, listens...); err != nil {
		return fmt.Errorf("up: %w", err)
	}
	log, stopMetrics, err := c.observe(stderr)
	if err != nil {
		return err
	}
	defer stopMetrics()
	// Before anything writes to the data dir: a refused join writes
	// nothing.
	if cc != nil {
		if *cf.join != "" {
			err = joinCluster(ctx, c.dataDir, *cf.join, *cf.token, cc, log)
		} else {
			err = initCluster(c.dataDir, cc, log)
		}
		if err != nil {
			return fmt.Errorf("up: %w", err)
		}
	}
	var kubelets []string
	for i := 1; i <= *nodes; i++ {
		switch {
		case cc == nil:
			kubelets = append(kubelets, fmt.Sprintf("node-%d", i))
		case *nodes == 1:
			kubelets = append(kubelets, cc.nodeName)
		default:
			kubelets = append(kubelets, fmt.Sprintf("%s-%d", cc.nodeName, i))
		}
	}
	apiCfg, err := sec.config(c.dataDir, *apiAddr, log)
	if err != nil {
		return err
	}
	storeLock, err := lockStore(c.dataDir)
	if err != nil {
		return err
	}
	defer storeLock.Release()
	ns, natsCfg, guard, natsCA, err := startNATS(c.dataDir, *natsAddr, kubelets, *sec.tlsCert, *sec.tlsKey, sync, cc, log)
	if err != nil {
		return err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	defer metrics.SetStore(guard)()
	apiCfg.Store = guard
	if err := writeNATSContext(*natsContext, ns.ClientURL(), c.dataDir, natsCA, log); err != nil {
		log.Warn("no nats CLI context written", "err", err)
	}
	if server, ca := cliTarget(c.dataDir, *apiAddr, apiCfg.HTTPSAddr, *sec.tlsCert); server != "" {
		if err := cli.WriteLocalConfig(c.dataDir, server, ca); err != nil {
			log.Warn("the CLI may not find this apiserver: pass it --server", "err", err)
		}
	}
	upKubeconfig(c.dataDir, apiCfg, *sec.tlsCert, log)
	// Each component logs in as its own user, in process too, so that
	// their permissions are the ones every run exercises.
	var conns []*bus.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	secrets, err := secretsKey(c.dataDir)
	if err != nil {
		return err
	}
	var joins *joinServer
	if cc != nil {
		// Served before the store is: a clustered JetStream has no
		// leader until a second server joins through it.
		jctx, stopJoin := context.WithCancel(ctx)
		joinDone := make(chan struct{})
		defer func() { stopJoin(); <-joinDone }()
		joins = &joinServer{dataDir: c.dataDir, cc: cc, ns: func() *server.Server { return ns }, log: log.With("component", "join")}
		js := joins
		go func() {
			defer close(joinDone)
			if err := js.run(jctx); err != nil {
				log.Error("join listener stopped: no host can join through this server", "err", err)
			}
		}()
	}
	connectNamed := func(user, name string) (*bus.Conn, error) {
		creds, err := bus.ReadCredentials(bus.CredentialsPath(authDir(c.dataDir), user))
		if err != nil {
			return nil, err
		}
		o := bus.Options{InProcess: ns, Name: name, Logger: log,
			User: creds.User, Password: creds.Password, Bind: strings.HasPrefix(user, "kubelet-") || user == bus.UserHollow}
		if user == bus.UserAPIServer {
			o.SecretsKey = secrets
		}
		conn, err := bus.Connect(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("connect as %s: %w", user, err)
		}
		conns = append(conns, conn)
		return conn, nil
	}
	connectAs := func(user string) (*bus.Conn, error) { return connectNamed(user, "miniku-up-"+user) }
	// Leases on connections of their own (see single).
	leaseConnOf := func(user string) func() (*bus.Conn, error) {
		return func() (*bus.Conn, error) { return connectNamed(user, "miniku-up-"+user+"-lease") }
	}
	// The apiserver's connection first: it creates the buckets the
	// kubelets' connections bind to.
	conn, err := connectAs(bus.UserAPIServer)
	if err != nil {
		return err
	}
	if joins != nil {
		joins.conn.Store(conn)
	}
	// A damaged store would leave every cache waiting for its first
	// values: say so and stop before anything starts.
	// Lost last writes leave a consistent store: say so loudly, go on.
	if err := checkStore(ctx, conn, cc != nil, log); bus.OnlyLostWrites(err) {
		log.Error("the store lost writes while stopped", "err", err)
	} else if err != nil {
		return fmt.Errorf("up: %w", err)
	}
	schedConn, err := connectAs(bus.UserScheduler)
	if err != nil {
		return err
	}
	ctrlConn, err := connectAs(bus.UserController)
	if err != nil {
		return err
	}
	kubeletConns := make([]*bus.Conn, len(kubelets))
	for i, name := range kubelets {
		if kubeletConns[i], err = connectAs(bus.KubeletUser(name)); err != nil {
			return err
		}
	}
	var hollowConn *bus.Conn
	if *hollowNodes > 0 {
		if hollowConn, err = connectAs(bus.UserHollow); err != nil {
			return err
		}
	}

	g, gctx := newGroup(ctx)
	// up cannot run twice on one store, so after a kill -9 and restart it
	// takes its leases back at once instead of waiting out their TTL.
	host, _ := os.Hostname()
	if cc != nil {
		host = cc.nodeName // every server of a cluster campaigns under its own name
	}
	upHolder := "miniku-up@" + host
	// One cache per bucket for the apiserver, scheduler and controller, on
	// a connection of its own: each change is delivered, decoded and held
	// once in this process instead of three times.
	cacheConn, err := connectNamed(bus.UserAPIServer, "miniku-up-caches")
	if err != nil {
		return err
	}
	cacheLog := log.With("component", "caches")
	// They keep a history, so the apiserver serves watches from them.
	podsCache := bus.NewInformer(cacheConn, cacheConn.Pods, sharedCacheResync, cacheLog).WithHistory(bus.DefaultHistory)
	rsCache := bus.NewInformer(cacheConn, cacheConn.ReplicaSets, sharedCacheResync, cacheLog).WithHistory(bus.DefaultHistory)
	nodesCache := bus.NewInformer(cacheConn, cacheConn.Nodes, sharedCacheResync, cacheLog).WithHistory(bus.DefaultHistory)
	g.Go("pods cache", func() error { return podsCache.Run(gctx) })
	g.Go("replicasets cache", func() error { return rsCache.Run(gctx) })
	g.Go("nodes cache", func() error { return nodesCache.Run(gctx) })
	apiCfg.Pods, apiCfg.ReplicaSets, apiCfg.Nodes = podsCache, rsCache, nodesCache
	api, err := apiserver.New(apiCfg, conn)
	if err != nil {
		return err
	}
	g.Go("apiserver", func() error { return api.Run(gctx) })
	g.Go("nats users", func() error { return bus.WatchUsers(gctx, ns, natsCfg, usersReloadInterval) })
	g.Go("revoke deleted nodes", func() error {
		return bus.RevokeDeletedNodes(gctx, nodesCache, natsCfg.AuthDir, natsCfg.Kubelets, revokeInterval, log.With("component", "nats-users"))
	})
	g.Go("node roles", func() error {
		// up's own kubelets are a server's nodes; a separate kubelet
		// (an agent) has no role, as on k3s.
		return noderoles.Run(gctx, kubelets, nodesCache, registry.For(conn, nil).Nodes, revokeInterval, log.With("component", "node-roles"))
	})
	g.Go("store guard", func() error { return guard.Run(gctx, ns) })
	if cc != nil {
		g.Go("cluster replicas", func() error {
			return keepClusterReplicas(gctx, ns, conn, c.dataDir, cc, clusterCheckInterval, log.With("component", "cluster"))
		})
	}
	schedElector, err := lf.elector(ctx, leaseConnOf(bus.UserScheduler), "scheduler", upHolder, log)
	if err != nil {
		return err
	}
	sched, err := scheduler.New(scheduler.Config{Logger: log, Elector: schedElector, Pods: podsCache, Nodes: nodesCache}, schedConn)
	if err != nil {
		return err
	}
	g.Go("scheduler", func() error { return sched.Run(gctx) })
	ctlCfg := ctl.config(log)
	if ctlCfg.Elector, err = lf.elector(ctx, leaseConnOf(bus.UserController), "controller", upHolder, log); err != nil {
		return err
	}
	ctlCfg.Pods, ctlCfg.ReplicaSets, ctlCfg.Nodes = podsCache, rsCache, nodesCache
	ctrl, err := controller.New(ctlCfg, ctrlConn)
	if err != nil {
		return err
	}
	g.Go("controller", func() error { return ctrl.Run(gctx) })
	sas, err := serviceaccounts.New(serviceaccounts.Config{Logger: log}, ctrlConn)
	if err != nil {
		return err
	}
	g.Go("serviceaccounts", func() error { return sas.Run(gctx) })
	gc, err := garbagecollector.New(garbagecollector.Config{Logger: log, Pods: podsCache, ReplicaSets: rsCache}, ctrlConn)
	if err != nil {
		return err
	}
	g.Go("garbagecollector", func() error { return gc.Run(gctx) })

	imgOpts.Mirror, imgOpts.Logger = *mirror, log
	images, err := image.NewStore(filepath.Join(c.dataDir, "images"), imgOpts)
	if err != nil {
		return err
	}
	imageGC := &sharedImageGC{store: images}
	if err := stopStaleNodes(gctx, c.dataDir, kubelets, staleNodeGrace, log); err != nil {
		log.Error("could not stop the containers of nodes this up no longer runs; 'miniku down' stops them", "err", err)
	}
	for i, name := range kubelets {
		if err := startKubelet(gctx, g, kubeletConns[i], images, c.dataDir, name, kubelet.Config{HeartbeatInterval: *hb, RestartBackoff: bo.backoff(), ImagePullBackoff: bo.pullBackoff(), Node: info,
			DataDir: c.dataDir, Eviction: &evCfg, ImageGC: imageGC}, rc, log); err != nil {
			return err
		}
	}
	if *hollowNodes > 0 {
		prefix := kubelet.HollowNamePrefix
		if cc != nil {
			prefix = cc.nodeName + "-hollow-"
		}
		if err := startHollow(gctx, g, hollowConn, *hollowNodes, prefix, kubelet.Config{HeartbeatInterval: *hb, Logger: log}, podsCache); err != nil {
			return err
		}
	}
	dashboard := urlOf("http", *apiAddr)
	if dashboard == "" {
		dashboard = urlOf("https", apiCfg.HTTPSAddr)
	}
	log.Info("miniku is up", "api", urlOf("http", *apiAddr), "https", urlOf("https", apiCfg.HTTPSAddr), "ca", natsCA,
		"dashboard", dashboard+"/ui", "nats", "nats://"+*natsAddr, "nodes", *nodes, "dataDir", c.dataDir)
	err = g.Wait()
	logKeptContainers(c.dataDir, kubelets, log)
	return err
}

// checkStore is conn.CheckStore, retried on a cluster while the store
// times out: a server restarting into a cluster serves reads only once its
// JetStream has caught up with the others, and a kill of another server
// meanwhile leaves streams without a leader for a few seconds. Damage is
// not retried.
func checkStore(ctx context.Context, conn *bus.Conn, clustered bool, log *slog.Logger) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := conn.CheckStore(ctx, bus.DefaultCheckQuiet)
		transient := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoStreamResponse)
		if !clustered || !transient || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		log.Info("the store does not answer yet (the cluster is electing leaders or this server catching up); checking again", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// cliTarget is how the CLI on this host reaches up's apiserver, for
// <data-dir>/cli.yaml: HTTPS when served (trusting the data dir's CA when up
// signed the certificate), else plain HTTP, and a wildcard listen address
// dialled on loopback. Empty when the port is only known once bound.
func cliTarget(dataDir, apiAddr, httpsAddr, tlsCert string) (server, ca string) {
	scheme, addr := "http", apiAddr
	if httpsAddr != "" {
		scheme, addr = "https", httpsAddr
		if tlsCert == "" {
			ca = pki.CAPath(dataDir)
		}
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "0" || port == "" {
		return "", ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return scheme + "://" + net.JoinHostPort(host, port), ca
}

// logKeptContainers says, when up stops, that the containers of its
// nodes keep running (the next up adopts them) and how to stop them.
func logKeptContainers(dataDir string, nodes []string, log *slog.Logger) {
	n, err := runningContainers(dataDir, nodes)
	if err != nil {
		log.Warn("could not count the containers left running", "err", err)
	}
	if n > 0 {
		log.Info("containers keep running; the next 'miniku up' adopts them, 'miniku down' stops them",
			"containers", n, "stop", "miniku down --data-dir "+dataDir)
	}
}

// startNATS runs the embedded server, TLS only (natsTLS), and returns the
// CA file its clients trust.
// The guard it returns watches the store's disk: run it (guard.Run) for as
// long as the server, or a write that fails for lack of space leaves
// JetStream failing until the process restarts.
func startNATS(dataDir, addr string, kubelets []string, tlsCert, tlsKey string, sync *natsSync, cc *clusterConfig, log *slog.Logger) (*server.Server, bus.ServerConfig, *bus.StoreGuard, string, error) {
	cfg := bus.ServerConfig{Addr: addr, StoreDir: filepath.Join(dataDir, "nats"), Logger: log,
		AuthDir: authDir(dataDir), Kubelets: kubelets,
		SyncAlways: sync.always, SyncInterval: sync.interval}
	guard := bus.NewStoreGuard(bus.StoreGuardConfig{Dir: cfg.StoreDir, Reserve: bus.DefaultStoreReserve, Logger: log})
	cfg.OnWriteError = guard.WriteFailed
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, cfg, nil, "", fmt.Errorf("create data dir: %w", err)
	}
	var (
		ca  string
		err error
	)
	if cfg.TLSCert, cfg.TLSKey, ca, err = natsTLS(dataDir, addr, tlsCert, tlsKey); err != nil {
		return nil, cfg, nil, "", err
	}
	if cc != nil {
		st, err := readClusterState(dataDir)
		if err != nil {
			return nil, cfg, nil, "", fmt.Errorf("cluster state: %w", err)
		}
		cfg.Name, cfg.ClusterAddr, cfg.Routes = cc.nodeName, cc.clusterAddr, st.Routes
		if cfg.ClusterTLSCert, cfg.ClusterTLSKey, err = serverCert(dataDir, "route", cc.clusterAddr); err != nil {
			return nil, cfg, nil, "", err
		}
		cfg.ClusterTLSCA = pki.CAPath(dataDir)
	}
	ns, err := bus.StartServer(cfg)
	return ns, cfg, guard, ca, err
}

// sharedCacheResync is how often the caches miniku up shares re-announce
// every object to the components, as each component's own cache would.
const sharedCacheResync = 30 * time.Second

// clusterCheckInterval is how often a server of a cluster looks at the
// number of servers (to raise replicas) and records their routes.
const clusterCheckInterval = 2 * time.Second

// natsSync is --nats-sync: when JetStream fsyncs its files.
type natsSync struct {
	always   bool
	interval time.Duration
}

// defaultNATSSync bounds what a power loss can take back to about a second
// of acknowledged writes, for a few percent of the cost of an fsync per
// write, which limits each bucket to a few hundred writes a second here
// (README, Reliability). A killed process loses nothing either way.
const defaultNATSSync = "1s"

func syncFlag(fs *flag.FlagSet) *natsSync {
	s := &natsSync{}
	_ = s.Set(defaultNATSSync)
	fs.Var(s, "nats-sync", `when JetStream fsyncs: "always" (before acknowledging each write) or an interval such as 1s`)
	return s
}

func (s *natsSync) String() string {
	if s == nil {
		return ""
	}
	if s.always {
		return "always"
	}
	return s.interval.String()
}

func (s *natsSync) Set(v string) error {
	if v == "always" {
		*s = natsSync{always: true}
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 10*time.Millisecond || d > 10*time.Minute {
		return fmt.Errorf(`want "always" or an interval from 10ms to 10m, got %q`, v)
	}
	*s = natsSync{interval: d}
	return nil
}

// startKubelet runs a kubelet for node with cfg (NodeName and Logger are
// filled in here) and a runtime rooted in the node's data directory, with
// the node-level limits of rc.
// The kubelet holds its node directory's lock while it runs, so that
// `miniku down` refuses to stop containers a kubelet would restart, and two
// kubelets never run one node directory.
func startKubelet(ctx context.Context, g *group, conn *bus.Conn, images kubelet.ImagePuller, dataDir, node string, cfg kubelet.Config, rc mkrt.Config, log *slog.Logger) error {
	lock, err := lockNode(dataDir, node)
	if err != nil {
		return fmt.Errorf("kubelet %s: %w", node, err)
	}
	rt, err := mkrt.NewWithConfig(nodeContainersDir(dataDir, node), log.With("node", node), rc)
	if err != nil {
		lock.Release()
		return fmt.Errorf("kubelet %s: %w", node, err)
	}
	cfg.NodeName, cfg.Logger = node, log
	k, err := kubelet.New(cfg, conn, rt, images)
	if err != nil {
		_ = rt.Close()
		lock.Release()
		return err
	}
	if gc, ok := cfg.ImageGC.(*sharedImageGC); ok {
		gc.add(k)
	}
	g.Go("kubelet "+node, func() error {
		defer lock.Release()
		defer rt.Close()
		return k.Run(ctx)
	})
	return nil
}

type boFlags struct{ base, max, pull, pullMax *time.Duration }

// backoffFlags: the crash-loop and image pull backoffs (tests use short ones).
func backoffFlags(fs *flag.FlagSet) boFlags {
	return boFlags{
		base:    fs.Duration("restart-backoff", kubelet.DefaultRestartBackoff, "delay before the second restart in a row of a crashing container; doubles each time"),
		max:     fs.Duration("restart-backoff-max", kubelet.DefaultRestartBackoffMax, "cap of the restart backoff (reset after a container ran twice this long)"),
		pull:    fs.Duration("image-pull-backoff", kubelet.DefaultImagePullBackoff, "delay before retrying a failed image pull (the pod stays Pending, ImagePullBackOff); doubles each time"),
		pullMax: fs.Duration("image-pull-backoff-max", kubelet.DefaultImagePullBackoffMax, "cap of the image pull backoff"),
	}
}

func (f boFlags) backoff() kubelet.Backoff { return kubelet.Backoff{Base: *f.base, Max: *f.max} }

func (f boFlags) pullBackoff() kubelet.Backoff {
	return kubelet.Backoff{Base: *f.pull, Max: *f.pullMax}
}

type ctlFlags struct {
	grace, eviction *time.Duration
}

func controllerFlags(fs *flag.FlagSet) ctlFlags {
	return ctlFlags{
		grace:    fs.Duration("node-grace", controller.DefaultNodeGrace, "heartbeat age after which a node is NotReady"),
		eviction: fs.Duration("eviction-timeout", controller.DefaultEvictionTimeout, "time NotReady after which a node's pods are failed and replaced"),
	}
}

func (f ctlFlags) config(log *slog.Logger) controller.Config {
	return controller.Config{Logger: log, NodeGrace: *f.grace, EvictionTimeout: *f.eviction}
}

func cmdNATS(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("nats", flag.ContinueOnError)
	var c common
	c.register(fs, true)
	addr := fs.String("addr", "127.0.0.1:4222", "listen address")
	kubelets := fs.String("kubelets", "", "comma-separated node names whose kubelet users to create (kubelet-<node>.json in <data-dir>/nats/auth)")
	tlsCert := fs.String("tls-cert", "", "PEM certificate clients must use TLS with (default: one signed by the CA in <data-dir>/tls)")
	tlsKey := fs.String("tls-key", "", "PEM private key of --tls-cert")
	sync := syncFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := c.checkStart(nil, "", listenAddr{"--addr", *addr}); err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	log, stopMetrics, err := c.observe(stderr)
	if err != nil {
		return err
	}
	defer stopMetrics()
	storeLock, err := lockStore(c.dataDir)
	if err != nil {
		return err
	}
	defer storeLock.Release()
	ns, cfg, guard, ca, err := startNATS(c.dataDir, *addr, splitNodes(*kubelets), *tlsCert, *tlsKey, sync, nil, log)
	if err != nil {
		return err
	}
	defer metrics.SetStore(guard)()
	log.Info("nats is up", "url", ns.ClientURL(), "store", filepath.Join(c.dataDir, "nats"), "credentials", authDir(c.dataDir), "ca", ca)
	g, gctx := newGroup(ctx)
	g.Go("nats users", func() error { return bus.WatchUsers(gctx, ns, cfg, usersReloadInterval) })
	g.Go("store guard", func() error { return guard.Run(gctx, ns) })
	err = g.Wait()
	ns.Shutdown()
	ns.WaitForShutdown()
	return err
}

// single runs one service built from a connection.
// single runs one component on its own connection. build may ask for a
// lease connection: leases get their own, so that a renewal's round trip
// never waits behind the component's traffic (its watches deliver every
// pod change on its connection, in order).
func single(ctx context.Context, name string, c *common, stderr io.Writer, build func(conn *bus.Conn, leaseConn func() (*bus.Conn, error), log *slog.Logger) (interface{ Run(context.Context) error }, error)) error {
	log, stopMetrics, err := c.observe(stderr)
	if err != nil {
		return err
	}
	defer stopMetrics()
	conn, err := c.connect(ctx, "miniku-"+name, log)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	defer conn.Close()
	var extra *bus.Conn
	defer func() {
		if extra != nil {
			extra.Close()
		}
	}()
	leaseConn := func() (*bus.Conn, error) {
		var err error
		extra, err = c.connect(ctx, "miniku-"+name+"-lease", log)
		return extra, err
	}
	svc, err := build(conn, leaseConn, log)
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}

func cmdAPIServer(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("apiserver", flag.ContinueOnError)
	c := common{role: bus.UserAPIServer}
	c.register(fs, true)
	c.registerNATS(fs)
	addr := fs.String("api-addr", "127.0.0.1:8080", "listen address")
	sec := registerAPIFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := c.checkStart(&sec, *addr); err != nil {
		return fmt.Errorf("apiserver: %w", err)
	}
	return single(ctx, "apiserver", &c, stderr, func(conn *bus.Conn, _ func() (*bus.Conn, error), log *slog.Logger) (interface{ Run(context.Context) error }, error) {
		cfg, err := sec.config(c.dataDir, *addr, log)
		if err != nil {
			return nil, err
		}
		return apiserver.New(cfg, conn)
	})
}

func cmdScheduler(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("scheduler", flag.ContinueOnError)
	c := common{role: bus.UserScheduler}
	c.register(fs, true)
	c.registerNATS(fs)
	lf := leaseFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	return single(ctx, "scheduler", &c, stderr, func(conn *bus.Conn, leaseConn func() (*bus.Conn, error), log *slog.Logger) (interface{ Run(context.Context) error }, error) {
		el, err := lf.elector(ctx, leaseConn, "scheduler", "", log)
		if err != nil {
			return nil, err
		}
		return scheduler.New(scheduler.Config{Logger: log, Elector: el}, conn)
	})
}

func cmdController(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("controller", flag.ContinueOnError)
	c := common{role: bus.UserController}
	c.register(fs, true)
	c.registerNATS(fs)
	ctl := controllerFlags(fs)
	lf := leaseFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	return single(ctx, "controller", &c, stderr, func(conn *bus.Conn, leaseConn func() (*bus.Conn, error), log *slog.Logger) (interface{ Run(context.Context) error }, error) {
		cfg := ctl.config(log)
		var err error
		if cfg.Elector, err = lf.elector(ctx, leaseConn, "controller", "", log); err != nil {
			return nil, err
		}
		ctrl, err := controller.New(cfg, conn)
		if err != nil {
			return nil, err
		}
		sas, err := serviceaccounts.New(serviceaccounts.Config{Logger: log}, conn)
		if err != nil {
			return nil, err
		}
		gc, err := garbagecollector.New(garbagecollector.Config{Logger: log}, conn)
		if err != nil {
			return nil, err
		}
		return controllers{{"controller", ctrl}, {"serviceaccounts", sas}, {"garbagecollector", gc}}, nil
	})
}

func cmdKubelet(ctx context.Context, args []string, stderr io.Writer) error {
	if isHollow(args) {
		return cmdHollowKubelet(ctx, args, stderr)
	}
	fs := flag.NewFlagSet("kubelet", flag.ContinueOnError)
	var c common
	c.register(fs, true)
	c.registerNATS(fs)
	node := fs.String("node-name", "", "this node's name (required; a DNS label)")
	mirror := fs.String("registry-mirror", "", "registry to pull docker.io images from")
	hb := fs.Duration("heartbeat-interval", kubelet.DefaultHeartbeatInterval, "heartbeat interval")
	bo := backoffFlags(fs)
	nf := nodeFlags(fs)
	rf := runtimeFlags(fs)
	ef := evictionFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if strings.TrimSpace(*node) == "" {
		return errors.New("kubelet: --node-name is required")
	}
	info, err := nf.info()
	if err != nil {
		return err
	}
	rc, err := rf.config(info)
	if err != nil {
		return err
	}
	evCfg, imgOpts, err := ef.config()
	if err != nil {
		return err
	}
	c.role = bus.KubeletUser(*node)
	log, stopMetrics, err := c.observe(stderr)
	if err != nil {
		return err
	}
	defer stopMetrics()
	conn, err := c.connect(ctx, "miniku-kubelet-"+*node, log)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	defer conn.Close()
	imgOpts.Mirror, imgOpts.Logger = *mirror, log
	images, err := image.NewStore(filepath.Join(c.dataDir, "images"), imgOpts)
	if err != nil {
		return err
	}
	g, gctx := newGroup(ctx)
	if err := startKubelet(gctx, g, conn, images, c.dataDir, *node, kubelet.Config{HeartbeatInterval: *hb, RestartBackoff: bo.backoff(), ImagePullBackoff: bo.pullBackoff(), Node: info,
		DataDir: c.dataDir, Eviction: &evCfg}, rc, log); err != nil {
		return err
	}
	return g.Wait()
}
