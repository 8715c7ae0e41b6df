//go:build linux

package cmd

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/encrypt"
	"github.com/miniku/miniku/bus/pki"
)

// Several hosts, as k3s grows: the first server is `up --cluster-init`,
// which makes the cluster's CA and join token; every other host is `up
// --join https://FIRST:9345 --token T`. A joining host fetches the CA
// without trusting it, checks it against the token's hash (the token pins
// the CA, so the secret goes only to the real server), then presents the
// secret and receives what a server of the cluster needs: the CA (key
// too: every server signs its own serving certificates, as k3s servers
// share theirs), the API's token, the secrets encryption key, the NATS
// users' credentials (its own kubelet user made for it) and the routes.
// Its embedded NATS server then joins the others' by TLS routes.
//
// The join is served on a listener of its own (--join-addr, port 9345 as
// RKE2's supervisor), not on the API's: a clustered JetStream elects no
// leader with a single server, so the first server's API cannot serve
// before a second server has joined through this listener.

const (
	// DefaultClusterPort is NATS's route port, DefaultJoinPort RKE2's.
	DefaultClusterPort = "6222"
	DefaultJoinPort    = "9345"
	joinTokenFile      = "join-token"
	clusterStateFile   = "cluster.json"
	joinPath           = "/v1-miniku/join"
	caPath             = "/cacerts"
)

type clusterFlags struct {
	nodeName, clusterAddr, joinAddr, join, token *string
	init                                         *bool
}

func registerClusterFlags(fs *flag.FlagSet) clusterFlags {
	return clusterFlags{
		nodeName:    fs.String("node-name", "", "this host's name: its NATS server's and kubelet's (default: the hostname; a DNS label, unique in the cluster)"),
		clusterAddr: fs.String("cluster-addr", "", "NATS route listener for the other servers (default: port "+DefaultClusterPort+" on --nats-addr's host; with --cluster-init or --join only)"),
		joinAddr:    fs.String("join-addr", "", "HTTPS listener other hosts join through (default: port "+DefaultJoinPort+" on --nats-addr's host; with --cluster-init or --join only)"),
		init:        fs.Bool("cluster-init", false, "start a new cluster of several hosts: make its CA and join token (<data-dir>/join-token)"),
		join:        fs.String("join", "", "join the cluster of the server at this URL (https://HOST:"+DefaultJoinPort+") as a server, with --token"),
		token:       fs.String("token", "", "the cluster's join token (<data-dir>/join-token on a server: K10<ca-sha256>::server:<secret>)"),
	}
}

// clusterConfig is what up runs as one server of a cluster; nil: alone.
type clusterConfig struct {
	nodeName, clusterAddr, joinAddr string
}

// resolve checks the flags; nodeSet says whether --node-name was given.
func (f clusterFlags) resolve(natsAddr string) (*clusterConfig, error) {
	name := *f.nodeName
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("--node-name: no hostname: %w", err)
		}
		name = strings.ToLower(h)
	}
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return nil, fmt.Errorf("--node-name %q: %s", name, strings.Join(errs, "; "))
	}
	if *f.init && *f.join != "" {
		return nil, errors.New("--cluster-init starts a new cluster and --join joins one: give one of them")
	}
	if (*f.join == "") != (*f.token == "") {
		return nil, errors.New("--join and --token go together")
	}
	if !*f.init && *f.join == "" {
		if *f.clusterAddr != "" || *f.joinAddr != "" {
			return nil, errors.New("--cluster-addr and --join-addr need --cluster-init (a new cluster) or --join (an existing one)")
		}
		return nil, nil
	}
	host, _, err := net.SplitHostPort(natsAddr)
	if err != nil {
		return nil, fmt.Errorf("--nats-addr %q: %w", natsAddr, err)
	}
	if bus.IsLoopback(host) || host == "" || net.ParseIP(host).IsUnspecified() {
		return nil, fmt.Errorf("--nats-addr %s: a server of a cluster needs the address the other hosts reach it on (e.g. --nats-addr 10.0.0.1:4222)", natsAddr)
	}
	cc := &clusterConfig{nodeName: name, clusterAddr: *f.clusterAddr, joinAddr: *f.joinAddr}
	if cc.clusterAddr == "" {
		cc.clusterAddr = net.JoinHostPort(host, DefaultClusterPort)
	}
	if cc.joinAddr == "" {
		cc.joinAddr = net.JoinHostPort(host, DefaultJoinPort)
	}
	return cc, nil
}

