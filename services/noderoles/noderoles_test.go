package noderoles_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/bus/registry"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/noderoles"
)

func TestUnlabelled(t *testing.T) {
	nodes := []*schemas.Node{
		{ObjectMeta: schemas.ObjectMeta{Name: "a"}},
		{ObjectMeta: schemas.ObjectMeta{Name: "b", Labels: map[string]string{noderoles.ControlPlane: "true"}}},
		{ObjectMeta: schemas.ObjectMeta{Name: "agent"}},
	}
	if got := noderoles.Unlabelled([]string{"a", "b", "missing"}, nodes); !slices.Equal(got, []string{"a"}) {
		t.Errorf("Unlabelled = %v, want [a]", got)
	}
}

// A server's own nodes get the control-plane role as they register, and
// again if someone removes it; an agent's node is left alone.
func TestServerNodesLabelled(t *testing.T) {
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), bustest.Logger(t))
	ctx, cancel := context.WithCancel(context.Background())
	cache := bus.NewInformer(conn, conn.Nodes, time.Hour, bustest.Logger(t))
	done := make(chan error, 2)
	go func() { done <- cache.Run(ctx) }()
	go func() {
		done <- noderoles.Run(ctx, []string{"server-1"}, cache, registry.For(conn, nil).Nodes, time.Hour, bustest.Logger(t))
	}()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	})
	for _, n := range []string{"server-1", "agent-1"} {
		if err := conn.Nodes.Create(ctx, &schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: n}}); err != nil {
			t.Fatal(err)
		}
	}
	waitRole := func(want string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			n, err := conn.Nodes.Get(ctx, "server-1")
			if err != nil {
				t.Fatal(err)
			}
			if n.Labels[noderoles.ControlPlane] == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("server-1 labels %v, want %s=%q", n.Labels, noderoles.ControlPlane, want)
			}
		}
	}
	waitRole("true")
	if _, err := conn.Nodes.Mutate(ctx, "server-1", func(n *schemas.Node) error {
		delete(n.Labels, noderoles.ControlPlane)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitRole("true")
	a, err := conn.Nodes.Get(ctx, "agent-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Labels[noderoles.ControlPlane]; ok {
		t.Errorf("an agent's node got the control-plane role: %v", a.Labels)
	}
}

// With no nodes of its own Run still runs until stopped: up ends every
// part of itself when one returns.
func TestRunWithoutNodesWaitsForStop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- noderoles.Run(ctx, nil, nil, nil, time.Hour, nil) }()
	select {
	case err := <-done:
		t.Fatalf("Run without nodes returned at once: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
