package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/cli/client"
)

const getUsage = `get pods|rs|nodes|events [NAME] [-l app=x] [-o wide|json|yaml] [-w]`

type getCmd struct {
	kind, name, selector, output string
	watch                        bool
	// events only
	forKind, forName string
	limit            int

	listedNodes []schemas.Node // the nodes the table shows, for -w
}

// nodeKey is what a node's row shows apart from ages and pod counts: a
// watch prints a node again only when it changes (not at each heartbeat).
func nodeKey(n *schemas.Node) string {
	return fmt.Sprint(nodeStatus(n), n.Capacity, n.Labels, n.Hostname)
}

func cmdGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	var g getCmd
	fs := newFlagSet("get", stderr, getUsage)
	o.register(fs)
	fs.StringVar(&g.selector, "l", "", "label selector, e.g. app=web,tier=db")
	fs.StringVar(&g.selector, "selector", "", "same as -l")
	fs.StringVar(&g.output, "o", "", "output: wide, json or yaml (default: a table)")
	fs.BoolVar(&g.watch, "w", false, "after the list, follow changes (the watch API)")
	fs.BoolVar(&g.watch, "watch", false, "same as -w")
	fs.StringVar(&g.forKind, "for", "", "events only: of one object, e.g. pod/web-1a2b3c4d")
	fs.IntVar(&g.limit, "limit", 0, "events only: the newest N (default: the server's, 500)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 || len(pos) > 2 {
		fs.Usage()
		return errors.New("get: want a resource (pods, rs, nodes or events) and an optional name")
	}
	if g.kind, err = kindOf(pos[0]); err != nil {
		return err
	}
	if len(pos) == 2 {
		g.name = pos[1]
	}
	switch g.output {
	case "", "wide", "json", "yaml":
	default:
		return fmt.Errorf("-o %q: want wide, json or yaml", g.output)
	}
	sel, err := parseSelector(g.selector)
	if err != nil {
		return err
	}
	if g.forKind != "" {
		k, n, ok := strings.Cut(g.forKind, "/")
		if !ok {
			return fmt.Errorf("--for %q: want KIND/NAME, e.g. pod/web-1a2b3c4d", g.forKind)
		}
		g.forKind, g.forName = k, n
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	return g.run(ctx, c, sel, stdout)
}

