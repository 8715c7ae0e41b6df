package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/bcrypt"

	"github.com/miniku/miniku/schemas"
)

// NATS users. Every component logs in as its own user and gets only the
// subjects its role needs (see Permissions); the embedded server knows no
// anonymous user.
const (
	UserAPIServer  = "apiserver"
	UserScheduler  = string(schemas.RoleScheduler)
	UserController = "controller"
	// UserViewer is read-only: for people watching with the nats CLI.
	UserViewer = "viewer"
	// UserHollow is the one connection of a process's hollow nodes
	// (simulated kubelets, services/kubelet/hollow.go). It may write any
	// node and serve any node's logs: weaker isolation than one user per
	// node, which thousands of connections would cost.
	UserHollow = "hollow"
	// Kubelets are "kubelet-<node>": one user per node, so one node's
	// credentials cannot speak for another node.
	kubeletPrefix = "kubelet-"
)

// KubeletUser is the NATS user of node's kubelet.
func KubeletUser(node string) string { return kubeletPrefix + node }

// Credentials are one NATS user's login, stored as JSON in
// <auth dir>/<user>.json with mode 0600.
type Credentials struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// CredentialsPath is where user's credentials live under dir.
func CredentialsPath(dir, user string) string { return filepath.Join(dir, user+".json") }

// EnsureCredentials returns user's credentials from dir, creating them with
// a random 256-bit password if missing. Existing files are kept so that
// components started earlier (or on other hosts, with a copied file) keep
// working across server restarts.
func EnsureCredentials(dir, user string) (Credentials, error) {
	if err := validUser(user); err != nil {
		return Credentials{}, err
	}
	path := CredentialsPath(dir, user)
	c, err := ReadCredentials(path)
	if err == nil {
		if c.User != user {
			return Credentials{}, fmt.Errorf("credentials %s: user %q, want %q", path, c.User, user)
		}
		return c, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return Credentials{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Credentials{}, fmt.Errorf("create credentials dir: %w", err)
	}
	c = Credentials{User: user, Password: RandomSecret()}
	data, err := json.Marshal(c)
	if err != nil {
		return Credentials{}, err
	}
	if err := WriteFileAtomic(path, append(data, '\n'), 0o600); err != nil {
		return Credentials{}, fmt.Errorf("write credentials for %s: %w", user, err)
	}
	return c, nil
}

// ReadCredentials reads a credentials file. Like ssh with a private key, it
// refuses a file other local users can read: the password would be theirs.
func ReadCredentials(path string) (Credentials, error) {
	var c Credentials
	if err := CheckPrivate(path); err != nil {
		return c, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("credentials %s: %w", path, err)
	}
	if c.User == "" || c.Password == "" {
		return c, fmt.Errorf("credentials %s: user and password are required", path)
	}
	return c, nil
}

// CheckPrivate fails if path is readable or writable by group or others.
func CheckPrivate(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s has mode %v: other users could read the secret in it; chmod 600 it", path, fi.Mode().Perm())
	}
	return nil
}

// RandomSecret is 256 random bits, hex-encoded.
func RandomSecret() string {
	b := make([]byte, 32)
	// crypto/rand.Read never fails (it panics if the kernel cannot give
	// randomness), so there is no weak fallback to worry about.
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// WriteFileAtomic writes data to path with perm via a temp file and rename,
// so a crash never leaves a half-written secret behind.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func validUser(user string) error {
	if user == "" || strings.ContainsAny(user, " \t\r\n/\\.*>") {
		return fmt.Errorf("invalid NATS user name %q", user)
	}
	return nil
}

