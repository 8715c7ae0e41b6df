package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/pki"
	"github.com/miniku/miniku/schemas"
)

// defaultSubjects are the hint subjects and the Kubernetes-style events;
// heartbeats only with --heartbeats.
var defaultSubjects = []string{"pod.>", "replicaset.>", "node.>", "event.>"}

const eventsUsage = `events [SUBJECT...] [--kind pod] [--name NAME] [--heartbeats] [-o json]

Prints the bus events live, decoded from msgpack, as the read-only NATS
user "viewer". SUBJECT patterns default to pod.> replicaset.> node.> event.>`

func cmdEvents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	var natsURL, creds, ca, kind, name, output string
	var heartbeats bool
	fs := newFlagSet("events", stderr, eventsUsage)
	o.register(fs)
	fs.StringVar(&natsURL, "nats", "", "NATS URL (default $MINIKU_NATS, the config file's, the nats CLI context 'miniku', else nats://127.0.0.1:4222)")
	fs.StringVar(&creds, "nats-creds", "", "viewer credentials (default: the nats CLI context 'miniku', else <data-dir>/nats/auth/viewer.json)")
	fs.StringVar(&ca, "nats-ca", "", "CA certificate (PEM) of the NATS server (default: the nats CLI context's, else <data-dir>/tls/ca.crt)")
	fs.StringVar(&kind, "kind", "", "only events about this kind (pod, replicaset, node)")
	fs.StringVar(&name, "name", "", "only events about the object of this name")
	fs.BoolVar(&heartbeats, "heartbeats", false, "include node.heartbeat.* (every few seconds per node)")
	fs.StringVar(&output, "o", "", "json: one JSON object per line {subject, event}")
	subjects, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if output != "" && output != "json" {
		return fmt.Errorf("-o %q: want json", output)
	}
	if kind != "" {
		k, err := kindOf(kind)
		if err != nil {
			return err
		}
		kind = map[string]string{"pods": schemas.KindPod, "replicasets": schemas.KindReplicaSet, "nodes": schemas.KindNode}[k]
		if kind == "" {
			return fmt.Errorf("--kind %s: want pod, replicaset or node", k)
		}
	}
	if len(subjects) == 0 {
		subjects = defaultSubjects
	}
	// A NATS restart is ridden out (the connection retries forever), but
	// core NATS does not replay what was published while it was down:
	// say so rather than going quiet. The callbacks run on NATS's own
	// goroutine, hence the lock.
	var errMu sync.Mutex
	say := func(format string, a ...any) {
		errMu.Lock()
		defer errMu.Unlock()
		fmt.Fprintf(stderr, format, a...)
	}
	nc, err := o.connectViewer(natsURL, creds, ca,
		nats.DisconnectErrHandler(func(c *nats.Conn, err error) {
			if !c.IsClosed() { // not our own Close at the end
				say("miniku: lost the connection to NATS (%v); reconnecting (events published meanwhile are not shown)\n", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { say("miniku: reconnected to NATS at %s\n", c.ConnectedUrlRedacted()) }))
	if err != nil {
		return err
	}
	defer nc.Close()

	p := &eventPrinter{out: stdout, kind: kind, name: name, heartbeats: heartbeats, json: output == "json", done: make(chan struct{})}
	for _, s := range subjects {
		if _, err := nc.Subscribe(s, p.handle); err != nil {
			return fmt.Errorf("subscribe %s: %w", s, err)
		}
	}
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	say("watching %s on %s (Ctrl-C to stop)\n", strings.Join(subjects, " "), nc.ConnectedUrlRedacted())
	select {
	case <-ctx.Done():
	case <-p.done:
	}
	return p.error()
}

// natsContextFile is the nats CLI context `miniku up` writes for the viewer.
type natsContextFile struct {
	URL      string `json:"url"`
	User     string `json:"user"`
	Password string `json:"password"`
	CA       string `json:"ca"`
}

func readNATSContext() (natsContextFile, bool) {
	var c natsContextFile
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return c, false
		}
		dir = filepath.Join(home, ".config")
	}
	data, err := os.ReadFile(filepath.Join(dir, "nats", "context", "miniku.json"))
	if err != nil || json.Unmarshal(data, &c) != nil || c.User == "" {
		return c, false
	}
	return c, true
}

