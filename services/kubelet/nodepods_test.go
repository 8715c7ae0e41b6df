package kubelet

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/bus/registry"
	ctr "github.com/miniku/miniku/runtime"
	"github.com/miniku/miniku/runtime/fake"
	"github.com/miniku/miniku/schemas"
)

// A kubelet logged in as its node runs exactly its node's pods: it never
// sees another node's, stops a pod's container when the pod moves away,
// and after a restart finds what was bound to it meanwhile.
func TestKubeletRunsOnlyItsNodesPods(t *testing.T) {
	ns, authDir := bustest.SecureServer(t, "node-1", "node-2")
	url := ns.ClientURL()
	ctx := context.Background()
	admin := bustest.ConnAs(t, url, authDir, bus.UserAPIServer, false)
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- bus.ServeNodeAPI(sctx, admin, bus.NodeAPIConfig{PodStatus: registry.For(admin, nil).Pods, Logger: bustest.Logger(t)})
	}()
	t.Cleanup(func() { stop(); <-served })
	conn := bustest.ConnAs(t, url, authDir, bus.KubeletUser("node-1"), true)
	if conn.Pods != nil {
		t.Fatal("a kubelet's connection has the pods bucket")
	}

	mk := func(name, node string) {
		t.Helper()
		p := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: name, UID: "uid-" + name},
			PodSpec: schemas.PodSpec{Image: "busybox", Command: []string{"sleep", "1d"}}, NodeName: node, Status: schemas.PodPending}
		if err := admin.Pods.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	mk("mine", "node-1")
	mk("theirs", "node-2")

	rt := fake.New()
	run := func() (stop func()) {
		k, err := New(Config{NodeName: "node-1", Logger: bustest.Logger(t), Resync: time.Second}, conn, rt, fake.Images{})
		if err != nil {
			t.Fatal(err)
		}
		kctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- k.Run(kctx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}
	running := func(want ...string) {
		t.Helper()
		slices.Sort(want)
		bustest.Eventually(t, 15*time.Second, func() error {
			cs, err := rt.List()
			if err != nil {
				return err
			}
			var got []string
			for _, c := range cs {
				if c.Status == ctr.StatusRunning {
					got = append(got, c.Labels[labelPod])
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				return fmt.Errorf("running %v, want %v", got, want)
			}
			for _, name := range want {
				p, err := admin.Pods.Get(ctx, name)
				if err != nil {
					return err
				}
				if p.Status != schemas.PodRunning {
					return fmt.Errorf("%s is %s", name, p.Status)
				}
			}
			return nil
		})
	}

	stopKubelet := run()
	running("mine")
	if p, _ := admin.Pods.Get(ctx, "theirs"); p.Status != schemas.PodPending {
		t.Fatalf("node-2's pod is %s", p.Status)
	}

	// Moved to node-2: its container here goes.
	if _, err := admin.Pods.Mutate(ctx, "mine", func(p *schemas.Pod) error { p.NodeName = "node-2"; return nil }); err != nil {
		t.Fatal(err)
	}
	running()

	// Bound while the kubelet was down: found at its start.
	stopKubelet()
	mk("later", "node-1")
	stopKubelet = run()
	defer stopKubelet()
	running("later")
}