// serverUsers builds the server's user list: the control plane, the viewer,
// a kubelet for each of kubelets, and any kubelet-*.json already in dir
// (kubelets added with an earlier start, or by hand with EnsureCredentials).
//
// The server keeps only bcrypt hashes. At the minimum cost: the passwords
// are 256 random bits, so no cost factor makes guessing them any harder,
// and a login costs ~3 ms here (0.8 ms without users) rather than ~50 ms.
func serverUsers(dir string, kubelets []string) ([]*server.User, error) {
	names := map[string]bool{UserAPIServer: true, UserScheduler: true, UserController: true, UserViewer: true, UserHollow: true}
	for _, n := range kubelets {
		names[KubeletUser(n)] = true
	}
	existing, _ := filepath.Glob(filepath.Join(dir, kubeletPrefix+"*.json"))
	for _, p := range existing {
		names[strings.TrimSuffix(filepath.Base(p), ".json")] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	users := make([]*server.User, 0, len(sorted))
	for _, name := range sorted {
		c, err := EnsureCredentials(dir, name)
		if err != nil {
			return nil, err
		}
		perms, err := Permissions(name)
		if err != nil {
			return nil, err
		}
		hash, err := bcrypt.GenerateFromPassword([]byte(c.Password), bcrypt.MinCost)
		if err != nil {
			return nil, fmt.Errorf("hash password of %s: %w", name, err)
		}
		users = append(users, &server.User{Username: c.User, Password: string(hash), Permissions: perms})
	}
	return users, nil
}

// Buckets and streams whose JetStream API the components use, from
// schemas.Stores. The private buckets (secrets) are not among them: only
// the apiserver's user may use them.
var (
	allBuckets     = schemas.StoreBuckets(func(s schemas.Store) bool { return !s.Private })
	allStreams     = append(kvStreams(allBuckets...), StreamEvents)
	privateBuckets = schemas.StoreBuckets(func(s schemas.Store) bool { return s.Private })
	// nodeStreams are the streams a kubelet may read: not the pods
	// bucket's (nodepods.go).
	nodeStreams  = slices.DeleteFunc(slices.Clone(allStreams), func(s string) bool { return s == "KV_"+BucketPods })
	eventSubject = SubjEventPrefix + ".>"
)

// writableBy are the buckets role may write besides the apiserver and the
// controller.
func writableBy(role schemas.Role) []string {
	return schemas.StoreBuckets(func(s schemas.Store) bool { return s.Writes(role) })
}

// secretsDeny is what every user but the apiserver's is denied, whatever
// else it is allowed, for each private bucket (secrets): the bucket's
// subjects (puts, deletes, and the raw writes a "$KV.>" subscription
// would see) and every JetStream API call naming its stream — info, gets,
// consumers, snapshots, updates that could re-publish it — as
// $JS.API.<a>.<b>.KV_secrets[.…] or $JS.API.<a>.<b>.<c>.KV_secrets[.…]. A
// deny wins over any allow, so a wildcard allow (the viewer's
// "$JS.API.DIRECT.GET.>") cannot reach it.
func secretsDeny() (pub, sub []string) {
	for _, b := range privateBuckets {
		st := "KV_" + b
		kv := "$KV." + b + ".>"
		pub = append(pub, kv,
			"$JS.API.*.*."+st, "$JS.API.*.*."+st+".>",
			"$JS.API.*.*.*."+st, "$JS.API.*.*.*."+st+".>",
			"$JS.ACK."+st+".>",
		)
		sub = append(sub, kv)
	}
	return pub, sub
}

// denySecrets adds secretsDeny to p.
func denySecrets(p *server.Permissions) *server.Permissions {
	pub, sub := secretsDeny()
	p.Publish.Deny = append(p.Publish.Deny, pub...)
	p.Subscribe.Deny = append(p.Subscribe.Deny, sub...)
	return p
}

func kvStreams(buckets ...string) []string {
	out := make([]string, len(buckets))
	for i, b := range buckets {
		out[i] = "KV_" + b
	}
	return out
}

// jsRead is the JetStream API a client needs to bind to, read and watch
// streams (KV buckets are streams): stream info, direct and message gets,
// ephemeral (ordered) consumers, their flow control.
func jsRead(streams []string) []string {
	out := []string{"$JS.API.INFO", "$JS.FC.>"}
	for _, s := range streams {
		out = append(out,
			"$JS.API.STREAM.INFO."+s,
			"$JS.API.STREAM.MSG.GET."+s,
			"$JS.API.DIRECT.GET."+s, "$JS.API.DIRECT.GET."+s+".>",
			"$JS.API.CONSUMER.CREATE."+s, "$JS.API.CONSUMER.CREATE."+s+".>",
			"$JS.API.CONSUMER.INFO."+s+".*",
			"$JS.API.CONSUMER.DELETE."+s+".*",
			"$JS.API.CONSUMER.MSG.NEXT."+s+".*",
			"$JS.ACK."+s+".>",
		)
	}
	return out
}

// jsAdmin lets the control plane create and update (never delete or purge)
// the MiniKu streams, which every control-plane component does at start.
func jsAdmin(streams []string) []string {
	var out []string
	for _, s := range streams {
		out = append(out, "$JS.API.STREAM.CREATE."+s, "$JS.API.STREAM.UPDATE."+s)
	}
	return out
}

// jsCompact lets the control plane purge the object buckets' streams
// (the private ones too if private): compaction removes old delete
// markers, and a repair the unreadable message of a key (compact.go,
// repair.go).
func jsCompact(private bool) []string {
	buckets := schemas.StoreBuckets(func(s schemas.Store) bool { return s.Objects && (!s.Private || private) })
	var out []string
	for _, b := range buckets {
		out = append(out, "$JS.API.STREAM.PURGE.KV_"+b)
	}
	return out
}

func kvWrite(buckets ...string) []string {
	out := make([]string, len(buckets))
	for i, b := range buckets {
		out[i] = "$KV." + b + ".>"
	}
	return out
}

// InboxPrefix is the reply-subject prefix of user's connection. Each user
// may subscribe only below its own prefix, so nobody can read replies
// (KV gets, JetStream acks) meant for another component.
func InboxPrefix(user string) string { return "_INBOX." + user }

// Permissions are user's NATS subject permissions. What NATS cannot check
// (a pod's key does not carry its node) the node API checks: a kubelet
// writes pods only through it (nodeapi.go).
func Permissions(user string) (*server.Permissions, error) {
	inbox := InboxPrefix(user) + ".>"
	// Replying to a request received on an allowed subscription.
	resp := &server.ResponsePermission{MaxMsgs: 1}
	mk := func(pub, sub []string) *server.Permissions {
		return &server.Permissions{
			// Its own inbox too: a requester acks a streamed reply on
			// <inbox>.ctl (log streams).
			Publish:   &server.SubjectPermission{Allow: append(pub, inbox)},
			Subscribe: &server.SubjectPermission{Allow: append(sub, inbox)},
			Response:  resp,
		}
	}
	cat := func(lists ...[]string) []string {
		var out []string
		for _, l := range lists {
			out = append(out, l...)
		}
		return out
	}
	hints := []string{"pod.>", "replicaset.>", "node.>"}
	switch {
	case user == UserAPIServer, user == UserController:
		// The controller's rights are the apiserver's but for the
		// secrets bucket, which only the apiserver serves (it reads
		// and writes it, its caches too, for every other client).
		streams, buckets := allStreams, allBuckets
		if user == UserAPIServer {
			streams = append(slices.Clone(streams), kvStreams(privateBuckets...)...)
			buckets = append(slices.Clone(buckets), privateBuckets...)
		}
		p := mk(
			// kubelet.<node>.logs, kubelet.<node>.exec: log and exec
			// requests (apiserver to kubelet).
			cat(jsRead(streams), jsAdmin(streams), jsCompact(user == UserAPIServer), kvWrite(buckets...), hints, []string{eventSubject, "kubelet.*.logs", "kubelet.*.exec",
				// The nodes' views of their pods (nodepods.go).
				SubjNodePods + ".*"}),
			// nodeapi.<node>.*: kubelets' writes (nodeapi.go), served by
			// the apiserver.
			cat(hints, []string{eventSubject, nodeAPIPrefix + ".*.*"}),
		)
		if user == UserController {
			denySecrets(p)
		}
		return p, nil
	case user == UserScheduler:
		return denySecrets(mk(
			cat(jsRead(allStreams), jsAdmin(allStreams), kvWrite(writableBy(schemas.RoleScheduler)...),
				[]string{SubjPodAssigned + ".>", eventSubject}),
			cat(hints, []string{eventSubject}),
		)), nil
	case user == UserViewer:
		// Everything stored and every hint readable, nothing writable: no
		// $KV.> publish, no stream create/update/delete/purge, no events.
		// Consumers only on MiniKu's streams and never by the legacy
		// DURABLE.CREATE subject; NATS cannot tell an ephemeral consumer
		// from a durable one on the subject nats.go uses for both
		// (CONSUMER.CREATE.<stream>.<name>[.<filter>]), so every stream
		// bounds how long any consumer outlives its last use
		// (consumerLimits). Its subscriptions: the hints, the events,
		// KV writes as they happen, and its own inbox only, not other
		// components' replies (exec output, stdin).
		pub := []string{
			"$JS.API.INFO", "$JS.FC.>",
			"$JS.API.STREAM.INFO.*", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST",
			"$JS.API.STREAM.MSG.GET.*", "$JS.API.DIRECT.GET.>",
			"$JS.API.CONSUMER.INFO.>", "$JS.API.CONSUMER.NAMES.*",
			"$JS.API.CONSUMER.LIST.*", "$JS.API.CONSUMER.MSG.NEXT.>", "$JS.ACK.>",
		}
		for _, st := range allStreams {
			pub = append(pub, "$JS.API.CONSUMER.CREATE."+st, "$JS.API.CONSUMER.CREATE."+st+".>")
		}
		p := mk(pub, cat(hints, []string{eventSubject, "$KV.>"}))
		p.Publish.Deny = []string{"$JS.API.CONSUMER.DURABLE.>"}
		return denySecrets(p), nil
	case user == UserHollow:
		// A kubelet's permissions with every node name a wildcard; only
		// the inbox is the hollow user's own.
		p, err := Permissions(KubeletUser("*"))
		if err != nil {
			return nil, err
		}
		for _, l := range [][]string{p.Publish.Allow, p.Subscribe.Allow} {
			for i, s := range l {
				if s == InboxPrefix(KubeletUser("*"))+".>" {
					l[i] = InboxPrefix(user) + ".>"
				}
			}
		}
		return p, nil
	case strings.HasPrefix(user, kubeletPrefix) && len(user) > len(kubeletPrefix):
		node := strings.TrimPrefix(user, kubeletPrefix)
		p := mk(
			// Every stream but the pods bucket's: its own pods come from
			// the node API (nodeapi.<node>.pods, nodepods.<node>:
			// nodepods.go), as Kubernetes' Node authorizer lets a kubelet
			// read only what its node runs.
			cat(jsRead(nodeStreams),
				[]string{
					// Its own Node object. Pods it changes through the
					// node API (status of its own pods, removal of its
					// terminated ones), which also records its events:
					// no $KV.pods.> and no event.> (Kubernetes'
					// NodeRestriction).
					"$KV." + BucketNodes + "." + node,
					NodeAPISubject(node, "*"),
					NodeSubject(SubjNodeHeartbeat, node),
					SubjNodeReady, SubjNodeNotReady,
					"pod.>", // but not pod.assigned.> (denied below)
				}),
			[]string{
				// Its own pods' changes, and the scheduler's hint that
				// one was bound here; no other pod's name or hint.
				NodeSubject(SubjNodePods, node),
				NodeSubject(SubjPodAssigned, node),
				"node.>",
				// Log requests for this node, and the requester's acks
				// (<reply>.ctl) of the stream it sends back; the reply
				// carries the node (StreamInbox).
				"kubelet." + node + ".logs",
				StreamInbox(InboxPrefix(UserAPIServer)+".*", node) + ".ctl",
				// Exec requests, and the stdin (<reply>.stdin) and
				// terminal sizes (<reply>.resize) of the command they run.
				"kubelet." + node + ".exec",
				StreamInbox(InboxPrefix(UserAPIServer)+".*", node) + ".stdin",
				StreamInbox(InboxPrefix(UserAPIServer)+".*", node) + ".resize",
			},
		)
		p.Publish.Deny = []string{SubjPodAssigned + ".>"}
		denySecrets(p)
		// A log stream is many replies to one request, for as long as
		// someone follows it; it may reply only to requests it received.
		p.Response = &server.ResponsePermission{MaxMsgs: 1 << 30, Expires: 24 * time.Hour}
		return p, nil
	}
	return nil, fmt.Errorf("unknown NATS user %q", user)
}

// IsLoopback reports whether host (an IP or "localhost") reaches only this
// machine. An empty host means every interface, so it is not loopback.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// configureSecurity adds users and TLS to the server options. A server
// reachable from other hosts must require a login.
func configureSecurity(opts *server.Options, cfg ServerConfig) error {
	if cfg.AuthDir == "" && !IsLoopback(opts.Host) {
		return fmt.Errorf("nats on %s without authentication: only a loopback address may run without users", cfg.Addr)
	}
	if cfg.AuthDir != "" {
		users, err := serverUsers(cfg.AuthDir, cfg.Kubelets)
		if err != nil {
			return fmt.Errorf("nats users: %w", err)
		}
		opts.Users = users
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return errors.New("nats TLS needs both a certificate and a key")
	}
	if cfg.TLSCert != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey})
		if err != nil {
			return fmt.Errorf("nats TLS: %w", err)
		}
		opts.TLSConfig = tc
		opts.TLS = true
		opts.TLSTimeout = 2
	}
	return nil
}

