package kubelet

import (
	"context"
	"testing"

	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
)

// Garbage written over the node's object does not stop the heartbeat: the
// kubelet replaces it, and the node stays Ready.
func TestHeartbeatReplacesMalformedNode(t *testing.T) {
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), nil)
	k, err := New(Config{NodeName: "n1", Logger: bustest.Logger(t), Node: NodeInfo{MaxPods: 5}}, conn, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := k.heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	for _, garbage := range [][]byte{{0xc1}, {0x80}} {
		if _, err := conn.Nodes.KV().Put(ctx, "n1", garbage); err != nil {
			t.Fatal(err)
		}
		if err := k.heartbeat(ctx); err != nil {
			t.Fatalf("heartbeat over %x: %v", garbage, err)
		}
		n, err := conn.Nodes.Get(ctx, "n1")
		if err != nil {
			t.Fatal(err)
		}
		if n.Status != schemas.NodeReady || n.Capacity.Pods != 5 {
			t.Fatalf("node after heartbeat over %x: %+v", garbage, n)
		}
	}
}
