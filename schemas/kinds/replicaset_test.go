package kinds

import (
	"reflect"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/miniku/miniku/schemas"
)

func testReplicaSets() map[string]*schemas.ReplicaSet {
	return map[string]*schemas.ReplicaSet{
		"plain": {ObjectMeta: schemas.ObjectMeta{Name: "web", UID: "u", ResourceVersion: 4, CreatedAt: t0, Generation: 2},
			DesiredCount: 3, Selector: map[string]string{"app": "web"},
			Template: schemas.PodTemplate{PodSpec: schemas.PodSpec{Image: "nginx:1.27"}}, CurrentCount: 3, ReadyCount: 2},
		"named template, own labels": {ObjectMeta: schemas.ObjectMeta{Name: "db", CreatedAt: t0, Generation: 1, Annotations: map[string]string{"a": "b"}},
			DesiredCount: 0, Selector: map[string]string{"app": "db"},
			Template: schemas.PodTemplate{Name: "postgres", Labels: map[string]string{"app": "db", "tier": "data"}, Annotations: map[string]string{"checksum/config": "abc"},
				PodSpec: schemas.PodSpec{Image: "postgres", Command: []string{"postgres"}, Resources: schemas.ResourceList{CPU: "1", Memory: "1Gi"},
					Ports: []schemas.ContainerPort{{ContainerPort: 5432}}}}},
	}
}

func TestReplicaSetRoundTrip(t *testing.T) {
	for name, rs := range testReplicaSets() {
		t.Run(name, func(t *testing.T) {
			if back := roundTrip(t, ReplicaSet, rs); !reflect.DeepEqual(back, rs) {
				t.Errorf("round trip:\n got %+v\nwant %+v", back, rs)
			}
		})
	}
}

func TestReplicaSetToKube(t *testing.T) {
	k, err := ReplicaSetToKube(testReplicaSets()["plain"])
	if err != nil {
		t.Fatal(err)
	}
	if *k.Spec.Replicas != 3 || k.Spec.Selector.MatchLabels["app"] != "web" || k.Spec.Template.Labels["app"] != "web" ||
		k.Spec.Template.Spec.Containers[0].Name != "web" || k.Spec.Template.Spec.Containers[0].ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("spec %+v", k.Spec)
	}
	if s := k.Status; s.Replicas != 3 || s.ReadyReplicas != 2 || s.AvailableReplicas != 2 || s.FullyLabeledReplicas != 3 || s.ObservedGeneration != 2 {
		t.Errorf("status %+v", s)
	}
}

func TestReplicaSetFromKubeRefuses(t *testing.T) {
	base := func() *appsv1.ReplicaSet {
		k, _ := ReplicaSetToKube(testReplicaSets()["plain"])
		return k
	}
	for _, tc := range []struct {
		name string
		mod  func(*appsv1.ReplicaSet)
		want string
	}{
		{"ok", func(*appsv1.ReplicaSet) {}, ""},
		{"matchExpressions", func(r *appsv1.ReplicaSet) {
			r.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Exists"}}
		}, "spec.selector.matchExpressions"},
		{"no selector", func(r *appsv1.ReplicaSet) { r.Spec.Selector = nil }, "spec.selector"},
		{"minReadySeconds", func(r *appsv1.ReplicaSet) { r.Spec.MinReadySeconds = 5 }, "spec.minReadySeconds"},
		{"template generateName", func(r *appsv1.ReplicaSet) { r.Spec.Template.GenerateName = "x-" }, "spec.template.metadata.generateName"},
		{"template annotations kept", func(r *appsv1.ReplicaSet) { r.Spec.Template.Annotations = map[string]string{"a": "b"} }, ""},
		{"template probe", func(r *appsv1.ReplicaSet) { r.Spec.Template.Spec.Containers[0].ReadinessProbe = &corev1.Probe{} }, "spec.template.spec.containers[0].readinessProbe"},
		{"template nodeName", func(r *appsv1.ReplicaSet) { r.Spec.Template.Spec.NodeName = "n" }, "spec.template.spec.nodeName"},
		{"namespace", func(r *appsv1.ReplicaSet) { r.Namespace = "prod" }, "metadata.namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			tc.mod(r)
			_, errs := ReplicaSetFromKube(r)
			if got := errPaths(errs); got != tc.want {
				t.Errorf("errors at %q, want %q (%v)", got, tc.want, errs.ToAggregate())
			}
		})
	}
	// Replicas absent means 1, as Kubernetes defaults it.
	r := base()
	r.Spec.Replicas = nil
	if rs, _ := ReplicaSetFromKube(r); rs.DesiredCount != 1 {
		t.Errorf("default replicas %d", rs.DesiredCount)
	}
}

