package registry_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/bus/registry"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/schemas/kinds"
)

var now = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)

func setup(t *testing.T) (*bus.Conn, *registry.Registry, context.Context) {
	t.Helper()
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return conn, registry.For(conn, func() time.Time { return now }), ctx
}

func pod(name string) *schemas.Pod {
	return &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: name, Labels: map[string]string{"app": "a"}},
		PodSpec: schemas.PodSpec{Image: "busybox", Command: []string{"sleep", "1d"}}}
}

// A pod the API would refuse is refused with the API's field errors
// (kinds.ValidatePod, what POST /api/v1/.../pods returns as 422), and
// nothing is written.
func TestCreateRefusesWhatTheAPIRefuses(t *testing.T) {
	conn, reg, ctx := setup(t)
	p := pod("bad")
	p.Ports = []schemas.ContainerPort{{ContainerPort: 70000}}
	want := pod("bad")
	want.Ports = p.Ports
	kinds.PreparePodForCreate(want, now)
	apiErrs := kinds.ValidatePod(want)
	if len(apiErrs) == 0 {
		t.Fatal("the API's rule accepts the pod; the test needs one it refuses")
	}
	err := reg.Pods.Create(ctx, p)
	errs, ok := registry.IsInvalid(err)
	if !ok || !errors.Is(err, bus.ErrInvalid) {
		t.Fatalf("Create = %v, want an InvalidError", err)
	}
	if !reflect.DeepEqual(errs, apiErrs) {
		t.Fatalf("field errors %v, want the API's %v", errs, apiErrs)
	}
	if !strings.Contains(err.Error(), "spec.containers[0].ports[0].containerPort") {
		t.Fatalf("error %q does not name the field path", err)
	}
	if _, err := conn.Pods.Get(ctx, "bad"); !errors.Is(err, bus.ErrNotFound) {
		t.Fatalf("refused pod was written: %v", err)
	}
}

