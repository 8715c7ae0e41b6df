package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas"
)

// A NATS restart on the same data dir loses nothing, and every component
// resumes at once: a replicaset created right after the restart (possibly
// before the scheduler, controller and kubelets have reconnected, so its
// events reach no one) still gets its pods running.
func TestNATSRestart(t *testing.T) {
	requireRoot(t)
	c, a := startCluster(t, []string{"node-a", "node-b"}, 1)
	if code, body := a.do("POST", "/replicasets", chaosRS("before", 2)); code != 201 {
		t.Fatalf("POST before: %d %s", code, body)
	}
	var before []schemas.Pod
	eventually(t, 60*time.Second, func() (err error) { before, err = running(a, "before", 2); return err })

	c.kill("nats")
	// While NATS is down the API says so rather than hanging or lying.
	eventually(t, 30*time.Second, func() error {
		if code, body := a.do("POST", "/replicasets", chaosRS("during", 1)); code != 503 {
			return fmt.Errorf("POST during the outage: %d %s, want 503", code, body)
		}
		return nil
	})
	c.restart("nats")
	restarted := time.Now()
	// The first moment the store answers, create: the other components
	// may not have noticed the restart yet.
	eventually(t, 60*time.Second, func() error {
		code, body := a.do("POST", "/replicasets", chaosRS("after", 2))
		if code != 201 && code != 409 { // 409: an earlier attempt that timed out went through
			return fmt.Errorf("POST after: %d %s", code, body)
		}
		return nil
	})
	accepted := time.Now()
	eventually(t, 30*time.Second, func() error { _, err := running(a, "after", 2); return err })
	t.Logf("NATS restart: store answered %v after the restart; pods Running %v after the replicaset was accepted",
		accepted.Sub(restarted).Round(time.Millisecond), time.Since(accepted).Round(time.Millisecond))

	// Nothing lost, nothing restarted: the same containers still serve.
	now, err := running(a, "before", 2)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, p := range before {
		ids[p.ContainerID] = true
	}
	for _, p := range now {
		if !ids[p.ContainerID] {
			t.Errorf("pod %s has container %s after the NATS restart, not one of %v", p.Name, p.ContainerID, ids)
		}
	}
	if exited := c.reviveExited(); len(exited) > 0 {
		t.Errorf("components exited during the NATS restart: %v", exited)
	}
	c.checkNoPanic()
}

// Garbage on every subject the components listen to and garbage values in
// every bucket are logged and dropped: no component crashes, and the
// cluster still runs pods afterwards.
func TestMalformedBusMessages(t *testing.T) {
	requireRoot(t)
	c, a := startCluster(t, []string{"node-a"}, 1)
	// The controller's user may publish on every MiniKu subject and write
	// every bucket.
	conn := busConnAs(t, c.natsURL, c.ctlDir, bus.UserController)
	nc := conn.NATS()

	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return b
	}
	mp := func(v any) []byte {
		b, err := schemas.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	garbage := [][]byte{
		nil, {0xc1}, {0x80}, {0x90}, []byte(`{"name":"x"}`), random(7), random(300),
		{0xdf, 0xff, 0xff, 0xff, 0xff},                                 // a map of 4 G entries
		{0x81, 0xa4, 'n', 'a', 'm', 'e', 0xdb, 0x7f, 0xff, 0xff, 0xff}, // a 2 GiB name
		{0x81, 0xa3, 'e', 'n', 'v', 0xdd, 0x7f, 0xff, 0xff, 0xff},      // 2^31 env structs: 64 GiB
		bytes.Repeat([]byte{0x91}, 100000),                             // nested 100,000 deep
		mp(map[string]any{"name": 5, "status": []int{1}, "revision": "x"}),
		mp(map[string]any{"name": "../x", "nodeName": "node-a", "desiredCount": -5, "selector": 1}),
		mp(schemas.Event{Type: "created", Kind: schemas.KindPod, Name: "no-such-pod", Node: "node-a"}),
		mp(schemas.Event{Type: "created", Kind: schemas.KindPod, Name: "", Node: ""}),
	}
	subjects := []string{
		bus.SubjPodCreated, bus.NodeSubject(bus.SubjPodAssigned, "node-a"), bus.SubjPodRunning,
		bus.SubjPodSucceeded, bus.SubjPodFailed, bus.SubjPodDeleted,
		bus.SubjReplicaSetCreated, bus.SubjReplicaSetUpdated, bus.SubjReplicaSetDeleted, bus.SubjReplicaSetScaled,
		bus.NodeSubject(bus.SubjNodeHeartbeat, "node-a"), bus.SubjNodeReady, bus.SubjNodeNotReady,
		"event.pod.x", "event.node.node-a", bus.KubeletLogsSubject("node-a"),
	}
	sent := 0
	for _, subj := range subjects {
		for _, g := range garbage {
			// A reply inbox too, so the kubelet's log server answers.
			if err := nc.PublishMsg(&nats.Msg{Subject: subj, Reply: nc.NewRespInbox(), Data: g}); err != nil {
				t.Fatalf("publish %s: %v", subj, err)
			}
			sent++
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	puts := 0
	for _, b := range []interface {
		Put(context.Context, string, []byte) (uint64, error)
	}{conn.Pods.KV(), conn.ReplicaSets.KV(), conn.Nodes.KV()} {
		for i, g := range garbage {
			if _, err := b.Put(ctx, fmt.Sprintf("garbage-%d", i), g); err != nil {
				t.Fatalf("put garbage: %v", err)
			}
			puts++
		}
	}
	// Garbage over a live object: the kubelet owns its node and replaces it.
	if _, err := conn.Nodes.KV().Put(ctx, "node-a", []byte{0xc1}); err != nil {
		t.Fatalf("put garbage: %v", err)
	}
	puts++
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Logf("published %d garbage messages on %d subjects, wrote %d garbage KV values", sent, len(subjects), puts)

	// Still alive, still serving, still running pods.
	for _, path := range []string{"/pods", "/replicasets", "/nodes", "/events"} {
		var v any
		if err := a.getJSON(path, &v); err != nil {
			t.Errorf("after garbage: %v", err)
		}
	}
	if code, body := a.do("POST", "/replicasets", chaosRS("after", 2)); code != 201 {
		t.Fatalf("POST after: %d %s", code, body)
	}
	eventually(t, 60*time.Second, func() error { _, err := running(a, "after", 2); return err })
	waitReadyNodes(t, a, 1)
	if exited := c.reviveExited(); len(exited) > 0 {
		t.Fatalf("components exited after garbage: %v", exited)
	}
	c.checkNoPanic()
}
