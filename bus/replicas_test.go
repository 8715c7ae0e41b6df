package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
)

// Buckets made at R1 on a three-server cluster are raised to R3 in
// place, objects kept, and a later raise to fewer changes nothing.
func TestRaiseReplicas(t *testing.T) {
	_, urls := bustest.Cluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := bus.Connect(ctx, bus.Options{URL: urls, Name: t.Name(), Replicas: 1, Logger: bustest.Logger(t), SecretsKey: bustest.SecretsKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "p"}, PodSpec: schemas.PodSpec{Image: "busybox"}}
	if err := c.Pods.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	raised, err := c.RaiseReplicas(ctx, bus.ClusterReplicas(3))
	if err != nil {
		t.Fatal(err)
	}
	if len(raised) < 5 {
		t.Fatalf("raised %v, want every bucket and the events stream", raised)
	}
	got, err := c.StreamReplicas(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range got {
		if r != 3 {
			t.Errorf("stream %s at %d replicas, want 3", name, r)
		}
	}
	if again, err := c.RaiseReplicas(ctx, 1); err != nil || len(again) != 0 {
		t.Fatalf("raise to 1 after 3: changed %v, %v; want nothing", again, err)
	}
	if _, err := c.Pods.Get(ctx, "p"); err != nil {
		t.Fatalf("pod after the move to R3: %v", err)
	}
	if bus.ClusterReplicas(1) != 1 || bus.ClusterReplicas(2) != 1 || bus.ClusterReplicas(4) != 3 {
		t.Fatal("ClusterReplicas: want 1, 1, 3 for 1, 2, 4 servers")
	}
}
