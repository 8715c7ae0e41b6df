package cli

import (
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/miniku/miniku/schemas"
)

func TestTableAligned(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	del := now
	pods := []schemas.Pod{
		{ObjectMeta: schemas.ObjectMeta{Name: "web-1a2b3c4d", CreatedAt: now.Add(-90 * time.Second)}, Status: schemas.PodRunning, NodeName: "node-1", RestartCount: 2},
		{ObjectMeta: schemas.ObjectMeta{Name: "x", CreatedAt: now.Add(-5 * time.Hour)}, Status: schemas.PodPending},
		{ObjectMeta: schemas.ObjectMeta{Name: "crash", CreatedAt: now.Add(-3 * 24 * time.Hour)}, Status: schemas.PodRunning, Reason: "CrashLoopBackOff", NodeName: "node-2"},
		{ObjectMeta: schemas.ObjectMeta{Name: "gone", CreatedAt: now, DeletionTimestamp: &del}, Status: schemas.PodRunning},
		{ObjectMeta: schemas.ObjectMeta{Name: "done"}, Status: schemas.PodSucceeded, Reason: "Completed"},
	}
	tb := &table{header: podHeader}
	for i := range pods {
		tb.add(podRow(&pods[i], false, now)...)
	}
	var b strings.Builder
	if err := tb.write(&b); err != nil {
		t.Fatal(err)
	}
	want := `NAME           STATUS             RESTARTS   NODE     AGE
web-1a2b3c4d   Running            2          node-1   90s
x              Pending            0          <none>   5h0m
crash          CrashLoopBackOff   0          node-2   3d0h
gone           Terminating        0          <none>   0s
done           Completed          0          <none>   <unknown>
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestAge(t *testing.T) {
	now := time.Now()
	for d, want := range map[time.Duration]string{
		0: "0s", 119 * time.Second: "119s", 3*time.Minute + 12*time.Second: "3m12s", 42 * time.Minute: "42m",
		5*time.Hour + 4*time.Minute: "5h4m", 30 * time.Hour: "30h", 50 * time.Hour: "2d2h", 40 * 24 * time.Hour: "40d",
		-time.Second: "0s",
	} {
		if got := age(now.Add(-d), now); got != want {
			t.Errorf("age(%v) = %s, want %s", d, got, want)
		}
	}
}

func TestNodeAndRSRows(t *testing.T) {
	now := time.Now()
	n := schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: "node-1", CreatedAt: now}, Status: schemas.NodeReady, Unschedulable: true,
		Capacity: schemas.ResourceList{CPU: "2", Memory: "4Gi", Pods: 110}}
	if got := nodeRow(&n, 3, false, now); !reflect.DeepEqual(got, []string{"node-1", "Ready,SchedulingDisabled", "3/110", "2", "4Gi", "0s"}) {
		t.Errorf("node row %q", got)
	}
	rs := schemas.ReplicaSet{ObjectMeta: schemas.ObjectMeta{Name: "web", CreatedAt: now}, DesiredCount: 3, CurrentCount: 2, ReadyCount: 1,
		Selector: map[string]string{"b": "2", "a": "1"}, Template: schemas.PodTemplate{PodSpec: schemas.PodSpec{Image: "alpine"}}}
	if got := rsRow(&rs, true, now); !reflect.DeepEqual(got, []string{"web", "3", "2", "1", "0s", "alpine", "a=1,b=2"}) {
		t.Errorf("rs row %q", got)
	}
}

func TestParseArgsInterleaved(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o := fs.String("o", "", "")
	w := fs.Bool("w", false, "")
	pos, err := parseArgs(fs, []string{"pods", "-o", "wide", "web", "-w", "--", "-x", "y"})
	if err != nil {
		t.Fatal(err)
	}
	if *o != "wide" || !*w || !reflect.DeepEqual(pos, []string{"pods", "web", "-x", "y"}) {
		t.Fatalf("o=%q w=%v pos=%q", *o, *w, pos)
	}
	sel, err := parseSelector("app=web, tier==db")
	if err != nil || !reflect.DeepEqual(sel, map[string]string{"app": "web", "tier": "db"}) {
		t.Fatalf("selector %v %v", sel, err)
	}
	if _, err := parseSelector("app"); err == nil {
		t.Fatal("selector without = accepted")
	}
}

func TestEventFormat(t *testing.T) {
	p := &eventPrinter{kind: schemas.KindPod}
	data, _ := schemas.Marshal(schemas.Event{Type: "running", Kind: schemas.KindPod, Name: "web-1", Node: "node-1", Revision: 7})
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	line, ok := p.format("pod.running", data, now)
	if !ok || line != "12:00:00.000  pod.running              pod/web-1 node=node-1 rev=7\n" {
		t.Fatalf("line %q %v", line, ok)
	}
	nodeEv, _ := schemas.Marshal(schemas.Event{Type: "ready", Kind: schemas.KindNode, Name: "node-1"})
	if _, ok := p.format("node.ready", nodeEv, now); ok {
		t.Fatal("--kind pod let a node event through")
	}
	hb, _ := schemas.Marshal(schemas.Event{Type: "heartbeat", Kind: schemas.KindNode, Name: "node-1"})
	if _, ok := (&eventPrinter{}).format("node.heartbeat.node-1", hb, now); ok {
		t.Fatal("heartbeat printed without --heartbeats")
	}
	oe, _ := schemas.Marshal(schemas.ObjectEvent{Type: "Normal", Reason: "Scheduled", Kind: schemas.KindPod, Name: "web-1", Component: "scheduler", Message: "to node-1"})
	line, ok = (&eventPrinter{json: true}).format("event.pod.web-1", oe, now)
	if !ok || !strings.Contains(line, `"subject":"event.pod.web-1"`) || !strings.Contains(line, `"reason":"Scheduled"`) {
		t.Fatalf("json line %q", line)
	}
	// Events recorded together arrive as one message: a line each.
	together, _ := schemas.MarshalEvents([]schemas.ObjectEvent{
		{Type: "Normal", Reason: "Created", Kind: schemas.KindPod, Name: "web-1", Component: "kubelet"},
		{Type: "Normal", Reason: "Started", Kind: schemas.KindPod, Name: "web-1", Component: "kubelet"},
	})
	line, ok = p.format("event.pod.web-1", together, now)
	want := "12:00:00.000  event.pod.web-1          Normal Created pod/web-1 from=kubelet\n" +
		"12:00:00.000  event.pod.web-1          Normal Started pod/web-1 from=kubelet\n"
	if !ok || line != want {
		t.Fatalf("two events in one message:\n%q\nwant\n%q", line, want)
	}
}