// joinToken is K10<sha256 of the CA certificate, hex>::server:<secret>.
type joinToken struct{ caHash, secret string }

func parseJoinToken(s string) (joinToken, error) {
	s = strings.TrimSpace(s)
	hash, rest, ok := strings.Cut(strings.TrimPrefix(s, "K10"), "::")
	user, secret, ok2 := strings.Cut(rest, ":")
	if !strings.HasPrefix(s, "K10") || !ok || !ok2 || user != "server" || len(hash) != 64 || secret == "" {
		return joinToken{}, errors.New("--token: not a join token (want K10<ca-sha256>::server:<secret>, as in <data-dir>/join-token of a server)")
	}
	if _, err := hex.DecodeString(hash); err != nil {
		return joinToken{}, fmt.Errorf("--token: the CA hash is not hex: %w", err)
	}
	return joinToken{caHash: strings.ToLower(hash), secret: secret}, nil
}

func (t joinToken) String() string { return "K10" + t.caHash + "::server:" + t.secret }

func caHash(pem []byte) string {
	h := sha256.Sum256(pem)
	return hex.EncodeToString(h[:])
}

// clusterState is <data-dir>/cluster.json: the routes this server dials
// at start (every server it has heard of), kept as servers join.
type clusterState struct {
	Routes []string `json:"routes"`
	// JoinAddr is where this server serves joins (miniku cluster status).
	JoinAddr string `json:"joinAddr,omitempty"`
}

var stateMu sync.Mutex

func readClusterState(dataDir string) (clusterState, error) {
	var st clusterState
	data, err := os.ReadFile(filepath.Join(dataDir, clusterStateFile))
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(data, &st)
}

// addRoutes records routes in the cluster state, keeping what is there.
func addRoutes(dataDir string, routes ...string) ([]string, error) {
	return updateState(dataDir, "", routes...)
}

// updateState is addRoutes that also records joinAddr when not empty.
func updateState(dataDir, joinAddr string, routes ...string) ([]string, error) {
	stateMu.Lock()
	defer stateMu.Unlock()
	st, err := readClusterState(dataDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	before, beforeJoin := len(st.Routes), st.JoinAddr
	for _, r := range routes {
		if r != "" && !slices.Contains(st.Routes, r) {
			st.Routes = append(st.Routes, r)
		}
	}
	if joinAddr != "" {
		st.JoinAddr = joinAddr
	}
	if len(st.Routes) == before && st.JoinAddr == beforeJoin && err == nil {
		return st.Routes, nil
	}
	slices.Sort(st.Routes)
	data, _ := json.MarshalIndent(st, "", "  ")
	return st.Routes, bus.WriteFileAtomic(filepath.Join(dataDir, clusterStateFile), append(data, '\n'), 0o600)
}

// initCluster makes the first server's CA and join token (kept across
// restarts) and records its own route.
func initCluster(dataDir string, cc *clusterConfig, log *slog.Logger) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if _, err := pki.EnsureCA(dataDir, time.Now()); err != nil {
		return err
	}
	caPEM, err := os.ReadFile(pki.CAPath(dataDir))
	if err != nil {
		return err
	}
	path := filepath.Join(dataDir, joinTokenFile)
	if data, err := os.ReadFile(path); err == nil {
		tok, err := parseJoinToken(string(data))
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if tok.caHash != caHash(caPEM) {
			return fmt.Errorf("%s pins another CA than %s: remove the token file to make a new one", path, pki.CAPath(dataDir))
		}
	} else if errors.Is(err, os.ErrNotExist) {
		tok := joinToken{caHash: caHash(caPEM), secret: bus.RandomSecret()}
		if err := bus.WriteFileAtomic(path, []byte(tok.String()+"\n"), 0o600); err != nil {
			return fmt.Errorf("write join token: %w", err)
		}
		log.Info("made the cluster's join token", "path", path)
	} else {
		return err
	}
	_, err = updateState(dataDir, cc.joinAddr, cc.clusterAddr)
	return err
}

