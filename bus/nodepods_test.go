package bus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/bus/registry"
	"github.com/miniku/miniku/schemas"
)

func boundPod(name, node string) *schemas.Pod {
	return &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: name, UID: "uid-" + name},
		PodSpec: schemas.PodSpec{Image: "busybox", Command: []string{"sleep", "1d"}}, NodeName: node, Status: schemas.PodPending}
}

// viewIs waits until inf holds exactly want (names), each as check says.
func viewIs(t *testing.T, inf *bus.Informer[schemas.Pod, *schemas.Pod], check func(*schemas.Pod) error, want ...string) {
	t.Helper()
	slices.Sort(want)
	bustest.Eventually(t, 10*time.Second, func() error {
		var got []string
		for _, p := range inf.List() {
			got = append(got, p.Name)
			if check != nil {
				if err := check(p); err != nil {
					return err
				}
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			return fmt.Errorf("view %v, want %v", got, want)
		}
		return nil
	})
}

// runNodePods runs a node-pods informer for nodes on c until the test ends.
func runNodePods(t *testing.T, c *bus.Conn, resync time.Duration, nodes ...string) *bus.Informer[schemas.Pod, *schemas.Pod] {
	t.Helper()
	inf := bus.NewNodePodsInformer(c, nodes, resync, bustest.Logger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- inf.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := inf.WaitSynced(wctx); err != nil {
		t.Fatalf("node pods informer not synced: %v", err)
	}
	return inf
}

// A kubelet's informer holds exactly its node's pods through bind, status
// change, a move to another node and delete; a restarted one finds them
// all again.
func TestNodePodsView(t *testing.T) {
	ns, authDir := bustest.SecureServer(t, "node-1", "node-2")
	url := ns.ClientURL()
	ctx := context.Background()
	admin := bustest.ConnAs(t, url, authDir, bus.UserAPIServer, false)
	serveNodeAPI(t, admin)
	k1 := bustest.ConnAs(t, url, authDir, bus.KubeletUser("node-1"), true)

	for _, p := range []*schemas.Pod{boundPod("mine", "node-1"), boundPod("theirs", "node-2"), boundPod("pending", "")} {
		if err := admin.Pods.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	// Revisions are the pods bucket's: the kubelet writes at them.
	revs := func(p *schemas.Pod) error {
		cur, err := admin.Pods.Get(ctx, p.Name)
		if err != nil {
			return err
		}
		if cur.ResourceVersion != p.ResourceVersion {
			return fmt.Errorf("%s at revision %d, bucket %d", p.Name, p.ResourceVersion, cur.ResourceVersion)
		}
		return nil
	}
	inf := runNodePods(t, k1, time.Minute, "node-1")
	viewIs(t, inf, revs, "mine")

	// Bind.
	if _, err := admin.Pods.Mutate(ctx, "pending", func(p *schemas.Pod) error { p.NodeName = "node-1"; return nil }); err != nil {
		t.Fatal(err)
	}
	viewIs(t, inf, revs, "mine", "pending")

	// Status, written by the kubelet through the node API.
	if _, err := k1.MutatePodStatus(ctx, "node-1", nil, "pending", func(p *schemas.Pod) error { p.Status = schemas.PodRunning; return nil }); err != nil {
		t.Fatal(err)
	}
	viewIs(t, inf, func(p *schemas.Pod) error {
		if p.Name == "pending" && p.Status != schemas.PodRunning {
			return fmt.Errorf("pending is %s", p.Status)
		}
		return revs(p)
	}, "mine", "pending")

	// Moved to node-2, and node-2's moved here.
	if _, err := admin.Pods.Mutate(ctx, "mine", func(p *schemas.Pod) error { p.NodeName = "node-2"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Pods.Mutate(ctx, "theirs", func(p *schemas.Pod) error { p.NodeName = "node-1"; return nil }); err != nil {
		t.Fatal(err)
	}
	viewIs(t, inf, revs, "pending", "theirs")

	// Deleted.
	cur, err := admin.Pods.Get(ctx, "pending")
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Pods.Delete(ctx, "pending", cur.ResourceVersion); err != nil {
		t.Fatal(err)
	}
	viewIs(t, inf, revs, "theirs")

	// A restarted kubelet lists what is bound to it.
	if _, err := admin.Pods.Mutate(ctx, "mine", func(p *schemas.Pod) error { p.NodeName = "node-1"; return nil }); err != nil {
		t.Fatal(err)
	}
	again := runNodePods(t, k1, time.Minute, "node-1")
	viewIs(t, again, revs, "mine", "theirs")
	viewIs(t, inf, revs, "mine", "theirs")
}

// Changes made while no node API pushed them (the apiserver down: the
// hints are lost) are repaired by the next resync's list: the pod deleted
// meanwhile goes, the one bound meanwhile comes.
func TestNodePodsResyncRepairsLostHints(t *testing.T) {
	ns, authDir := bustest.SecureServer(t, "node-1")
	url := ns.ClientURL()
	ctx := context.Background()
	admin := bustest.ConnAs(t, url, authDir, bus.UserAPIServer, false)
	k1 := bustest.ConnAs(t, url, authDir, bus.KubeletUser("node-1"), true)
	for _, p := range []*schemas.Pod{boundPod("old", "node-1"), boundPod("new", "")} {
		if err := admin.Pods.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}

	// The first node API, stopped after the kubelet's first list.
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- bus.ServeNodeAPI(sctx, admin, bus.NodeAPIConfig{PodStatus: podStatusWriter(admin), Logger: bustest.Logger(t)})
	}()
	inf := bus.NewNodePodsInformer(k1, []string{"node-1"}, 600*time.Millisecond, bustest.Logger(t))
	ictx, icancel := context.WithCancel(ctx)
	idone := make(chan error, 1)
	go func() { idone <- inf.Run(ictx) }()
	t.Cleanup(func() { icancel(); <-idone })
	viewIs(t, inf, nil, "old")
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	cur, err := admin.Pods.Get(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Pods.Delete(ctx, "old", cur.ResourceVersion); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Pods.Mutate(ctx, "new", func(p *schemas.Pod) error { p.NodeName = "node-1"; return nil }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if got := inf.List(); len(got) != 1 || got[0].Name != "old" {
		t.Fatalf("view changed with no node API: %v", got)
	}

	// A node API again: nothing pushes the deletion, the relist does.
	serveNodeAPI(t, admin)
	viewIs(t, inf, nil, "new")
}

// A kubelet's user reads no pod of another node, and not the pods bucket
// at all: no bucket, no direct get, no watch (consumer), no other node's
// pushes or list, no other node's pod through its own node API.
func TestNodePodsPermissions(t *testing.T) {
	ns, authDir := bustest.SecureServer(t, "node-1", "node-2")
	url := ns.ClientURL()
	ctx := context.Background()
	admin := bustest.ConnAs(t, url, authDir, bus.UserAPIServer, false)
	serveNodeAPI(t, admin)
	k1 := bustest.ConnAs(t, url, authDir, bus.KubeletUser("node-1"), true)
	for _, p := range []*schemas.Pod{boundPod("mine", "node-1"), boundPod("theirs", "node-2")} {
		if err := admin.Pods.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}

	// Its own: allowed.
	if _, err := k1.GetNodePod(ctx, "node-1", "mine"); err != nil {
		t.Fatalf("kubelet-node-1 reads its pod: %v", err)
	}
	// The list is served from the apiserver's cache, which reaches the
	// pods just created a moment later.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		pods, _, err := k1.ListNodePods(ctx, "node-1")
		if err == nil && len(pods) == 1 && pods[0].Name == "mine" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubelet-node-1 lists %v, %v; want [mine]", pods, err)
		}
	}
	// Another node's, through its own node API: refused, without it.
	if p, err := k1.GetNodePod(ctx, "node-1", "theirs"); !errors.Is(err, bus.ErrForbidden) || p != nil {
		t.Fatalf("kubelet-node-1 reads node-2's pod: %v, %v; want ErrForbidden", p, err)
	} else if strings.Contains(err.Error(), "node-2") {
		t.Fatalf("the refusal names the other node: %v", err)
	}

	nc, errs := rawAs(t, url, authDir, bus.KubeletUser("node-1"))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	// The bucket (its stream's info), a KV get, a watch: refused.
	if _, err := js.KeyValue(rctx, bus.BucketPods); err == nil {
		t.Fatal("kubelet-node-1 binds to the pods bucket")
	}
	wantViolation(t, errs, "$JS.API.STREAM.INFO.KV_pods")
	if _, err := nc.Request("$JS.API.DIRECT.GET.KV_pods.$KV.pods.theirs", nil, time.Second); err == nil {
		t.Fatal("kubelet-node-1 direct-gets node-2's pod")
	}
	wantViolation(t, errs, "$JS.API.DIRECT.GET.KV_pods.$KV.pods.theirs")
	if _, err := nc.Request("$JS.API.STREAM.MSG.GET.KV_pods", []byte(`{"last_by_subj":"$KV.pods.theirs"}`), time.Second); err == nil {
		t.Fatal("kubelet-node-1 gets node-2's pod's message")
	}
	wantViolation(t, errs, "$JS.API.STREAM.MSG.GET.KV_pods")
	// The whole-bucket watch every kubelet ran before: an ordered
	// consumer on the bucket's stream.
	// consumer on the bucket's stream, asked for as nats.go asks for one.
	watch := `{"stream_name":"KV_pods","config":{"name":"w","deliver_policy":"last_per_subject","ack_policy":"none","filter_subject":"$KV.pods.>","mem_storage":true,"inactive_threshold":5000000000}}`
	if _, err := nc.Request("$JS.API.CONSUMER.CREATE.KV_pods.w.$KV.pods.>", []byte(watch), time.Second); err == nil {
		t.Fatal("kubelet-node-1 watches the pods bucket")
	}
	wantViolation(t, errs, "$JS.API.CONSUMER.CREATE.KV_pods")
	if _, err := nc.SubscribeSync("$KV.pods.>"); err != nil {
		t.Fatal(err)
	}
	wantViolation(t, errs, "$KV.pods.>")
	// Another node's pushes and list.
	if _, err := nc.SubscribeSync(bus.NodeSubject(bus.SubjNodePods, "node-2")); err != nil {
		t.Fatal(err)
	}
	wantViolation(t, errs, "nodepods.node-2")
	if _, err := nc.SubscribeSync(bus.SubjNodePods + ".*"); err != nil {
		t.Fatal(err)
	}
	wantViolation(t, errs, "nodepods.*")
	if _, err := nc.Request(bus.NodeAPISubject("node-2", "pods"), nil, time.Second); err == nil {
		t.Fatal("kubelet-node-1 lists node-2's pods")
	}
	wantViolation(t, errs, "nodeapi.node-2.pods")
	// Other pods' hints.
	if _, err := nc.SubscribeSync("pod.>"); err != nil {
		t.Fatal(err)
	}
	wantViolation(t, errs, "pod.>")
}

func podStatusWriter(c *bus.Conn) bus.PodStatusWriter { return registry.For(c, nil).Pods }

// With several apiservers, one pushes: a kubelet hears each change once,
// not once per apiserver.
func TestNodePodsOnePusher(t *testing.T) {
	ns, authDir := bustest.SecureServer(t, "node-1")
	url := ns.ClientURL()
	ctx := context.Background()
	a1 := bustest.ConnAs(t, url, authDir, bus.UserAPIServer, false)
	a2 := bustest.ConnAs(t, url, authDir, bus.UserAPIServer, false)
	serveNodeAPI(t, a1)
	serveNodeAPI(t, a2)
	nc, _ := rawAs(t, url, authDir, bus.KubeletUser("node-1"))
	sub, err := nc.SubscribeSync(bus.NodeSubject(bus.SubjNodePods, "node-1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	p := boundPod("once", "node-1")
	if err := a1.Pods.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	// The first push may wait for a pusher to be elected.
	if _, err := sub.NextMsg(10 * time.Second); err != nil {
		t.Fatalf("no push: %v", err)
	}
	for k := range 3 {
		p.Status = schemas.PodRunning
		p.Message = fmt.Sprint(k)
		if err := a2.Pods.Update(ctx, p); err != nil {
			t.Fatal(err)
		}
		if _, err := sub.NextMsg(5 * time.Second); err != nil {
			t.Fatalf("no push of update %d: %v", k, err)
		}
		if m, err := sub.NextMsg(500 * time.Millisecond); err == nil {
			t.Fatalf("update %d pushed twice: %s %q", k, m.Subject, m.Data)
		}
	}
}
