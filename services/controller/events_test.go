package controller_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/controller"
)

func reasons(t *testing.T, conn *bus.Conn, kind, name string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := conn.EventsStream().OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{bus.EventSubject(kind, name)}})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for {
		msgs, err := cons.FetchNoWait(100)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range msgs.Messages() {
			n++
			var ev schemas.ObjectEvent
			if err := schemas.Unmarshal(m.Data(), &ev); err != nil {
				t.Fatal(err)
			}
			out = append(out, ev.Type+" "+ev.Reason)
		}
		if n == 0 {
			return out
		}
	}
}

// A node whose heartbeat stops gets a NodeNotReady event, and its pods an
// Evicted event when they are failed as NodeLost. The controller runs under
// a lease, as `miniku controller` does.
func TestNodeLossEvents(t *testing.T) {
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	lease, err := conn.NewLease(ctx, bus.LeaseConfig{Name: "controller", TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c, err := controller.New(controller.Config{Logger: bustest.Logger(t), NodeGrace: 500 * time.Millisecond,
		EvictionTimeout: 500 * time.Millisecond, Elector: lease}, conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Nodes.Create(ctx, &schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: "n1"}, Status: schemas.NodeReady, LastHeartbeat: time.Now()}); err != nil {
		t.Fatal(err)
	}
	pod := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "p1", UID: "u1"}, NodeName: "n1", Status: schemas.PodRunning,
		PodSpec: schemas.PodSpec{Image: "busybox", Command: []string{"true"}}}
	if err := conn.Pods.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	bustest.Eventually(t, 30*time.Second, func() error {
		if got := reasons(t, conn, schemas.KindNode, "n1"); len(got) != 1 || got[0] != "Warning NodeNotReady" {
			return fmt.Errorf("node events %q", got)
		}
		if got := reasons(t, conn, schemas.KindPod, "p1"); len(got) != 1 || got[0] != "Warning Evicted" {
			return fmt.Errorf("pod events %q", got)
		}
		return nil
	})
}