// joinRequest and joinReply are the join's wire form.
type joinRequest struct {
	NodeName    string `json:"nodeName"`
	ClusterAddr string `json:"clusterAddr"`
}

type joinReply struct {
	// Files to write under the data dir, by path relative to it.
	Files  map[string][]byte `json:"files"`
	Routes []string          `json:"routes"`
}

// sharedFiles are the data dir's files every server of a cluster has the
// same copy of; the NATS users' credentials come on top.
func sharedFiles() []string {
	tls := filepath.Base(pki.Dir(""))
	return []string{filepath.Join(tls, "ca.crt"), filepath.Join(tls, "ca.key"), "token", encrypt.KeyFile, joinTokenFile}
}

// controlPlaneUsers are the NATS users a server runs besides its kubelet.
var controlPlaneUsers = []string{bus.UserAPIServer, bus.UserScheduler, bus.UserController, bus.UserViewer, bus.UserHollow}

// joinCluster is a joining host's side: unless this data dir has joined
// already, fetch the CA, check it against the token, ask to join and
// write what comes back. Nothing is written when any step fails.
func joinCluster(ctx context.Context, dataDir, url, token string, cc *clusterConfig, log *slog.Logger) error {
	tok, err := parseJoinToken(token)
	if err != nil {
		return err
	}
	if _, err := readClusterState(dataDir); err == nil {
		// A restart: the data dir has joined. The token must still be
		// this cluster's.
		caPEM, err := os.ReadFile(pki.CAPath(dataDir))
		if err != nil {
			return fmt.Errorf("joined earlier, but: %w", err)
		}
		if caHash(caPEM) != tok.caHash {
			return fmt.Errorf("--token pins another CA than this data dir's cluster (%s)", pki.CAPath(dataDir))
		}
		_, err = updateState(dataDir, cc.joinAddr, cc.clusterAddr)
		return err
	}
	url = strings.TrimSuffix(url, "/")
	if !strings.HasPrefix(url, "https://") {
		return fmt.Errorf("--join %s: want an https:// URL (the server's --join-addr, port %s by default)", url, DefaultJoinPort)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// The CA, without trusting it yet: the token's hash is what says it
	// is the cluster's.
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	// Retried while the server cannot be reached (it may be starting,
	// as hosts are often started together); an answer is final.
	var caPEM []byte
	for {
		caPEM, err = fetch(ctx, insecure, http.MethodGet, url+caPath, nil, "")
		var refused *refusedError
		if err == nil || errors.As(err, &refused) || ctx.Err() != nil {
			break
		}
		log.Info("cannot reach the server to join yet; retrying", "server", url, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	if err != nil {
		return fmt.Errorf("join %s: fetch the CA: %w", url, err)
	}
	if got := caHash(caPEM); got != tok.caHash {
		return fmt.Errorf("join %s: refusing the server: its CA's hash %s is not the token's %s (a wrong token, or not that cluster's server)", url, got, tok.caHash)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("join %s: the CA is not PEM", url)
	}
	verified := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	body, _ := json.Marshal(joinRequest{NodeName: cc.nodeName, ClusterAddr: cc.clusterAddr})
	data, err := fetch(ctx, verified, http.MethodPost, url+joinPath, body, tok.secret)
	if err != nil {
		return fmt.Errorf("join %s: %w", url, err)
	}
	var reply joinReply
	if err := json.Unmarshal(data, &reply); err != nil {
		return fmt.Errorf("join %s: reply: %w", url, err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	for rel, content := range reply.Files {
		clean := filepath.Clean(rel)
		if filepath.IsAbs(clean) || strings.HasPrefix(clean, "..") {
			return fmt.Errorf("join %s: refusing file %q outside the data dir", url, rel)
		}
		path := filepath.Join(dataDir, clean)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		mode := os.FileMode(0o600)
		if clean == filepath.Join(filepath.Base(pki.Dir("")), "ca.crt") {
			mode = 0o644
		}
		if err := bus.WriteFileAtomic(path, content, mode); err != nil {
			return fmt.Errorf("join: write %s: %w", path, err)
		}
	}
	// Written last: it marks the join done.
	if _, err := updateState(dataDir, cc.joinAddr, append(reply.Routes, cc.clusterAddr)...); err != nil {
		return err
	}
	log.Info("joined the cluster", "server", url, "routes", reply.Routes)
	return nil
}

func fetch(ctx context.Context, client *http.Client, method, url string, body []byte, secret string) ([]byte, error) {
	var r io.Reader
	if body != nil {
		r = strings.NewReader(string(body))
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return nil, err
	}
	if secret != "" {
		req.SetBasicAuth("server", secret)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Message string }
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Message != "" {
			msg = e.Message
		}
		return nil, &refusedError{code: resp.StatusCode, msg: msg}
	}
	return data, nil
}

// refusedError is the server's answer to a join it does not accept.
type refusedError struct {
	code int
	msg  string
}

func (e *refusedError) Error() string { return fmt.Sprintf("refused (%d): %s", e.code, e.msg) }

// joinServer serves /cacerts and the join on cc.joinAddr until ctx ends.
type joinServer struct {
	dataDir string
	cc      *clusterConfig
	ns      func() *server.Server
	log     *slog.Logger
	// conn is the apiserver's connection once the store serves (status).
	conn atomic.Pointer[bus.Conn]
}

func (j *joinServer) run(ctx context.Context) error {
	cert, key, err := serverCert(j.dataDir, "join", j.cc.joinAddr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+caPath, func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, pki.CAPath(j.dataDir))
	})
	mux.HandleFunc("POST "+joinPath, j.join)
	mux.HandleFunc("GET "+statusPath, j.status)
	srv := &http.Server{Addr: j.cc.joinAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(j.log.Handler(), slog.LevelWarn)}
	ln, err := net.Listen("tcp", j.cc.joinAddr)
	if err != nil {
		return fmt.Errorf("--join-addr %s: %w", j.cc.joinAddr, err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, cert, key) }()
	j.log.Info("other hosts join here", "url", "https://"+j.cc.joinAddr, "token", filepath.Join(j.dataDir, joinTokenFile))
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	case err := <-errc:
		return err
	}
}

func joinError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

// authorized reports whether r carries this server's join secret.
func (j *joinServer) authorized(r *http.Request) bool {
	data, err := os.ReadFile(filepath.Join(j.dataDir, joinTokenFile))
	if err != nil {
		return false
	}
	tok, err := parseJoinToken(string(data))
	if err != nil {
		return false
	}
	user, secret, ok := r.BasicAuth()
	return ok && user == "server" && subtle.ConstantTimeCompare([]byte(secret), []byte(tok.secret)) == 1
}

func (j *joinServer) join(w http.ResponseWriter, r *http.Request) {
	if !j.authorized(r) {
		j.log.Warn("join refused: wrong token", "from", r.RemoteAddr)
		joinError(w, http.StatusUnauthorized, "wrong join token: use the one in <data-dir>/join-token of a server of this cluster")
		return
	}
	var req joinRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		joinError(w, http.StatusBadRequest, "join request: "+err.Error())
		return
	}
	if errs := validation.IsDNS1123Label(req.NodeName); len(errs) > 0 {
		joinError(w, http.StatusBadRequest, fmt.Sprintf("nodeName %q: %s", req.NodeName, strings.Join(errs, "; ")))
		return
	}
	if _, _, err := net.SplitHostPort(req.ClusterAddr); err != nil {
		joinError(w, http.StatusBadRequest, fmt.Sprintf("clusterAddr %q: %v", req.ClusterAddr, err))
		return
	}
	if req.NodeName == j.cc.nodeName || j.serverNamed(req.NodeName) {
		joinError(w, http.StatusConflict, fmt.Sprintf("a server named %s is already in the cluster: give this host another --node-name", req.NodeName))
		return
	}
	reply := joinReply{Files: map[string][]byte{}}
	for _, rel := range sharedFiles() {
		b, err := os.ReadFile(filepath.Join(j.dataDir, rel))
		if err != nil {
			joinError(w, http.StatusServiceUnavailable, "this server cannot read "+rel)
			return
		}
		reply.Files[rel] = b
	}
	authRel, _ := filepath.Rel(j.dataDir, authDir(j.dataDir))
	// The kubelet's user is made here, so this server knows it too
	// (bus.WatchUsers loads it).
	users := append(slices.Clone(controlPlaneUsers), bus.KubeletUser(req.NodeName))
	for _, u := range users {
		if _, err := bus.EnsureCredentials(authDir(j.dataDir), u); err != nil {
			joinError(w, http.StatusServiceUnavailable, "credentials: "+err.Error())
			return
		}
		b, err := os.ReadFile(bus.CredentialsPath(authDir(j.dataDir), u))
		if err != nil {
			joinError(w, http.StatusServiceUnavailable, "credentials: "+err.Error())
			return
		}
		reply.Files[filepath.Join(authRel, u+".json")] = b
	}
	routes, err := addRoutes(j.dataDir, req.ClusterAddr)
	if err != nil {
		joinError(w, http.StatusServiceUnavailable, "routes: "+err.Error())
		return
	}
	reply.Routes = routes
	j.log.Info("a server joined", "node", req.NodeName, "route", req.ClusterAddr, "from", r.RemoteAddr)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(reply)
}