func TestReplicaSetStrategy(t *testing.T) {
	rs := testReplicaSets()["plain"].DeepCopy()
	PrepareReplicaSetForCreate(rs, t0)
	if rs.CurrentCount != 0 || rs.ReadyCount != 0 || rs.Generation != 0 || rs.UID == "u" {
		t.Errorf("PrepareForCreate: %+v", rs)
	}
	if errs := ValidateReplicaSet(rs); len(errs) > 0 {
		t.Fatal(errs)
	}
	old := rs.DeepCopy()
	old.CurrentCount = 2
	upd := rs.DeepCopy()
	upd.Labels = map[string]string{"x": "y"}
	PrepareReplicaSetForUpdate(upd, old)
	if upd.Generation != 0 || upd.CurrentCount != 2 {
		t.Errorf("metadata-only update: %+v", upd)
	}
	upd.DesiredCount = 5
	PrepareReplicaSetForUpdate(upd, old)
	if upd.Generation != 2 || len(ValidateReplicaSetUpdate(upd, old)) > 0 {
		t.Errorf("scale: generation %d, %v", upd.Generation, ValidateReplicaSetUpdate(upd, old))
	}
	upd.Selector = map[string]string{"app": "other"}
	if got := errPaths(ValidateReplicaSetUpdate(upd, old)); got != "spec.selector spec.template.metadata.labels" && got != "spec.selector" {
		t.Errorf("selector change: %q", got)
	}
	bad := rs.DeepCopy()
	bad.DesiredCount, bad.Template.RestartPolicy = -1, schemas.RestartNever
	if got := errPaths(ValidateReplicaSet(bad)); got != "spec.template.spec.restartPolicy spec.replicas" {
		t.Errorf("bad paths %q", got)
	}
	bad = rs.DeepCopy()
	bad.Template.Annotations = map[string]string{"bad key": "v"}
	if got := errPaths(ValidateReplicaSet(bad)); got != "spec.template.metadata.annotations" {
		t.Errorf("bad template annotation: %q", got)
	}
	s := ReplicaSetScale(rs)
	if s.Spec.Replicas != 3 || s.Status.Selector != "app=web" {
		t.Errorf("scale %+v", s)
	}
	if errs := SetReplicaSetScale(rs, &autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: -1}}); errPaths(errs) != "spec.replicas" {
		t.Errorf("negative scale: %v", errs)
	}
}

func TestReplicaSetAndEventTables(t *testing.T) {
	now := t0.Add(10 * time.Second)
	k, _ := ReplicaSetToKube(testReplicaSets()["plain"])
	tab, err := ReplicaSet.Table([]runtime.Object{k}, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := []any{"web", int64(3), int64(3), int64(2), "10s", "web", "nginx:1.27", "app=web"}; !reflect.DeepEqual(tab.Rows[0].Cells, want) {
		t.Errorf("rs row %v, want %v", tab.Rows[0].Cells, want)
	}
	ev := &schemas.ObjectEvent{Time: t0, Type: schemas.EventNormal, Reason: "Scheduled", Kind: schemas.KindPod, Name: "web-1",
		Node: "node-1", Component: "scheduler", Message: "assigned to node-1", Seq: 26}
	ke, _ := EventToKube(ev)
	if ke.Name != "web-1.1a" || ke.InvolvedObject.Namespace != "default" || ke.Count != 1 || ke.Source.Host != "node-1" {
		t.Errorf("event %+v", ke)
	}
	tab, err = Event.Table([]runtime.Object{ke}, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := []any{"10s", "Normal", "Scheduled", "pod/web-1", "", "scheduler, node-1", "assigned to node-1", "10s", int64(1), "web-1.1a"}; !reflect.DeepEqual(tab.Rows[0].Cells, want) {
		t.Errorf("event row %v, want %v", tab.Rows[0].Cells, want)
	}
	if back := roundTrip(t, Event, ev); !reflect.DeepEqual(back, ev) {
		t.Errorf("event round trip %+v", back)
	}
	// The third event of one message: its name says which.
	third := *ev
	third.Index = 2
	if ke, _ := EventToKube(&third); ke.Name != "web-1.1a-2" {
		t.Errorf("third event of a message named %s", ke.Name)
	}
	if back := roundTrip(t, Event, &third); !reflect.DeepEqual(back, &third) {
		t.Errorf("event round trip %+v", back)
	}
	node, _ := EventToKube(&schemas.ObjectEvent{Kind: schemas.KindNode, Name: "node-1"})
	if node.InvolvedObject.Namespace != "" {
		t.Errorf("node event involves namespace %q", node.InvolvedObject.Namespace)
	}
}
