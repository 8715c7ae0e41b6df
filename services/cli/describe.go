package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/cli/client"
)

func cmdDescribe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := newFlagSet("describe", stderr, "describe pod|rs|node NAME")
	o.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	kind, name, rest, err := splitRef(pos)
	if err != nil || len(rest) > 0 {
		fs.Usage()
		return errors.New("describe: want pod NAME, rs NAME or node NAME")
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	d := &describer{out: stdout, now: time.Now()}
	path := "/" + kind + "/" + url.PathEscape(name)
	var evKind string
	switch kind {
	case "pods":
		var p schemas.Pod
		if err := c.Do(ctx, "GET", path, nil, &p); err != nil {
			return err
		}
		d.pod(&p)
		evKind = schemas.KindPod
	case "replicasets":
		var rs schemas.ReplicaSet
		if err := c.Do(ctx, "GET", path, nil, &rs); err != nil {
			return err
		}
		var pods []schemas.Pod
		if err := c.Do(ctx, "GET", "/pods", nil, &pods); err != nil {
			return err
		}
		d.rs(&rs, pods)
		evKind = schemas.KindReplicaSet
	case "nodes":
		var n schemas.Node
		if err := c.Do(ctx, "GET", path, nil, &n); err != nil {
			return err
		}
		var pods []schemas.Pod
		if err := c.Do(ctx, "GET", "/pods?nodeName="+url.QueryEscape(name), nil, &pods); err != nil {
			return err
		}
		d.node(&n, pods)
		evKind = schemas.KindNode
	default:
		return fmt.Errorf("describe: %s cannot be described (pods, rs and nodes can)", kind)
	}
	return d.events(ctx, c, evKind, name)
}

// describer prints "Key:  value" lines, kubectl describe style.
type describer struct {
	out io.Writer
	now time.Time
}

func (d *describer) kv(key string, val any) {
	fmt.Fprintf(d.out, "%-22s%v\n", key+":", val)
}

func (d *describer) time(key string, t *time.Time) {
	if t != nil && !t.IsZero() {
		d.kv(key, fmt.Sprintf("%s (%s ago)", t.Format(time.RFC3339), age(*t, d.now)))
	}
}

func (d *describer) pod(p *schemas.Pod) {
	d.kv("Name", p.Name)
	d.kv("Labels", labelString(p.Labels))
	d.kv("Node", orNone(p.NodeName))
	d.kv("Owner", orNone(p.Owner))
	d.kv("Created", fmt.Sprintf("%s (%s ago)", p.CreatedAt.Format(time.RFC3339), age(p.CreatedAt, d.now)))
	d.kv("Status", podStatus(p))
	if p.Reason != "" {
		d.kv("Reason", p.Reason)
	}
	if p.Message != "" {
		d.kv("Message", p.Message)
	}
	d.time("Started", p.StartedAt)
	d.time("Finished", p.FinishedAt)
	if p.ExitCode != nil {
		d.kv("Exit Code", *p.ExitCode)
	}
	d.kv("Restart Count", p.RestartCount)
	d.time("Deletion Requested", p.DeletionTimestamp)
	d.kv("Container ID", orNone(p.ContainerID))
	d.kv("Resource Version", p.ResourceVersion)
	fmt.Fprintln(d.out, "Spec:")
	d.spec("  ", p.ContainerName, &p.PodSpec)
}

