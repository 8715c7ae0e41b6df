//go:build linux

package cmd

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/pki"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/apiserver"
)

// usersReloadInterval is how often a NATS server looks for kubelet
// credentials added while it runs.
const usersReloadInterval = 2 * time.Second

// revokeInterval is how often up checks for kubelets whose Node was
// deleted while it was down (a deletion it sees is acted on at once).
const revokeInterval = 30 * time.Second

// authDir holds the NATS users' credentials of a server with this data dir.
func authDir(dataDir string) string { return filepath.Join(dataDir, "nats", "auth") }

// busOptions are the connection options of c's role: its credentials from
// --nats-creds, else from the role's file under --data-dir if there is one
// (a component on the NATS server's host), else none (a NATS server
// without users, e.g. a cluster configured by hand).
func (c *common) busOptions(log *slog.Logger) (bus.Options, error) {
	o := bus.Options{URL: c.natsURL, Replicas: c.replicas, Logger: log, TLSCA: c.natsCAFile(),
		Bind:              strings.HasPrefix(c.role, "kubelet-") || c.role == bus.UserHollow,
		NoReconnectBuffer: c.role == bus.UserAPIServer}
	if c.role == bus.UserAPIServer && c.dataDir != "" {
		k, err := secretsKey(c.dataDir)
		if err != nil {
			return o, err
		}
		o.SecretsKey = k
	}
	path := c.natsCreds
	if path == "" && c.dataDir != "" {
		p := bus.CredentialsPath(authDir(c.dataDir), c.role)
		if _, err := os.Stat(p); err == nil {
			path = p
		} else if _, err := os.Stat(authDir(c.dataDir)); err == nil && o.Bind {
			// A new kubelet on the NATS server's host: create its user,
			// which the running server admits within usersReloadInterval.
			if _, err := bus.EnsureCredentials(authDir(c.dataDir), c.role); err != nil {
				return o, err
			}
			log.Info("created NATS credentials for this kubelet", "path", p)
			path = p
		}
	}
	if path == "" {
		log.Warn("connecting to NATS without credentials (none given with --nats-creds, none at the default path)", "user", c.role)
		return o, nil
	}
	creds, err := bus.ReadCredentials(path)
	if err != nil {
		return o, fmt.Errorf("--nats-creds: %w", err)
	}
	o.User, o.Password = creds.User, creds.Password
	return o, nil
}

// apiFlags are the apiserver's security flags (up and apiserver).
type apiFlags struct {
	tokenFile, tlsCert, tlsKey, httpsAddr *string
	noAuth                                *bool
	podSecurity                           *string
}

// DefaultHTTPSAddr is k3s's API port, on loopback.
const DefaultHTTPSAddr = "127.0.0.1:6443"

func registerAPIFlags(fs *flag.FlagSet) apiFlags {
	return apiFlags{
		tokenFile: fs.String("token-file", "", "bearer token file, created (0600) if missing (default <data-dir>/token)"),
		noAuth:    fs.Bool("insecure-no-auth", false, "serve the API WITHOUT authentication (demos on loopback only)"),
		httpsAddr: fs.String("https-addr", DefaultHTTPSAddr, "serve the API over HTTPS here too (empty: not at all)"),
		tlsCert:   fs.String("tls-cert", "", "PEM certificate for HTTPS (and NATS with up) (default: one signed by the CA in <data-dir>/tls)"),
		tlsKey:    fs.String("tls-key", "", "PEM private key of --tls-cert"),
		podSecurity: fs.String("pod-security", string(schemas.PodSecurityBaseline),
			`Pod Security level enforced on pods and replicaset templates: "baseline" refuses host namespaces (hostNetwork), "privileged" allows them`),
	}
}