func (o Options) securityOptions() []nats.Option {
	var opts []nats.Option
	if o.User != "" {
		opts = append(opts, nats.UserInfo(o.User, o.Password), nats.CustomInboxPrefix(InboxPrefix(o.User)),
			// Keep trying after "authorization violation": a kubelet
			// whose user the server has not loaded yet (WatchUsers)
			// must not give up, like on any other outage.
			nats.IgnoreAuthErrorAbort())
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	return opts
}

// keyValue creates or updates a bucket, or with Options.Bind only looks it
// up (ErrBucketNotFound until the control plane has created it; the caller
// retries).
func (c *Conn) keyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	if c.bind {
		return c.js.KeyValue(ctx, cfg.Bucket)
	}
	cfg.Replicas = c.keptReplicas(ctx, "KV_"+cfg.Bucket, cfg.Replicas)
	return c.js.CreateOrUpdateKeyValue(ctx, cfg)
}

// keptReplicas is want, or the stream's replicas when it has more: they
// are the cluster's, and a component started with a default must never
// shrink them (an extra scheduler started without --replicas turned every
// stream of a three-server cluster to R1). Lowering them is the cluster's
// own decision, when a server leaves.
func (c *Conn) keptReplicas(ctx context.Context, stream string, want int) int {
	s, err := c.js.Stream(ctx, stream)
	if err != nil {
		return want // a new stream (or the write will say what is wrong)
	}
	return max(want, s.CachedInfo().Config.Replicas)
}

