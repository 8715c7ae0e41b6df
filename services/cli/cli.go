package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/pki"
	"github.com/miniku/miniku/services/cli/client"
)

// DefaultDataDir is where `miniku up` keeps its token and NATS credentials.
const DefaultDataDir = "/var/lib/miniku"

// DefaultServer is the address `miniku up` serves the API on.
const DefaultServer = "127.0.0.1:8080"

// Commands are the CLI's subcommands, for main's command table.
var Commands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{
	"get":      cmdGet,
	"apply":    cmdApply,
	"delete":   cmdDelete,
	"scale":    cmdScale,
	"describe": cmdDescribe,
	"logs":     cmdLogs,
	"exec":     cmdExec,
	"cordon":   cmdCordon,
	"uncordon": cmdUncordon,
	"drain":    cmdDrain,
	"events":   cmdEvents,
}

// Usage lists the CLI's commands for the binary's usage text.
const Usage = `  get         list pods, rs, nodes or events as tables (-o wide|json|yaml, -l, -w)
  apply       create or update objects from manifests (-f FILE|DIR|-, --wait)
  delete      delete pods or replicasets (by name or -f)
  scale       set a replicaset's desired count (scale rs/NAME --replicas N [--wait])
  describe    show a pod, replicaset or node with its events
  logs        print a pod's container log (-f, --tail N)
  exec        run a command in a pod's container (exec [-i] POD -- CMD [ARG...])
  cordon, uncordon, drain   stop scheduling onto a node, allow it again, evict its pods
  events      print the bus events live (NATS, as the read-only viewer)
`

// options are the flags every client command takes.
type options struct {
	server, token, dataDir, ca, config string
	// stderr is the flag set's output, where retries are reported.
	stderr io.Writer
}

func (o *options) register(fs *flag.FlagSet) {
	o.stderr = fs.Output()
	fs.StringVar(&o.server, "server", "", "apiserver address (default $MINIKU_SERVER, the config file's, else "+DefaultHTTPSServer+" if <data-dir>/tls/ca.crt is readable, else "+DefaultServer+")")
	fs.StringVar(&o.token, "token", "", "API token (default $MINIKU_TOKEN, the config file's, else <data-dir>/token)")
	fs.StringVar(&o.dataDir, "data-dir", "", "data dir of a local 'miniku up', for its token and NATS credentials (default $MINIKU_DATA_DIR, else "+DefaultDataDir+")")
	fs.StringVar(&o.ca, "ca", "", "CA certificate (PEM) of an apiserver using TLS (default $MINIKU_CA, the config file's, else <data-dir>/tls/ca.crt)")
	fs.StringVar(&o.config, "config", "", "config file (default $MINIKU_CONFIG, else $XDG_CONFIG_HOME/miniku/config.yaml or ~/.config/miniku/config.yaml)")
}

// fileConfig is the config file: YAML (or JSON) with these keys.
type fileConfig struct {
	Server    string `json:"server"`
	Token     string `json:"token"`
	TokenFile string `json:"tokenFile"`
	DataDir   string `json:"dataDir"`
	CA        string `json:"ca"`
	NATS      string `json:"nats"`
	NATSCreds string `json:"natsCreds"`
}

func configPath(explicit string) (string, bool) {
	if explicit != "" {
		return explicit, true
	}
	if p := os.Getenv("MINIKU_CONFIG"); p != "" {
		return p, true
	}
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", false
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "miniku", "config.yaml"), false
}