// Create resets what a creator may not set: status and identity.
func TestCreatePrepares(t *testing.T) {
	conn, reg, ctx := setup(t)
	p := pod("p")
	p.Status, p.UID, p.RestartCount = schemas.PodRunning, "forged", 3
	if err := reg.Pods.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	got, err := conn.Pods.Get(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != schemas.PodPending || got.RestartCount != 0 || got.UID == "forged" || !got.CreatedAt.Equal(now) {
		t.Fatalf("stored %+v: want Pending, no restarts, a new uid, created now", got)
	}
}

// An update may not change a pod's spec: the API's ValidatePodUpdate.
func TestUpdateRefusesSpecChange(t *testing.T) {
	_, reg, ctx := setup(t)
	if err := reg.Pods.Create(ctx, pod("p")); err != nil {
		t.Fatal(err)
	}
	_, err := reg.Pods.Update(ctx, "p", func(p *schemas.Pod) error { p.Image = "nginx"; return nil })
	if errs, ok := registry.IsInvalid(err); !ok || errs[0].Field != "spec" {
		t.Fatalf("Update changing the image = %v, want spec Forbidden", err)
	}
	// Labels may change; status the update sends is dropped.
	got, err := reg.Pods.Update(ctx, "p", func(p *schemas.Pod) error {
		p.Labels["tier"] = "web"
		p.Status = schemas.PodSucceeded
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Labels["tier"] != "web" || got.Status != schemas.PodPending {
		t.Fatalf("updated %+v: want the label and status Pending", got)
	}
}

// A status write keeps only the status, as Kubernetes' pod status
// strategy resets the spec and metadata it carries.
func TestUpdateStatusCannotChangeSpec(t *testing.T) {
	conn, reg, ctx := setup(t)
	if err := reg.Pods.Create(ctx, pod("p")); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Pods.UpdateStatus(ctx, "p", func(p *schemas.Pod) error {
		p.Image, p.NodeName, p.Labels = "nginx", "elsewhere", map[string]string{"app": "b"}
		p.Status = schemas.PodRunning
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err := conn.Pods.Get(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if got.Image != "busybox" || got.NodeName != "" || got.Labels["app"] != "a" || got.Status != schemas.PodRunning {
		t.Fatalf("stored %+v: want the spec and labels kept, status Running", got)
	}
}

// A terminal status is final for every status writer (kubelet, node
// controller, the API's pods/status).
func TestUpdateStatusRefusesLeavingTerminal(t *testing.T) {
	_, reg, ctx := setup(t)
	if err := reg.Pods.Create(ctx, pod("p")); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Pods.UpdateStatus(ctx, "p", func(p *schemas.Pod) error { p.Status = schemas.PodFailed; return nil }); err != nil {
		t.Fatal(err)
	}
	_, err := reg.Pods.UpdateStatus(ctx, "p", func(p *schemas.Pod) error { p.Status = schemas.PodRunning; return nil })
	if errs, ok := registry.IsInvalid(err); !ok || errs[0].Field != "status.phase" {
		t.Fatalf("Failed back to Running = %v, want status.phase invalid", err)
	}
}

// pods/binding sets the node once: binding a bound pod, even from a stale
// copy that shows it unbound, is a conflict with kube-apiserver's message.
func TestBindOnce(t *testing.T) {
	conn, reg, ctx := setup(t)
	p := pod("p")
	if err := reg.Pods.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	stale := p.DeepCopy()
	if _, err := reg.Pods.UpdateStatus(ctx, "p", func(p *schemas.Pod) error {
		p.Reason, p.Message = kinds.ReasonUnschedulable, "0/1 nodes are available"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	bound, err := reg.Pods.Bind(ctx, stale, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	if bound.NodeName != "node-a" || bound.Reason != "" {
		t.Fatalf("bound %+v: want node-a and the Unschedulable reason cleared", bound)
	}
	_, err = reg.Pods.Bind(ctx, stale, "node-b")
	if !errors.Is(err, bus.ErrConflict) || err.Error() != `pod p is already assigned to node "node-a"` {
		t.Fatalf("rebinding = %v, want a conflict: already assigned to node-a", err)
	}
	if got, _ := conn.Pods.Get(ctx, "p"); got.NodeName != "node-a" {
		t.Fatalf("pod moved to %q", got.NodeName)
	}
	// A pod of the same name but another uid is not the one decided on.
	if err := conn.Pods.Delete(ctx, "p", 0); err != nil {
		t.Fatal(err)
	}
	if err := reg.Pods.Create(ctx, pod("p")); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Pods.Bind(ctx, stale, "node-b"); !errors.Is(err, bus.ErrNotFound) {
		t.Fatalf("binding a replaced pod = %v, want ErrNotFound", err)
	}
	if _, err := reg.Pods.Bind(ctx, &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "p"}}, "Bad_Node"); err == nil || !strings.Contains(err.Error(), "target.name") {
		t.Fatalf("binding to an invalid node name = %v, want target.name invalid", err)
	}
}

// A terminating pod is not bound.
func TestBindRefusesTerminating(t *testing.T) {
	_, reg, ctx := setup(t)
	p := pod("p")
	if err := reg.Pods.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	marked, err := reg.Pods.MarkDeleting(ctx, "p", func(*schemas.Pod) (int64, error) { return 30, nil })
	if err != nil {
		t.Fatal(err)
	}
	if marked.DeletionTimestamp == nil || !marked.DeletionTimestamp.Equal(now) || *marked.DeletionGracePeriodSeconds != 30 {
		t.Fatalf("marked %+v: want deleting now with 30s grace", marked.ObjectMeta)
	}
	if _, err := reg.Pods.Bind(ctx, marked, "node-a"); !errors.Is(err, bus.ErrConflict) || !strings.Contains(err.Error(), "being deleted") {
		t.Fatalf("binding a terminating pod = %v, want a conflict", err)
	}
}

// Scale changes spec.replicas through the update rules.
func TestScale(t *testing.T) {
	_, reg, ctx := setup(t)
	rs := &schemas.ReplicaSet{ObjectMeta: schemas.ObjectMeta{Name: "web"}, DesiredCount: 1, Selector: map[string]string{"app": "web"},
		Template: schemas.PodTemplate{Labels: map[string]string{"app": "web"}, PodSpec: schemas.PodSpec{Image: "busybox"}}}
	if err := reg.ReplicaSets.Create(ctx, rs); err != nil {
		t.Fatal(err)
	}
	got, err := reg.ReplicaSets.Scale(ctx, "web", 3)
	if err != nil || got.DesiredCount != 3 || kinds.Generation(&got.ObjectMeta) != 2 {
		t.Fatalf("Scale(3) = %+v, %v: want 3 replicas, generation 2", got, err)
	}
	_, err = reg.ReplicaSets.Scale(ctx, "web", -1)
	if errs, ok := registry.IsInvalid(err); !ok || errs[0].Field != "spec.replicas" {
		t.Fatalf("Scale(-1) = %v, want spec.replicas invalid", err)
	}
}

// A replicaset status write keeps only the counts, and counts that do not
// add up are refused.
func TestReplicaSetStatus(t *testing.T) {
	_, reg, ctx := setup(t)
	rs := &schemas.ReplicaSet{ObjectMeta: schemas.ObjectMeta{Name: "web"}, DesiredCount: 1, Selector: map[string]string{"app": "web"},
		Template: schemas.PodTemplate{Labels: map[string]string{"app": "web"}, PodSpec: schemas.PodSpec{Image: "busybox"}}}
	if err := reg.ReplicaSets.Create(ctx, rs); err != nil {
		t.Fatal(err)
	}
	got, err := reg.ReplicaSets.UpdateStatusFrom(ctx, rs, func(r *schemas.ReplicaSet) error {
		r.CurrentCount, r.ReadyCount, r.DesiredCount = 1, 1, 9
		return nil
	})
	if err != nil || got.CurrentCount != 1 || got.DesiredCount != 1 {
		t.Fatalf("status update = %+v, %v: want counts written, spec kept", got, err)
	}
	_, err = reg.ReplicaSets.UpdateStatus(ctx, "web", func(r *schemas.ReplicaSet) error { r.ReadyCount = 2; return nil })
	if errs, ok := registry.IsInvalid(err); !ok || errs[0].Field != "status.readyReplicas" {
		t.Fatalf("ready > replicas = %v, want status.readyReplicas invalid", err)
	}
}

// A node status write (a heartbeat, the node controller's NotReady) keeps
// only status; a status no kubelet reports is refused.
func TestNodeStatus(t *testing.T) {
	_, reg, ctx := setup(t)
	n := &schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: "n1"}, Status: schemas.NodeReady}
	if err := reg.Nodes.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	got, err := reg.Nodes.UpdateStatus(ctx, "n1", func(n *schemas.Node) error {
		n.Status, n.Unschedulable = schemas.NodeNotReady, true
		return nil
	})
	if err != nil || got.Status != schemas.NodeNotReady || got.Unschedulable {
		t.Fatalf("status update = %+v, %v: want NotReady, not cordoned", got, err)
	}
	_, err = reg.Nodes.UpdateStatus(ctx, "n1", func(n *schemas.Node) error { n.Status = "Sleepy"; return nil })
	if _, ok := registry.IsInvalid(err); !ok {
		t.Fatalf("status Sleepy = %v, want invalid", err)
	}
}

// WriteStatus, the node API's, is one compare-and-swap at the revision
// given: a stale one is a conflict, never a write over a newer pod.
func TestWriteStatusIsCompareAndSwap(t *testing.T) {
	conn, reg, ctx := setup(t)
	p := pod("p")
	if err := reg.Pods.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	old := p.DeepCopy()
	next := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "p"}, Status: schemas.PodRunning, PodSpec: schemas.PodSpec{Image: "nginx"}}
	if err := reg.Pods.WriteStatus(ctx, next, old); err != nil {
		t.Fatal(err)
	}
	if next.Image != "busybox" || next.Status != schemas.PodRunning || !reflect.DeepEqual(old, p) {
		t.Fatalf("written %+v (old %+v): want old's spec with the new status, old untouched", next, old)
	}
	again := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "p"}, Status: schemas.PodSucceeded}
	if err := reg.Pods.WriteStatus(ctx, again, old); !errors.Is(err, bus.ErrConflict) {
		t.Fatalf("write at a stale revision = %v, want ErrConflict", err)
	}
	if got, _ := conn.Pods.Get(ctx, "p"); got.Status != schemas.PodRunning {
		t.Fatalf("stored status %s, want Running", got.Status)
	}
}