func fileReadable(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// connectViewer logs in to NATS as the viewer: explicit flags, then the
// environment and config file, then the nats CLI context, then the data
// dir's credentials.
func (o *options) connectViewer(url, credsFile, ca string, extra ...nats.Option) (*nats.Conn, error) {
	fc, err := o.loadConfig()
	if err != nil {
		return nil, err
	}
	url = firstNonEmpty(url, os.Getenv("MINIKU_NATS"), fc.NATS)
	credsFile = firstNonEmpty(credsFile, fc.NATSCreds)
	var user, password string
	if ctxf, ok := readNATSContext(); ok && credsFile == "" && (url == "" || url == ctxf.URL) {
		url, user, password, ca = ctxf.URL, ctxf.User, ctxf.Password, firstNonEmpty(ca, ctxf.CA)
	} else {
		if credsFile == "" {
			credsFile = bus.CredentialsPath(filepath.Join(o.dataDirOr(fc), "nats", "auth"), bus.UserViewer)
		}
		c, err := bus.ReadCredentials(credsFile)
		if err != nil {
			return nil, fmt.Errorf("NATS viewer credentials: %w: run as a user who can read them (sudo), or pass --nats-creds", err)
		}
		user, password = c.User, c.Password
	}
	url = firstNonEmpty(url, "nats://127.0.0.1:4222")
	if ca == "" {
		// The server of a local data dir uses TLS from its CA.
		if p := pki.CAPath(o.dataDirOr(fc)); fileReadable(p) {
			ca = p
		}
	}
	opts := []nats.Option{nats.Name("miniku events"), nats.UserInfo(user, password),
		nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond), nats.Timeout(5 * time.Second),
		// The viewer may receive replies only under its own inbox prefix.
		nats.CustomInboxPrefix(bus.InboxPrefix(bus.UserViewer))}
	if ca != "" {
		opts = append(opts, nats.RootCAs(ca))
	}
	nc, err := nats.Connect(url, append(opts, extra...)...)
	if errors.Is(err, nats.ErrAuthorization) || (err != nil && strings.Contains(strings.ToLower(err.Error()), "authorization")) {
		return nil, fmt.Errorf("NATS at %s refused the viewer login (%v): pass the current <data-dir>/nats/auth/viewer.json with --nats-creds", url, err)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot reach NATS at %s: is 'miniku up' running? (or pass --nats / MINIKU_NATS): %w", url, err)
	}
	return nc, nil
}

// eventPrinter prints messages as they come (one NATS callback goroutine
// per subscription: the mutex keeps lines whole and in one order).
type eventPrinter struct {
	out              io.Writer
	kind, name       string
	heartbeats, json bool

	mu   sync.Mutex
	err  error
	done chan struct{} // closed when printing failed
}

func (p *eventPrinter) error() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *eventPrinter) handle(m *nats.Msg) {
	line, ok := p.format(m.Subject, m.Data, time.Now())
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return
	}
	if _, err := io.WriteString(p.out, line); err != nil {
		p.err = err // e.g. the pipe closed: stop
		close(p.done)
	}
}

// format renders one message, or reports false when the filters drop it.
func (p *eventPrinter) format(subject string, data []byte, now time.Time) (string, bool) {
	if !p.heartbeats && strings.HasPrefix(subject, bus.SubjNodeHeartbeat+".") {
		return "", false
	}
	var (
		decoded    any
		kind, name string
		text       string
	)
	switch {
	case strings.HasPrefix(subject, "event."):
		// One message may hold several events about one object
		// (schemas.MarshalEvents): a line each.
		evs, err := schemas.UnmarshalEvents(data)
		if err != nil {
			return p.raw(subject, data, now)
		}
		var out strings.Builder
		for _, e := range evs {
			text := fmt.Sprintf("%s %s %s/%s", e.Type, e.Reason, strings.ToLower(e.Kind), e.Name)
			if e.Node != "" {
				text += " node=" + e.Node
			}
			if e.Component != "" {
				text += " from=" + e.Component
			}
			if e.Message != "" {
				text += ": " + e.Message
			}
			if line, ok := p.line(subject, e, e.Kind, e.Name, text, now); ok {
				out.WriteString(line)
			}
		}
		return out.String(), out.Len() > 0
	case strings.HasPrefix(subject, "pod.") || strings.HasPrefix(subject, "replicaset.") || strings.HasPrefix(subject, "node."):
		var e schemas.Event
		if err := schemas.Unmarshal(data, &e); err != nil {
			return p.raw(subject, data, now)
		}
		decoded, kind, name = e, e.Kind, e.Name
		text = fmt.Sprintf("%s/%s", strings.ToLower(e.Kind), e.Name)
		if e.Node != "" {
			text += " node=" + e.Node
		}
		if e.Revision != 0 {
			text += fmt.Sprintf(" rev=%d", e.Revision)
		}
		if e.Reason != "" {
			text += " reason=" + e.Reason
		}
		if e.Message != "" {
			text += ": " + e.Message
		}
	default:
		if p.kind != "" || p.name != "" {
			return "", false
		}
		return p.raw(subject, data, now)
	}
	return p.line(subject, decoded, kind, name, text, now)
}

// line renders one decoded event, or reports false when the filters drop
// it.
func (p *eventPrinter) line(subject string, decoded any, kind, name, text string, now time.Time) (string, bool) {
	if (p.kind != "" && !strings.EqualFold(kind, p.kind)) || (p.name != "" && name != p.name) {
		return "", false
	}
	if p.json {
		data, _ := json.Marshal(map[string]any{"subject": subject, "event": decoded})
		return string(data) + "\n", true
	}
	return fmt.Sprintf("%s  %-24s %s\n", now.Format("15:04:05.000"), subject, text), true
}

// raw renders any other msgpack payload (KV values under $KV.>, for one)
// as JSON, or its size when it is not msgpack.
func (p *eventPrinter) raw(subject string, data []byte, now time.Time) (string, bool) {
	var v any
	text := fmt.Sprintf("<%d bytes>", len(data))
	if len(data) > 0 && schemas.Unmarshal(data, &v) == nil {
		if j, err := json.Marshal(v); err == nil {
			text = string(j)
		}
	}
	if p.json {
		j, _ := json.Marshal(map[string]any{"subject": subject, "data": json.RawMessage(text)})
		if !json.Valid([]byte(text)) {
			j, _ = json.Marshal(map[string]any{"subject": subject, "size": len(data)})
		}
		return string(j) + "\n", true
	}
	return fmt.Sprintf("%s  %-24s %s\n", now.Format("15:04:05.000"), subject, text), true
}
