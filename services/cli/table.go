package cli

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miniku/miniku/schemas"
)

// table is rows of cells printed with columns aligned, as kubectl does:
// left-aligned, separated by three spaces, no trailing blanks.
type table struct {
	header []string
	rows   [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

// widths returns each column's width over the header and all rows.
func (t *table) widths() []int {
	w := make([]int, len(t.header))
	for _, r := range append([][]string{t.header}, t.rows...) {
		for i, c := range r {
			if i < len(w) && len(c) > w[i] {
				w[i] = len(c)
			}
		}
	}
	return w
}

func (t *table) write(out io.Writer) error {
	w := t.widths()
	if err := writeRow(out, w, t.header); err != nil {
		return err
	}
	for _, r := range t.rows {
		if err := writeRow(out, w, r); err != nil {
			return err
		}
	}
	return nil
}

// writeRow pads cells to widths (a longer cell pushes the rest right).
func writeRow(out io.Writer, widths []int, cells []string) error {
	var b strings.Builder
	for i, c := range cells {
		if i == len(cells)-1 {
			b.WriteString(c)
			break
		}
		b.WriteString(c)
		if i < len(widths) {
			b.WriteString(strings.Repeat(" ", max(widths[i]-len(c), 0)))
		}
		b.WriteString("   ")
	}
	b.WriteByte('\n')
	_, err := io.WriteString(out, b.String())
	return err
}

// age formats a duration like kubectl: 45s, 3m12s, 5h4m, 3d2h, 40d.
func age(since time.Time, now time.Time) string {
	if since.IsZero() {
		return "<unknown>"
	}
	d := now.Sub(since)
	if d < 0 {
		d = 0
	}
	switch {
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 10*time.Minute:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 3*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 8*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	case d < 8*24*time.Hour:
		return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
	}
	return fmt.Sprintf("%dd", int(d.Hours())/24)
}

// podStatus is the STATUS column: kubectl shows Terminating, then a
// container's reason (CrashLoopBackOff, ErrImagePull, Completed, Error,
// OOMKilled) over the phase.
func podStatus(p *schemas.Pod) string {
	switch {
	case p.DeletionTimestamp != nil:
		return "Terminating"
	case p.Reason == "CrashLoopBackOff":
		return p.Reason
	case p.Reason != "" && p.Status != schemas.PodRunning:
		return p.Reason
	}
	return string(p.Status)
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// labelString prints labels sorted: a=1,b=2.
func labelString(l map[string]string) string {
	keys := slices.Sorted(maps.Keys(l))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return orNone(strings.Join(parts, ","))
}

var podHeader = []string{"NAME", "STATUS", "RESTARTS", "NODE", "AGE"}
var podWideHeader = append(slices.Clone(podHeader), "IMAGE", "OWNER", "CONTAINER")

func podRow(p *schemas.Pod, wide bool, now time.Time) []string {
	r := []string{p.Name, podStatus(p), strconv.Itoa(p.RestartCount), orNone(p.NodeName), age(p.CreatedAt, now)}
	if wide {
		cid := p.ContainerID
		if len(cid) > 12 {
			cid = cid[:12]
		}
		r = append(r, p.Image, orNone(p.Owner), orNone(cid))
	}
	return r
}

var rsHeader = []string{"NAME", "DESIRED", "CURRENT", "READY", "AGE"}
var rsWideHeader = append(slices.Clone(rsHeader), "IMAGE", "SELECTOR")

func rsRow(rs *schemas.ReplicaSet, wide bool, now time.Time) []string {
	r := []string{rs.Name, strconv.Itoa(rs.DesiredCount), strconv.Itoa(rs.CurrentCount), strconv.Itoa(rs.ReadyCount), age(rs.CreatedAt, now)}
	if wide {
		r = append(r, rs.Template.Image, labelString(rs.Selector))
	}
	return r
}

var nodeHeader = []string{"NAME", "STATUS", "PODS", "CPU", "MEMORY", "AGE"}
var nodeWideHeader = append(slices.Clone(nodeHeader), "HEARTBEAT", "HOSTNAME", "LABELS")

// nodeStatus is Ready or NotReady, plus SchedulingDisabled when cordoned.
func nodeStatus(n *schemas.Node) string {
	s := string(n.Status)
	if n.Unschedulable {
		s += ",SchedulingDisabled"
	}
	return s
}

// nodeRow: PODS is the pods bound to the node over its capacity (pods < 0
// when not known, in watches).
func nodeRow(n *schemas.Node, pods int, wide bool, now time.Time) []string {
	count := "?"
	if pods >= 0 {
		count = strconv.Itoa(pods)
	}
	if n.Capacity.Pods > 0 {
		count += "/" + strconv.Itoa(n.Capacity.Pods)
	}
	r := []string{n.Name, nodeStatus(n), count, orNone(n.Capacity.CPU), orNone(n.Capacity.Memory), age(n.CreatedAt, now)}
	if wide {
		r = append(r, age(n.LastHeartbeat, now)+" ago", orNone(n.Hostname), labelString(n.Labels))
	}
	return r
}

var eventHeader = []string{"AGE", "TYPE", "REASON", "OBJECT", "MESSAGE"}
var eventWideHeader = []string{"AGE", "TYPE", "REASON", "OBJECT", "NODE", "COMPONENT", "MESSAGE"}

func eventRow(e *schemas.ObjectEvent, wide bool, now time.Time) []string {
	obj := strings.ToLower(e.Kind) + "/" + e.Name
	if wide {
		return []string{age(e.Time, now), e.Type, e.Reason, obj, orNone(e.Node), orNone(e.Component), e.Message}
	}
	return []string{age(e.Time, now), e.Type, e.Reason, obj, e.Message}
}