func (d *describer) spec(indent, container string, s *schemas.PodSpec) {
	kv := func(k string, v any) { fmt.Fprintf(d.out, "%s%-20s%v\n", indent, k+":", v) }
	if container != "" {
		kv("Container", container)
	}
	kv("Image", s.Image)
	if len(s.Command) > 0 {
		kv("Command", quoteArgs(s.Command))
	} else {
		kv("Command", "<the image's>")
	}
	for i, e := range s.Env {
		k := ""
		if i == 0 {
			k = "Environment"
		}
		kv(k, e.Name+"="+e.Value)
	}
	if s.Resources.CPU != "" || s.Resources.Memory != "" || s.Resources.Pids != 0 {
		l := fmt.Sprintf("cpu=%s memory=%s", orNone(s.Resources.CPU), orNone(s.Resources.Memory))
		if s.Resources.Pids != 0 {
			l += fmt.Sprintf(" pids=%d", s.Resources.Pids)
		}
		kv("Limits", l)
	}
	kv("Restart Policy", string(orDefault(s.RestartPolicy, schemas.RestartAlways)))
	kv("Grace Period", s.GracePeriod())
	if len(s.NodeSelector) > 0 {
		kv("Node Selector", labelString(s.NodeSelector))
	}
	if s.HostNetwork {
		kv("Host Network", true)
	}
}

func orDefault[T ~string](v, def T) T {
	if v == "" {
		return def
	}
	return v
}

func quoteArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$") {
			a = strconv.Quote(a)
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

func (d *describer) rs(rs *schemas.ReplicaSet, pods []schemas.Pod) {
	d.kv("Name", rs.Name)
	d.kv("Labels", labelString(rs.Labels))
	d.kv("Selector", labelString(rs.Selector))
	d.kv("Created", fmt.Sprintf("%s (%s ago)", rs.CreatedAt.Format(time.RFC3339), age(rs.CreatedAt, d.now)))
	d.kv("Replicas", fmt.Sprintf("%d desired, %d current, %d ready", rs.DesiredCount, rs.CurrentCount, rs.ReadyCount))
	d.kv("Resource Version", rs.ResourceVersion)
	fmt.Fprintln(d.out, "Pod Template:")
	d.kv("  Labels", labelString(rs.PodLabels()))
	d.spec("  ", rs.Template.Name, &rs.Template.PodSpec)
	t := &table{header: podHeader}
	for i := range pods {
		if pods[i].Owner == rs.Name && pods[i].OwnerUID == rs.UID {
			t.add(podRow(&pods[i], false, d.now)...)
		}
	}
	d.table("Pods", t)
}

func (d *describer) node(n *schemas.Node, pods []schemas.Pod) {
	d.kv("Name", n.Name)
	d.kv("Labels", labelString(n.Labels))
	d.kv("Status", nodeStatus(n))
	if n.Reason != "" {
		d.kv("Reason", n.Reason)
	}
	d.kv("Hostname", orNone(n.Hostname))
	d.kv("Last Heartbeat", fmt.Sprintf("%s (%s ago)", n.LastHeartbeat.Format(time.RFC3339), age(n.LastHeartbeat, d.now)))
	d.kv("Capacity", fmt.Sprintf("cpu=%s memory=%s pods=%d", orNone(n.Capacity.CPU), orNone(n.Capacity.Memory), n.Capacity.Pods))
	t := &table{header: podHeader}
	for i := range pods {
		t.add(podRow(&pods[i], false, d.now)...)
	}
	d.table("Pods", t)
}

func (d *describer) table(title string, t *table) {
	if len(t.rows) == 0 {
		fmt.Fprintf(d.out, "%-22s<none>\n", title+":")
		return
	}
	fmt.Fprintf(d.out, "%s:\n", title)
	var b strings.Builder
	_ = t.write(&b)
	for l := range strings.Lines(b.String()) {
		fmt.Fprint(d.out, "  "+l)
	}
}

// events prints the object's events from GET /events?kind=&name=.
func (d *describer) events(ctx context.Context, c *client.Client, kind, name string) error {
	var evs []schemas.ObjectEvent
	q := url.Values{"kind": {kind}, "name": {name}}
	if err := c.Do(ctx, "GET", "/events?"+q.Encode(), nil, &evs); err != nil {
		return err
	}
	t := &table{header: []string{"AGE", "TYPE", "REASON", "FROM", "MESSAGE"}}
	for _, e := range evs {
		t.add(age(e.Time, d.now), e.Type, e.Reason, orNone(e.Component), e.Message)
	}
	d.table("Events", t)
	return nil
}
