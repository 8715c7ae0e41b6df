package garbagecollector_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/schemas/kinds"
	"github.com/miniku/miniku/services/garbagecollector"
)

func run(t *testing.T, conn *bus.Conn) {
	t.Helper()
	gc, err := garbagecollector.New(garbagecollector.Config{Logger: bustest.Logger(t), Resync: time.Second, Interval: 20 * time.Millisecond}, conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

func newRS(t *testing.T, conn *bus.Conn, name string) *schemas.ReplicaSet {
	t.Helper()
	rs := &schemas.ReplicaSet{ObjectMeta: schemas.ObjectMeta{Name: name}, DesiredCount: 1,
		Selector: map[string]string{"app": name}, Template: schemas.PodTemplate{PodSpec: schemas.PodSpec{Image: "busybox", Command: []string{"sleep", "1d"}}}}
	kinds.PrepareReplicaSetForCreate(rs, time.Now())
	if err := conn.ReplicaSets.Create(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	return rs
}

func newPod(t *testing.T, conn *bus.Conn, name string, owner *schemas.ReplicaSet, node string) *schemas.Pod {
	t.Helper()
	p := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: name, Labels: map[string]string{"app": "x"}},
		PodSpec: schemas.PodSpec{Image: "busybox", Command: []string{"sleep", "1d"}}, NodeName: node}
	kinds.PreparePodForCreate(p, time.Now())
	if owner != nil {
		p.Owner, p.OwnerUID = owner.Name, owner.UID
	}
	if err := conn.Pods.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return p
}

// mark is a delete's marking with the given finalizers, as the API
// writes it.
func mark(t *testing.T, conn *bus.Conn, name string, fins ...string) {
	t.Helper()
	if _, err := conn.ReplicaSets.Mutate(context.Background(), name, func(rs *schemas.ReplicaSet) error {
		rs.Finalizers = fins
		kinds.MarkDeleting(&rs.ObjectMeta, time.Now(), 0)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func gone[T any, P bus.Object[T]](b *bus.Bucket[T, P], name string) func() error {
	return func() error {
		_, err := b.Get(context.Background(), name)
		if errors.Is(err, bus.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("%s/%s still there", b.Name(), name)
	}
}

func TestBackground(t *testing.T) {
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), nil)
	ctx := context.Background()
	node := &schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: "node-1"}}
	if err := conn.Nodes.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	web := newRS(t, conn, "web")
	newPod(t, conn, "unbound", web, "")
	newPod(t, conn, "bound", web, "node-1")
	alive := newRS(t, conn, "alive")
	newPod(t, conn, "kept", alive, "")
	run(t, conn)
	if err := conn.ReplicaSets.Delete(ctx, "web", web.ResourceVersion); err != nil {
		t.Fatal(err)
	}
	// Unbound: deleted at once. Bound: marked with its own grace, for its
	// kubelet to stop and remove.
	bustest.Eventually(t, 10*time.Second, gone(conn.Pods, "unbound"))
	bustest.Eventually(t, 10*time.Second, func() error {
		p, err := conn.Pods.Get(ctx, "bound")
		if err != nil {
			return err
		}
		if p.DeletionTimestamp == nil || p.DeletionGracePeriodSeconds == nil || *p.DeletionGracePeriodSeconds != 30 {
			return fmt.Errorf("bound pod not terminating with its 30 s grace: %v %v", p.DeletionTimestamp, p.DeletionGracePeriodSeconds)
		}
		return nil
	})
	if p, err := conn.Pods.Get(ctx, "kept"); err != nil || p.DeletionTimestamp != nil {
		t.Fatalf("pod of a live replicaset touched: %v %v", p, err)
	}
	// A new replicaset of the same name is another owner (uid): the old
	// one's pods are not its.
	newRS(t, conn, "web")
	newPod(t, conn, "stale", web, "")
	bustest.Eventually(t, 10*time.Second, gone(conn.Pods, "stale"))
}

func TestOrphan(t *testing.T) {
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), nil)
	ctx := context.Background()
	web := newRS(t, conn, "web")
	newPod(t, conn, "a", web, "")
	cm := &schemas.ConfigMap{ObjectMeta: schemas.ObjectMeta{Name: "cm", OwnerReferences: []schemas.OwnerReference{
		{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: web.UID}}}}
	kinds.ConfigMap.Create(cm, time.Now())
	cm.OwnerReferences = []schemas.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: web.UID}}
	if err := conn.ConfigMaps.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	run(t, conn)
	mark(t, conn, "web", kinds.FinalizerOrphan)
	bustest.Eventually(t, 10*time.Second, gone(conn.ReplicaSets, "web"))
	p, err := conn.Pods.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if p.Owner != "" || p.OwnerUID != "" || p.DeletionTimestamp != nil {
		t.Fatalf("orphaned pod: owner %q/%q, deletionTimestamp %v", p.Owner, p.OwnerUID, p.DeletionTimestamp)
	}
	c, err := conn.ConfigMaps.Get(ctx, "cm")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.OwnerReferences) != 0 {
		t.Fatalf("orphaned configmap keeps %v", c.OwnerReferences)
	}
	// And stays: nothing owns it any more.
	time.Sleep(200 * time.Millisecond)
	if _, err := conn.Pods.Get(ctx, "a"); err != nil {
		t.Fatal(err)
	}
}