// loadConfig reads the config file; a missing default one is no error.
func (o *options) loadConfig() (fileConfig, error) {
	var fc fileConfig
	path, explicit := configPath(o.config)
	if path == "" {
		return fc, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !explicit {
		return fc, nil
	}
	if err != nil {
		return fc, fmt.Errorf("config file: %w", err)
	}
	if err := yaml.UnmarshalStrict(data, &fc); err != nil {
		return fc, fmt.Errorf("config file %s: %w", path, err)
	}
	return fc, nil
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// client finds the server and token: flags, then the environment, then
// the config file, then a local `miniku up`'s defaults.
func (o *options) client() (*client.Client, error) {
	fc, err := o.loadConfig()
	if err != nil {
		return nil, err
	}
	server, ca := o.serverAndCA(fc)
	c, err := client.New(server, "", ca)
	if err != nil {
		return nil, err
	}
	if o.stderr != nil {
		// A user waiting out a leader change sees why nothing happens yet.
		c.OnRetry = func(err error, wait time.Duration) {
			fmt.Fprintf(o.stderr, "miniku: %v; retrying in %s\n", err, wait.Round(10*time.Millisecond))
		}
	}
	switch {
	case o.token != "":
		c.Token, c.TokenSource = o.token, "--token"
	case os.Getenv("MINIKU_TOKEN") != "":
		c.Token, c.TokenSource = os.Getenv("MINIKU_TOKEN"), "$MINIKU_TOKEN"
	case fc.Token != "":
		c.Token, c.TokenSource = fc.Token, "the config file"
	default:
		file := fc.TokenFile
		if file == "" {
			file = filepath.Join(o.dataDirOr(fc), "token")
		}
		data, err := os.ReadFile(file)
		if err != nil {
			c.TokenErr = err
		} else {
			c.Token, c.TokenSource = strings.TrimSpace(string(data)), file
		}
	}
	return c, nil
}

// DefaultHTTPSServer is where `miniku up` serves the API over HTTPS.
const DefaultHTTPSServer = "https://127.0.0.1:6443"

// serverAndCA picks the API server and the CA to trust. A local `miniku
// up` is reached over HTTPS, trusting its data dir's CA, whenever that CA
// is readable (anyone who can read the token can read it): the token then
// never crosses loopback in clear. An https server without --ca trusts the
// data dir's CA too.
func (o *options) serverAndCA(fc fileConfig) (server, ca string) {
	server = firstNonEmpty(o.server, os.Getenv("MINIKU_SERVER"), fc.Server)
	ca = firstNonEmpty(o.ca, os.Getenv("MINIKU_CA"), fc.CA)
	if server == "" {
		// The data dir's cli.yaml is where `miniku up` said it serves
		// (like k3s's k3s.yaml): it finds an up on non-default ports.
		if lc, err := readLocalConfig(o.dataDirOr(fc)); err == nil && lc.Server != "" {
			server = lc.Server
			ca = firstNonEmpty(ca, lc.CA)
		}
	}
	local := pki.CAPath(o.dataDirOr(fc))
	readable := fileReadable(local)
	switch {
	case server == "" && readable:
		server = DefaultHTTPSServer
	case server == "":
		server = DefaultServer
	}
	if ca == "" && readable && strings.HasPrefix(server, "https://") {
		ca = local
	}
	return server, ca
}

// LocalConfigName is the file in a data dir where `miniku up` writes how
// the CLI reaches it: the server and the CA to trust (no secret; the token
// stays in <data-dir>/token).
const LocalConfigName = "cli.yaml"

// localConfig is <data-dir>/cli.yaml.
type localConfig struct {
	Server string `json:"server"`
	CA     string `json:"ca,omitempty"`
}

// WriteLocalConfig records in dataDir how this host's CLI reaches the
// apiserver `miniku up` runs there. It is the data dir's own file, rewritten
// at each start, so it never touches a user's config file.
func WriteLocalConfig(dataDir, server, ca string) error {
	data, err := yaml.Marshal(localConfig{Server: server, CA: ca})
	if err != nil {
		return err
	}
	head := []byte("# Written by 'miniku up' at each start: how the CLI on this host reaches it.\n")
	if err := bus.WriteFileAtomic(filepath.Join(dataDir, LocalConfigName), append(head, data...), 0o644); err != nil {
		return fmt.Errorf("CLI config in the data dir: %w", err)
	}
	return nil
}

func readLocalConfig(dataDir string) (localConfig, error) {
	var lc localConfig
	path := filepath.Join(dataDir, LocalConfigName)
	data, err := os.ReadFile(path)
	if err != nil {
		return lc, err
	}
	if err := yaml.Unmarshal(data, &lc); err != nil {
		return lc, fmt.Errorf("%s: %w", path, err)
	}
	return lc, nil
}

func (o *options) dataDirOr(fc fileConfig) string {
	return firstNonEmpty(o.dataDir, os.Getenv("MINIKU_DATA_DIR"), fc.DataDir, DefaultDataDir)
}

// parseArgs parses flags placed anywhere among the arguments (as kubectl
// allows) and returns the positional ones; everything after "--" is
// positional.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func newFlagSet(name string, stderr io.Writer, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: miniku %s\n\nflags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// kindOf maps the names people type to the API's resource paths.
func kindOf(s string) (string, error) {
	switch strings.ToLower(s) {
	case "pod", "pods", "po":
		return "pods", nil
	case "rs", "replicaset", "replicasets":
		return "replicasets", nil
	case "node", "nodes", "no":
		return "nodes", nil
	case "event", "events", "ev":
		return "events", nil
	}
	return "", fmt.Errorf("unknown resource %q: want pods, rs (replicasets), nodes or events", s)
}

// singular names a resource path the way objects are printed (pod/x).
func singular(path string) string {
	switch path {
	case "replicasets":
		return "replicaset"
	case "pods":
		return "pod"
	case "nodes":
		return "node"
	}
	return path
}

// splitRef accepts "rs/NAME" or "rs NAME" (consuming the second argument).
func splitRef(args []string) (kind, name string, rest []string, err error) {
	if len(args) == 0 {
		return "", "", nil, errors.New("missing resource: want e.g. rs/NAME or pod NAME")
	}
	if k, n, ok := strings.Cut(args[0], "/"); ok {
		kind, err = kindOf(k)
		return kind, n, args[1:], err
	}
	if len(args) < 2 {
		return "", "", nil, fmt.Errorf("missing name after %q", args[0])
	}
	kind, err = kindOf(args[0])
	return kind, args[1], args[2:], err
}
