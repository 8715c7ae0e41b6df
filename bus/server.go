package bus

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerConfig configures the embedded NATS server.
type ServerConfig struct {
	// Addr is host:port to listen on; port 0 picks a free one (tests).
	Addr string
	// StoreDir holds JetStream's file store: the cluster state.
	StoreDir string
	Logger   *slog.Logger
	// AuthDir holds the users' credentials (see auth.go). When set, every
	// client must log in and gets its role's permissions. Empty means no
	// authentication, which only a loopback address may use (bus tests).
	AuthDir string
	// Kubelets are nodes whose kubelet users are created at start.
	Kubelets []string
	// TLSCert and TLSKey make clients (other than in-process ones) use TLS.
	TLSCert, TLSKey string
	// SyncAlways makes JetStream fsync every write before acknowledging it,
	// so a power loss cannot take back a write a client was told succeeded,
	// at 1-2 ms a write, one write at a time per bucket. Otherwise the files
	// are fsynced every SyncInterval (0: nats-server's 2 minutes): a killed
	// process loses nothing, since every write reaches the kernel before it
	// is acknowledged, but a power loss takes back up to SyncInterval of
	// writes. See README, Reliability.
	SyncAlways   bool
	SyncInterval time.Duration
	// OnWriteError, when set, is called with each log line of the server
	// that reports a failed store write (StoreGuard.WriteFailed).
	OnWriteError func(msg string)

	// Name is the server's name, unique in a cluster (JetStream's
	// placement and raft groups go by it); empty: "miniku".
	Name string
	// ClusterAddr, when set, is host:port of the route listener (port 0
	// picks a free one): the server is then one of a NATS cluster named
	// ClusterName ("miniku" when empty), meeting the others through
	// Routes (host:port of their route listeners; the cluster's gossip
	// tells it of the rest).
	ClusterAddr string
	ClusterName string
	Routes      []string
	// ClusterTLSCert, ClusterTLSKey and ClusterTLSCA make routes TLS both
	// ways: the route listener refuses a server without a certificate
	// signed by ClusterTLSCA, and this server checks the others' too.
	ClusterTLSCert, ClusterTLSKey, ClusterTLSCA string
}

// StartServer runs an embedded nats-server with JetStream and waits until it
// accepts connections. The caller owns it: Shutdown then WaitForShutdown.
// MaxPayload is the largest message, hence KV value, the server takes:
// a ConfigMap or Secret may hold 1 MiB of data (as in Kubernetes) plus
// up to 256 KiB of annotations, other metadata and encryption's few
// bytes; NATS' default of 1 MiB would refuse it. (etcd's request limit,
// which bounds Kubernetes' objects, is 1.5 MiB.)
const MaxPayload = 2 << 20

func StartServer(cfg ServerConfig) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("nats listen address %q: %w", cfg.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("nats listen port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	name := cfg.Name
	if name == "" {
		name = "miniku"
	}
	opts := &server.Options{
		ServerName:   name,
		Host:         host,
		Port:         port,
		JetStream:    true,
		StoreDir:     cfg.StoreDir,
		SyncAlways:   cfg.SyncAlways,
		SyncInterval: cfg.SyncInterval,
		// The embedding process owns signals; nats-server must not exit it.
		NoSigs:     true,
		MaxPayload: MaxPayload,
	}
	if err := configureCluster(opts, cfg); err != nil {
		return nil, err
	}
	if err := configureSecurity(opts, cfg); err != nil {
		return nil, err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("create nats server: %w", err)
	}
	rememberOptions(ns, opts, cfg)
	if cfg.Logger != nil || cfg.OnWriteError != nil {
		l := cfg.Logger
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		ns.SetLoggerV2(&slogAdapter{l: l.With("component", "nats"), onWriteError: cfg.OnWriteError}, false, false, false)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("nats server on %s not ready after 10s", cfg.Addr)
	}
	return ns, nil
}

// slogAdapter sends nats-server's logs to slog, and store write failures
// to onWriteError.
type slogAdapter struct {
	l            *slog.Logger
	onWriteError func(string)
}

func (a *slogAdapter) Noticef(format string, v ...any) { a.l.Info(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(a.note(format, v)) }
func (a *slogAdapter) Fatalf(format string, v ...any)  { a.l.Error(a.note(format, v)) }
func (a *slogAdapter) Errorf(format string, v ...any)  { a.l.Error(a.note(format, v)) }

func (a *slogAdapter) note(format string, v []any) string {
	msg := fmt.Sprintf(format, v...)
	if a.onWriteError != nil && isStoreWriteError(msg) {
		a.onWriteError(msg)
	}
	return msg
}
func (a *slogAdapter) Debugf(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Tracef(format string, v ...any) {}

var _ server.Logger = (*slogAdapter)(nil)

// configureCluster sets the route listener and the routes of a server
// that is one of a cluster.
func configureCluster(opts *server.Options, cfg ServerConfig) error {
	if cfg.ClusterAddr == "" {
		if len(cfg.Routes) > 0 {
			return fmt.Errorf("nats routes %v without a cluster address to listen on", cfg.Routes)
		}
		return nil
	}
	host, portStr, err := net.SplitHostPort(cfg.ClusterAddr)
	if err != nil {
		return fmt.Errorf("nats cluster address %q: %w", cfg.ClusterAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("nats cluster port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts.Cluster.Name = cfg.ClusterName
	if opts.Cluster.Name == "" {
		opts.Cluster.Name = "miniku"
	}
	opts.Cluster.Host = host
	opts.Cluster.Port = port
	for _, r := range cfg.Routes {
		if _, _, err := net.SplitHostPort(r); err != nil {
			return fmt.Errorf("nats route %q: %w", r, err)
		}
		opts.Routes = append(opts.Routes, &url.URL{Scheme: "nats-route", Host: r})
	}
	if cfg.ClusterTLSCert != "" || cfg.ClusterTLSKey != "" || cfg.ClusterTLSCA != "" {
		if cfg.ClusterTLSCert == "" || cfg.ClusterTLSKey == "" || cfg.ClusterTLSCA == "" {
			return errors.New("nats route TLS needs a certificate, its key and the CA")
		}
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cfg.ClusterTLSCert, KeyFile: cfg.ClusterTLSKey, CaFile: cfg.ClusterTLSCA, Verify: true})
		if err != nil {
			return fmt.Errorf("nats route TLS: %w", err)
		}
		// A server dials routes too: it checks the others by the same CA
		// (nats-server's config file does the same for cluster TLS).
		tc.RootCAs = tc.ClientCAs
		opts.Cluster.TLSConfig = tc
		opts.Cluster.TLSTimeout = 2
	}
	return nil
}