// serverNamed reports whether a server of that name is routed to now.
func (j *joinServer) serverNamed(name string) bool {
	ns := j.ns()
	if ns == nil {
		return false
	}
	rz, err := ns.Routez(nil)
	if err != nil {
		return false
	}
	for _, r := range rz.Routes {
		if r.RemoteName == name {
			return true
		}
	}
	return false
}

// keepClusterReplicas raises every bucket and stream to the cluster's
// replica count (bus.ClusterReplicas of the servers JetStream knows) and
// records the servers' routes, every interval, on the JetStream meta
// leader only (one writer). Replicas are never lowered here.
func keepClusterReplicas(ctx context.Context, ns *server.Server, conn *bus.Conn, dataDir string, cc *clusterConfig, every time.Duration, log *slog.Logger) error {
	t := time.NewTicker(every)
	defer t.Stop()
	_, port, _ := net.SplitHostPort(cc.clusterAddr)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		// Every server a route reaches, on the cluster's port: its
		// inbound routes come from ephemeral ports.
		if rz, err := ns.Routez(nil); err == nil {
			var routes []string
			for _, r := range rz.Routes {
				if r.IP != "" {
					routes = append(routes, net.JoinHostPort(r.IP, port))
				}
			}
			if _, err := addRoutes(dataDir, routes...); err != nil {
				log.Warn("could not record the cluster's routes", "err", err)
			}
		}
		if !ns.JetStreamIsLeader() {
			continue
		}
		jsz, err := ns.Jsz(nil)
		if err != nil || jsz.Meta == nil {
			continue
		}
		servers := max(jsz.Meta.Size, len(jsz.Meta.Replicas)+1)
		want := bus.ClusterReplicas(servers)
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		raised, err := conn.RaiseReplicas(rctx, want)
		cancel()
		if len(raised) > 0 {
			log.Info("buckets and streams moved to the cluster's replicas", "servers", servers, "replicas", want, "streams", raised)
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("could not raise every stream's replicas; retrying", "err", err)
		}
	}
}
