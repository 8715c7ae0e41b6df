package kinds

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/miniku/miniku/schemas"
)

var t0 = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

// roundTrip converts stored to wire and back through JSON, as a client
// that GETs and PUTs it back does.
func roundTrip(t *testing.T, k Kind, stored any) any {
	t.Helper()
	wire, err := k.ToKube(stored)
	if err != nil {
		t.Fatalf("ToKube: %v", err)
	}
	data, err := json.Marshal(wire)
	if err != nil {
		t.Fatal(err)
	}
	in := k.NewKube()
	if err := json.Unmarshal(data, in); err != nil {
		t.Fatal(err)
	}
	back, errs := k.FromKube(in)
	if len(errs) > 0 {
		t.Fatalf("FromKube of ToKube's output refused: %v\n%s", errs.ToAggregate(), data)
	}
	return back
}

func TestRegistry(t *testing.T) {
	for _, r := range []string{"nodes", "namespaces"} {
		k, ok := ByResource(r)
		if !ok {
			t.Fatalf("%s not registered", r)
		}
		if k.Info().Resource != r || k.NewStored() == nil || k.NewKube() == nil || k.NewKubeList() == nil {
			t.Errorf("%s: incomplete declaration %+v", r, k.Info())
		}
	}
	all := All()
	for i := 1; i < len(all); i++ {
		a, b := all[i-1].Info(), all[i].Info()
		if a.GroupVersion.String() > b.GroupVersion.String() || a.GroupVersion == b.GroupVersion && a.Resource >= b.Resource {
			t.Errorf("All not sorted: %s/%s before %s/%s", a.GroupVersion, a.Resource, b.GroupVersion, b.Resource)
		}
	}
}

func TestNodeRoundTrip(t *testing.T) {
	for name, n := range map[string]*schemas.Node{
		"ready": {ObjectMeta: schemas.ObjectMeta{Name: "node-1", UID: "u1", ResourceVersion: 7, CreatedAt: t0},
			Status: schemas.NodeReady, LastHeartbeat: t0.Add(time.Minute),
			Capacity: schemas.ResourceList{CPU: "2", Memory: "4Gi", Pods: 110}},
		"cordoned, lost, pressure, labelled": {ObjectMeta: schemas.ObjectMeta{Name: "node-2", CreatedAt: t0,
			Labels: map[string]string{"disk": "ssd", LabelOS: "plan9"}, Annotations: map[string]string{"a": "b"}},
			Status: schemas.NodeNotReady, Reason: "NodeLost", LastHeartbeat: t0, Hostname: "host-2", Unschedulable: true,
			Conditions: []schemas.NodeCondition{{Type: schemas.NodeDiskPressure, Status: "True", Reason: "Full", Message: "m", LastTransitionTime: t0}}},
	} {
		t.Run(name, func(t *testing.T) {
			back := roundTrip(t, Node, n).(*schemas.Node)
			if !reflect.DeepEqual(back, n) {
				t.Errorf("round trip changed the node:\n got %+v\nwant %+v", back, n)
			}
		})
	}
}

func TestNodeToKube(t *testing.T) {
	k, err := NodeToKube(&schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: "n1", CreatedAt: t0}, Status: schemas.NodeReady,
		Unschedulable: true, Capacity: schemas.ResourceList{CPU: "2", Memory: "1Gi", Pods: 10}})
	if err != nil {
		t.Fatal(err)
	}
	if k.Labels[LabelHostname] != "n1" || k.Labels[LabelOS] == "" || k.Labels[LabelArch] == "" {
		t.Errorf("labels %v", k.Labels)
	}
	if len(k.Spec.Taints) != 1 || k.Spec.Taints[0].Key != TaintUnschedulable {
		t.Errorf("taints %v", k.Spec.Taints)
	}
	want := map[corev1.NodeConditionType]corev1.ConditionStatus{"Ready": "True", "MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False"}
	for _, c := range k.Status.Conditions {
		if want[c.Type] != c.Status {
			t.Errorf("condition %s = %s, want %s", c.Type, c.Status, want[c.Type])
		}
		delete(want, c.Type)
	}
	if len(want) > 0 {
		t.Errorf("missing conditions %v", want)
	}
	if q := k.Status.Allocatable[corev1.ResourcePods]; q.Value() != 10 {
		t.Errorf("allocatable pods %v", q.String())
	}
	if k.Status.NodeInfo.KubeletVersion != KubeletVersion {
		t.Errorf("nodeInfo %+v", k.Status.NodeInfo)
	}
}

// errPaths is the sorted field paths of errs.
func errPaths(errs field.ErrorList) string {
	var p []string
	for _, e := range errs {
		p = append(p, e.Field)
	}
	return strings.Join(p, " ")
}

func TestNodeFromKubeRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*corev1.Node)
		want string
	}{
		{"podCIDR", func(n *corev1.Node) { n.Spec.PodCIDR = "10.0.0.0/24" }, "spec.podCIDR"},
		{"taint", func(n *corev1.Node) { n.Spec.Taints = []corev1.Taint{{Key: "x", Effect: "NoSchedule"}} }, "spec.taints[0]"},
		{"cordon taint without unschedulable", func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{{Key: TaintUnschedulable, Effect: "NoSchedule"}}
		}, "spec.taints[0]"},
		{"namespace", func(n *corev1.Node) { n.Namespace = "default" }, "metadata.namespace"},
		{"resourceVersion", func(n *corev1.Node) { n.ResourceVersion = "x" }, "metadata.resourceVersion"},
		{"gpu", func(n *corev1.Node) { n.Status.Capacity = corev1.ResourceList{"nvidia.com/gpu": {}} }, "status.capacity[nvidia.com/gpu]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}}
			tc.mod(n)
			_, errs := NodeFromKube(n)
			if got := errPaths(errs); got != tc.want {
				t.Errorf("errors at %q, want %q (%v)", got, tc.want, errs.ToAggregate())
			}
		})
	}
}

func TestNamespaceRoundTripAndRules(t *testing.T) {
	ns := &schemas.Namespace{ObjectMeta: schemas.ObjectMeta{Name: "team", UID: "u", CreatedAt: t0, Labels: map[string]string{"a": "b"}}, Phase: schemas.NamespaceActive}
	if back := roundTrip(t, Namespace, ns); !reflect.DeepEqual(back, ns) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, ns)
	}
	k, _ := NamespaceToKube(ns)
	if k.Labels[labelNamespaceName] != "team" || len(k.Spec.Finalizers) != 1 {
		t.Errorf("ToKube %+v", k)
	}
	k.Spec.Finalizers = append(k.Spec.Finalizers, "example.com/x")
	if _, errs := NamespaceFromKube(k); errPaths(errs) != "spec.finalizers[1]" {
		t.Errorf("extra finalizer: %v", errs)
	}

	created := &schemas.Namespace{ObjectMeta: schemas.ObjectMeta{Name: "new", UID: "client", ResourceVersion: 3}, Phase: schemas.NamespaceTerminating}
	Namespace.PrepareForCreate(created, t0)
	if created.UID == "client" || len(created.UID) != 32 || created.ResourceVersion != 0 || !created.CreatedAt.Equal(t0) || created.Phase != schemas.NamespaceActive {
		t.Errorf("PrepareForCreate: %+v", created)
	}
	if errs := Namespace.Validate(created); len(errs) > 0 {
		t.Errorf("Validate: %v", errs)
	}
	upd := &schemas.Namespace{ObjectMeta: schemas.ObjectMeta{Name: "new"}, Phase: schemas.NamespaceTerminating}
	Namespace.PrepareForUpdate(upd, created)
	if upd.UID != created.UID || upd.Phase != schemas.NamespaceActive || len(Namespace.ValidateUpdate(upd, created)) > 0 {
		t.Errorf("PrepareForUpdate: %+v", upd)
	}
	upd.UID = "other"
	if errs := Namespace.ValidateUpdate(upd, created); errPaths(errs) != "metadata.uid" {
		t.Errorf("uid change: %v", errs)
	}
	bad := &schemas.Namespace{ObjectMeta: schemas.ObjectMeta{Name: "Bad_Name"}}
	if errs := Namespace.Validate(bad); errPaths(errs) != "metadata.name" {
		t.Errorf("bad name: %v", errs)
	}
}

func TestTables(t *testing.T) {
	now := t0.Add(90 * time.Minute)
	for _, tc := range []struct {
		kind Kind
		obj  any
		want []any
	}{
		{Node, &schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: "n1", CreatedAt: t0}, Status: schemas.NodeReady, Unschedulable: true},
			[]any{"n1", "Ready,SchedulingDisabled", "<none>", "90m", KubeletVersion, "<none>", "<none>", "<unknown>", "<unknown>", "miniku://1.33.0-miniku"}},
		{Node, &schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: "n2", CreatedAt: t0, Labels: map[string]string{"node-role.kubernetes.io/control-plane": ""}}, Status: schemas.NodeNotReady},
			[]any{"n2", "NotReady", "control-plane", "90m", KubeletVersion, "<none>", "<none>", "<unknown>", "<unknown>", "miniku://1.33.0-miniku"}},
		{Namespace, &schemas.Namespace{ObjectMeta: schemas.ObjectMeta{Name: "default", CreatedAt: t0.Add(-49 * time.Hour)}, Phase: schemas.NamespaceActive},
			[]any{"default", "Active", "2d2h"}},
	} {
		wire, err := tc.kind.ToKube(tc.obj)
		if err != nil {
			t.Fatal(err)
		}
		tab, err := tc.kind.Table([]runtime.Object{wire}, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(tab.ColumnDefinitions) != len(tc.want) || tab.ColumnDefinitions[0].Format != "name" {
			t.Errorf("%s: columns %+v", tc.kind.Info().Resource, tab.ColumnDefinitions)
		}
		if got := tab.Rows[0].Cells; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: row\n got %q\nwant %q", tc.kind.Info().Resource, got, tc.want)
		}
		if tab.Rows[0].Object.Object != wire {
			t.Errorf("%s: row object not the wire object", tc.kind.Info().Resource)
		}
	}
}