// config fills in the apiserver's token and TLS, creating the token file at
// first start (and the HTTPS certificate, from the data dir's CA, unless
// --tls-cert gives one), and tells the log how to use it.
func (f apiFlags) config(dataDir, addr string, log *slog.Logger) (apiserver.Config, error) {
	level, err := schemas.ParsePodSecurityLevel(*f.podSecurity)
	if err != nil {
		return apiserver.Config{}, fmt.Errorf("--pod-security: %w", err)
	}
	if level == schemas.PodSecurityPrivileged {
		log.Warn("--pod-security privileged: any API client may create pods in the host's network namespace")
	}
	cfg := apiserver.Config{Addr: addr, HTTPSAddr: *f.httpsAddr, Logger: log, TLSCert: *f.tlsCert, TLSKey: *f.tlsKey, PodSecurity: level}
	if cfg.OpenAPI, err = kubeOpenAPI(log); err != nil {
		return cfg, err
	}
	if cfg.Addr == "" && cfg.HTTPSAddr == "" {
		return cfg, errors.New("--api-addr and --https-addr are both empty: the API would listen nowhere")
	}
	ca := *f.tlsCert
	if cfg.HTTPSAddr != "" && cfg.TLSCert == "" {
		if cfg.TLSCert, cfg.TLSKey, err = serverCert(dataDir, "apiserver", addr, cfg.HTTPSAddr); err != nil {
			return cfg, err
		}
		ca = pki.CAPath(dataDir)
	}
	if cfg.Addr != "" && !loopbackAddr(cfg.Addr) {
		log.Warn("plain HTTP on a non-loopback address: the bearer token crosses the network in clear; prefer --https-addr and --api-addr ''", "addr", cfg.Addr)
	}
	if *f.noAuth {
		log.Warn("--insecure-no-auth: the API is OPEN to anyone who can reach " + addr)
		return cfg, nil
	}
	path := *f.tokenFile
	if path == "" {
		path = filepath.Join(dataDir, "token")
	}
	tok, created, err := apiserver.EnsureToken(path)
	if err != nil {
		return cfg, err
	}
	cfg.Token, cfg.TokenFile = tok, path
	example := fmt.Sprintf(`curl -H "Authorization: Bearer $(sudo cat %s)" http://%s/pods`, path, addr)
	if cfg.HTTPSAddr != "" {
		example = fmt.Sprintf(`curl --cacert %s -H "Authorization: Bearer $(sudo cat %s)" https://%s/pods`, ca, path, cfg.HTTPSAddr)
	}
	log.Info("the API requires a bearer token", "tokenFile", path, "created", created, "example", example)
	return cfg, nil
}

// natsContext is the natscli context format (ADR-21), for the viewer.
type natsContext struct {
	Description string `json:"description"`
	URL         string `json:"url"`
	User        string `json:"user"`
	Password    string `json:"password"`
	CA          string `json:"ca,omitempty"`
	// InboxPrefix: the viewer may receive replies (KV gets, watches)
	// only below its own prefix (bus.Permissions).
	InboxPrefix string `json:"inbox_prefix"`
}

// writeNATSContext saves a nats CLI context named name for the read-only
// viewer, so that watching is one command: nats --context miniku sub 'pod.>'.
// It lives in the invoking user's config dir ($XDG_CONFIG_HOME or
// ~/.config), mode 0600, and is rewritten at every start.
func writeNATSContext(name, url, dataDir, ca string, log *slog.Logger) error {
	if name == "" {
		return nil
	}
	creds, err := bus.ReadCredentials(bus.CredentialsPath(authDir(dataDir), bus.UserViewer))
	if err != nil {
		return err
	}
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return fmt.Errorf("nats context: %w", err)
		}
		dir = filepath.Join(home, ".config")
	}
	dir = filepath.Join(dir, "nats", "context")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("nats context: %w", err)
	}
	data, err := json.MarshalIndent(natsContext{
		Description: "MiniKu, read-only (written by miniku up)",
		URL:         url, User: creds.User, Password: creds.Password, CA: ca,
		InboxPrefix: bus.InboxPrefix(bus.UserViewer),
	}, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, name+".json")
	if err := bus.WriteFileAtomic(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("nats context: %w", err)
	}
	log.Info("nats CLI context for the read-only viewer", "path", path, "example", "nats --context "+name+" sub 'event.>'")
	return nil
}

// splitNodes parses a comma-separated list of node names.
func splitNodes(s string) []string {
	var out []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}