func TestForeground(t *testing.T) {
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), nil)
	ctx := context.Background()
	if err := conn.Nodes.Create(ctx, &schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: "node-1"}}); err != nil {
		t.Fatal(err)
	}
	web := newRS(t, conn, "web")
	newPod(t, conn, "a", web, "")
	newPod(t, conn, "b", web, "node-1")
	run(t, conn)
	mark(t, conn, "web", kinds.FinalizerForeground)
	bustest.Eventually(t, 10*time.Second, gone(conn.Pods, "a"))
	// b is its kubelet's to finish: until then the owner stays.
	bustest.Eventually(t, 10*time.Second, func() error {
		p, err := conn.Pods.Get(ctx, "b")
		if err != nil {
			return err
		}
		if p.DeletionTimestamp == nil {
			return errors.New("b not terminating")
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	if _, err := conn.ReplicaSets.Get(ctx, "web"); err != nil {
		t.Fatalf("owner gone before its dependents: %v", err)
	}
	// The kubelet's removal, then the owner goes.
	b, err := conn.Pods.Get(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Pods.Delete(ctx, "b", b.ResourceVersion); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 10*time.Second, gone(conn.ReplicaSets, "web"))
}

// A write that took the last finalizer and crashed before removing the
// object: the collector removes it. One with a finalizer left stays.
func TestRemovesFinalized(t *testing.T) {
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), nil)
	ctx := context.Background()
	for _, name := range []string{"done", "held"} {
		cm := &schemas.ConfigMap{ObjectMeta: schemas.ObjectMeta{Name: name}}
		kinds.ConfigMap.Create(cm, time.Now())
		kinds.MarkDeleting(&cm.ObjectMeta, time.Now(), 0)
		if name == "held" {
			cm.Finalizers = []string{"example.com/hold"}
		}
		if err := conn.ConfigMaps.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
	}
	run(t, conn)
	bustest.Eventually(t, 10*time.Second, gone(conn.ConfigMaps, "done"))
	if _, err := conn.ConfigMaps.Get(ctx, "held"); err != nil {
		t.Fatalf("object a finalizer holds was removed: %v", err)
	}
}

// The collector runs as the controller's NATS user (miniku up, miniku
// controller): its rights cover every write it makes.
func TestRunsAsController(t *testing.T) {
	ns, authDir := bustest.SecureServer(t)
	admin := bustest.ConnAs(t, ns.ClientURL(), authDir, bus.UserAPIServer, false)
	ctrl := bustest.ConnAs(t, ns.ClientURL(), authDir, bus.UserController, true)
	ctx := context.Background()
	owner := newRS(t, admin, "web")
	newPod(t, admin, "a", owner, "")
	for _, name := range []string{"cm", "other"} {
		cm := &schemas.ConfigMap{ObjectMeta: schemas.ObjectMeta{Name: name}}
		kinds.ConfigMap.Create(cm, time.Now())
		cm.OwnerReferences = []schemas.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: owner.UID}}
		if name == "other" {
			cm.OwnerReferences = append(cm.OwnerReferences, schemas.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "cm", UID: "gone-uid"})
		}
		if err := admin.ConfigMaps.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
	}
	sa := &schemas.ServiceAccount{ObjectMeta: schemas.ObjectMeta{Name: "sa"}}
	kinds.ServiceAccount.Create(sa, time.Now())
	sa.OwnerReferences = []schemas.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: owner.UID}}
	if err := admin.ServiceAccounts.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	run(t, ctrl)
	// "other" loses its reference to a configmap that is gone, keeping
	// the one to the live replicaset.
	bustest.Eventually(t, 10*time.Second, func() error {
		c, err := admin.ConfigMaps.Get(ctx, "other")
		if err != nil {
			return err
		}
		if len(c.OwnerReferences) != 1 || c.OwnerReferences[0].UID != owner.UID {
			return fmt.Errorf("other's owners: %v", c.OwnerReferences)
		}
		return nil
	})
	if err := admin.ReplicaSets.Delete(ctx, "web", owner.ResourceVersion); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 10*time.Second, gone(admin.Pods, "a"))
	bustest.Eventually(t, 10*time.Second, gone(admin.ConfigMaps, "cm"))
	bustest.Eventually(t, 10*time.Second, gone(admin.ConfigMaps, "other"))
	bustest.Eventually(t, 10*time.Second, gone(admin.ServiceAccounts, "sa"))
}