// parseSelector parses k=v,k2=v2 (== also accepted).
func parseSelector(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		v = strings.TrimPrefix(v, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("label selector %q: want key=value[,key=value]", s)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, nil
}

func matches(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func (g *getCmd) listPath() string {
	q := url.Values{}
	switch g.kind {
	case "pods":
		if g.selector != "" {
			q.Set("labelSelector", g.selector)
		}
	case "events":
		if g.forKind != "" {
			q.Set("kind", g.forKind)
			q.Set("name", g.forName)
		} else if g.name != "" {
			q.Set("name", g.name)
		}
		if g.limit > 0 {
			q.Set("limit", fmt.Sprint(g.limit))
		}
	}
	p := "/" + g.kind
	if g.name != "" && g.kind != "events" {
		p += "/" + url.PathEscape(g.name)
	}
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	return p
}

// objects holds one list of any kind.
type objects struct {
	pods   []schemas.Pod
	rss    []schemas.ReplicaSet
	nodes  []schemas.Node
	events []schemas.ObjectEvent
}

func (g *getCmd) fetch(ctx context.Context, c *client.Client, sel map[string]string) (objects, any, error) {
	var obj objects
	path := g.listPath()
	single := g.name != "" && g.kind != "events"
	var err error
	switch g.kind {
	case "pods":
		if single {
			var p schemas.Pod
			err = c.Do(ctx, "GET", path, nil, &p)
			obj.pods = []schemas.Pod{p}
			return obj, p, err
		}
		err = c.Do(ctx, "GET", path, nil, &obj.pods)
		return obj, obj.pods, err
	case "replicasets":
		if single {
			var rs schemas.ReplicaSet
			err = c.Do(ctx, "GET", path, nil, &rs)
			obj.rss = []schemas.ReplicaSet{rs}
			return obj, rs, err
		}
		var all []schemas.ReplicaSet
		err = c.Do(ctx, "GET", path, nil, &all)
		for _, rs := range all {
			if matches(sel, rs.Labels) {
				obj.rss = append(obj.rss, rs)
			}
		}
		return obj, nonNil(obj.rss), err
	case "nodes":
		if single {
			var n schemas.Node
			err = c.Do(ctx, "GET", path, nil, &n)
			obj.nodes = []schemas.Node{n}
			return obj, n, err
		}
		var all []schemas.Node
		err = c.Do(ctx, "GET", path, nil, &all)
		for _, n := range all {
			if matches(sel, n.Labels) {
				obj.nodes = append(obj.nodes, n)
			}
		}
		return obj, nonNil(obj.nodes), err
	default:
		err = c.Do(ctx, "GET", path, nil, &obj.events)
		return obj, nonNil(obj.events), err
	}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// podsPerNode counts the pods bound to each node that still hold it.
func podsPerNode(ctx context.Context, c *client.Client) (map[string]int, error) {
	var pods []schemas.Pod
	if err := c.Do(ctx, "GET", "/pods", nil, &pods); err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, p := range pods {
		if p.NodeName != "" && !p.Status.Terminal() {
			out[p.NodeName]++
		}
	}
	return out, nil
}

func (g *getCmd) run(ctx context.Context, c *client.Client, sel map[string]string, out io.Writer) error {
	if g.watch && (g.output == "json" || g.output == "yaml") {
		return g.watchRaw(ctx, c, sel, out)
	}
	obj, raw, err := g.fetch(ctx, c, sel)
	if err != nil {
		return err
	}
	switch g.output {
	case "json":
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(raw)
	case "yaml":
		data, err := yaml.Marshal(raw)
		if err != nil {
			return err
		}
		_, err = out.Write(data)
		return err
	}
	wide := g.output == "wide"
	now := time.Now()
	t := &table{}
	var counts map[string]int
	var lastRV uint64
	switch g.kind {
	case "pods":
		t.header = pick(wide, podWideHeader, podHeader)
		for i := range obj.pods {
			t.add(podRow(&obj.pods[i], wide, now)...)
			lastRV = max(lastRV, obj.pods[i].ResourceVersion)
		}
	case "replicasets":
		t.header = pick(wide, rsWideHeader, rsHeader)
		for i := range obj.rss {
			t.add(rsRow(&obj.rss[i], wide, now)...)
			lastRV = max(lastRV, obj.rss[i].ResourceVersion)
		}
	case "nodes":
		t.header = pick(wide, nodeWideHeader, nodeHeader)
		if counts, err = podsPerNode(ctx, c); err != nil {
			return err
		}
		g.listedNodes = obj.nodes
		for i := range obj.nodes {
			t.add(nodeRow(&obj.nodes[i], counts[obj.nodes[i].Name], wide, now)...)
			lastRV = max(lastRV, obj.nodes[i].ResourceVersion)
		}
	case "events":
		t.header = pick(wide, eventWideHeader, eventHeader)
		for i := range obj.events {
			t.add(eventRow(&obj.events[i], wide, now)...)
			lastRV = max(lastRV, obj.events[i].Seq)
		}
	}
	if len(t.rows) == 0 && !g.watch {
		_, err := fmt.Fprintf(out, "No %s found.\n", g.kind)
		return err
	}
	if err := t.write(out); err != nil {
		return err
	}
	if !g.watch {
		return nil
	}
	var shown []string
	for _, r := range t.rows {
		shown = append(shown, r[0])
	}
	return g.watchTable(ctx, c, sel, lastRV, shown, t.widths(), wide, out)
}

func pick(wide bool, a, b []string) []string {
	if wide {
		return a
	}
	return b
}

// watchEvent is one line of a watch.
type watchEvent struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

func (g *getCmd) watchPath(rv uint64) string {
	p := g.listPath()
	if g.name != "" && g.kind != "events" {
		p = "/" + g.kind // the watch API watches collections; the name is filtered here
		if g.kind == "pods" && g.selector != "" {
			p += "?labelSelector=" + url.QueryEscape(g.selector)
		}
	}
	sep := "?"
	if strings.Contains(p, "?") {
		sep = "&"
	}
	p += sep + "watch=true"
	if rv > 0 {
		p += fmt.Sprintf("&resourceVersion=%d", rv)
	}
	return p
}

// watchLines calls f with every line of the watch until ctx ends or the
// server closes it.
func watchLines(ctx context.Context, c *client.Client, path string, f func(watchEvent) error) error {
	body, err := c.Stream(ctx, path)
	if err != nil {
		return err
	}
	defer body.Close()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var ev watchEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("watch %s: bad line %q: %w", path, sc.Text(), err)
		}
		if ev.Type == "BOOKMARK" {
			continue
		}
		if err := f(ev); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil // interrupted: a normal end of a watch
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	return nil
}

// watchRaw prints the watch's own lines (-w -o json|yaml), filtered.
func (g *getCmd) watchRaw(ctx context.Context, c *client.Client, sel map[string]string, out io.Writer) error {
	return watchLines(ctx, c, g.watchPath(0), func(ev watchEvent) error {
		var meta struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		}
		_ = json.Unmarshal(ev.Object, &meta)
		if g.kind != "events" && ((g.name != "" && meta.Name != g.name) || (ev.Type != "DELETED" && !matches(sel, meta.Labels))) {
			return nil
		}
		if g.output == "yaml" {
			data, err := yaml.Marshal(ev)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(out, "---\n%s", data)
			return err
		}
		data, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", data)
		return err
	})
}

// watchTable prints a row per change, aligned with the table above it.
func (g *getCmd) watchTable(ctx context.Context, c *client.Client, sel map[string]string, rv uint64, shown []string, widths []int, wide bool, out io.Writer) error {
	// Nodes change at every heartbeat; print a node only when what the
	// table shows (other than ages) changed.
	lastNode := map[string]string{}
	for _, n := range g.listedNodes {
		lastNode[n.Name] = nodeKey(&n)
	}
	// A resumed watch sends DELETED for objects changed while away that
	// do not match the selector, known or not: print only those shown.
	known := map[string]bool{}
	for _, name := range shown {
		known[name] = true
	}
	return watchLines(ctx, c, g.watchPath(rv), func(ev watchEvent) error {
		var meta struct {
			Name string `json:"name"`
		}
		if g.kind != "events" && json.Unmarshal(ev.Object, &meta) == nil {
			if ev.Type == "DELETED" {
				if !known[meta.Name] {
					return nil
				}
				delete(known, meta.Name)
			} else {
				known[meta.Name] = true
			}
		}
		now := time.Now()
		var row []string
		switch g.kind {
		case "pods":
			var p schemas.Pod
			if err := json.Unmarshal(ev.Object, &p); err != nil {
				return err
			}
			if g.name != "" && p.Name != g.name {
				return nil
			}
			row = podRow(&p, wide, now)
			if ev.Type == "DELETED" {
				row = []string{p.Name, "Deleted"}
			}
		case "replicasets":
			var rs schemas.ReplicaSet
			if err := json.Unmarshal(ev.Object, &rs); err != nil {
				return err
			}
			if (g.name != "" && rs.Name != g.name) || (ev.Type != "DELETED" && !matches(sel, rs.Labels)) {
				return nil
			}
			row = rsRow(&rs, wide, now)
			if ev.Type == "DELETED" {
				row = []string{rs.Name, "Deleted"}
			}
		case "nodes":
			var n schemas.Node
			if err := json.Unmarshal(ev.Object, &n); err != nil {
				return err
			}
			if (g.name != "" && n.Name != g.name) || (ev.Type != "DELETED" && !matches(sel, n.Labels)) {
				return nil
			}
			row = nodeRow(&n, -1, wide, now)
			if ev.Type == "DELETED" {
				row = []string{n.Name, "Deleted"}
			}
			key := nodeKey(&n)
			if ev.Type == "DELETED" {
				key = "deleted"
			}
			if lastNode[n.Name] == key {
				return nil
			}
			lastNode[n.Name] = key
		case "events":
			var e schemas.ObjectEvent
			if err := json.Unmarshal(ev.Object, &e); err != nil {
				return err
			}
			row = eventRow(&e, wide, now)
		}
		return writeRow(out, widths, row)
	})
}