// stream is keyValue for plain streams.
func (c *Conn) stream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	if c.bind {
		return c.js.Stream(ctx, cfg.Name)
	}
	cfg.Replicas = c.keptReplicas(ctx, cfg.Name, cfg.Replicas)
	return c.js.CreateOrUpdateStream(ctx, cfg)
}

// started keeps the options of servers with users, for WatchUsers.
var started sync.Map // *server.Server -> *server.Options

func rememberOptions(ns *server.Server, opts *server.Options, cfg ServerConfig) {
	if cfg.AuthDir != "" {
		started.Store(ns, opts.Clone())
	}
}

// WatchUsers admits kubelets added while the server runs: every interval
// it looks for new kubelet-*.json files in cfg.AuthDir (written by
// `miniku kubelet` on this host, or copied in) and reloads the server's
// users. It returns when ctx ends.
func WatchUsers(ctx context.Context, ns *server.Server, cfg ServerConfig, every time.Duration) error {
	v, ok := started.Load(ns)
	if !ok {
		return errors.New("watch nats users: server was not started by StartServer with an AuthDir")
	}
	defer started.Delete(ns)
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	kubeletFiles := func() []string {
		files, _ := filepath.Glob(filepath.Join(cfg.AuthDir, kubeletPrefix+"*.json"))
		return files // sorted by Glob
	}
	last := kubeletFiles()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		cur := kubeletFiles()
		if slices.Equal(cur, last) {
			continue
		}
		users, err := serverUsers(cfg.AuthDir, cfg.Kubelets)
		if err != nil {
			log.Warn("reload nats users", "err", err)
			continue
		}
		opts := v.(*server.Options).Clone()
		opts.Users = users
		if a, ok := ns.Addr().(*net.TCPAddr); ok {
			opts.Port = a.Port // a random port (0) must not look like a change
		}
		if err := ns.ReloadOptions(opts); err != nil {
			log.Warn("reload nats users", "err", err)
			continue
		}
		last = cur
		log.Info("nats users reloaded", "users", len(users))
	}
}
