package kubelet

import (
	"context"
	"testing"

	"github.com/miniku/miniku/bus/bustest"
)

func TestNodeInfoCapacity(t *testing.T) {
	c, err := NodeInfo{CPU: "1500m", Memory: "512Mi", MaxPods: 7}.Capacity()
	if err != nil || c.CPU != "1500m" || c.Memory != "512Mi" || c.Pods != 7 {
		t.Fatalf("got %+v %v", c, err)
	}
	c, err = NodeInfo{}.Capacity()
	if err != nil || c.CPUMilli() < 1000 || c.MemoryBytes() < 1<<20 || c.Pods != DefaultMaxPods {
		t.Fatalf("host defaults: got %+v %v", c, err)
	}
	for _, bad := range []NodeInfo{{CPU: "lots"}, {CPU: "0"}, {Memory: "-1Gi"}, {MaxPods: -1}} {
		if _, err := bad.Capacity(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func TestParseLabels(t *testing.T) {
	l, err := ParseLabels("disk=ssd, zone=eu-1,")
	if err != nil || len(l) != 2 || l["disk"] != "ssd" || l["zone"] != "eu-1" {
		t.Fatalf("got %v %v", l, err)
	}
	for _, bad := range []string{"disk", "=x", "a=b c"} {
		if _, err := ParseLabels(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// The heartbeat registers the node with its capacity and labels, and keeps
// labels others set.
func TestHeartbeatReportsCapacityAndLabels(t *testing.T) {
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), nil)
	k, err := New(Config{NodeName: "n1", Logger: bustest.Logger(t),
		Node: NodeInfo{CPU: "2", Memory: "1Gi", MaxPods: 20, Labels: map[string]string{"disk": "ssd"}}}, conn, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := k.heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := conn.Nodes.Get(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if n.Capacity.CPU != "2" || n.Capacity.Memory != "1Gi" || n.Capacity.Pods != 20 || n.Labels["disk"] != "ssd" {
		t.Fatalf("node %+v", n)
	}
	n.Labels["team"] = "a"
	if err := conn.Nodes.Update(ctx, n); err != nil {
		t.Fatal(err)
	}
	if err := k.heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	n, _ = conn.Nodes.Get(ctx, "n1")
	if n.Labels["team"] != "a" || n.Labels["disk"] != "ssd" {
		t.Fatalf("labels after heartbeat: %v", n.Labels)
	}
}
