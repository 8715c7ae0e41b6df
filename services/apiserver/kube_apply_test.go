package apiserver_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
)

// managersOf is the manager and operation of each managedFields entry
// that owns path (a fieldsV1 key such as "f:data" then "f:mode").
func managersOf(t *testing.T, om metav1.ObjectMeta, path ...string) []string {
	t.Helper()
	var out []string
	for _, e := range om.ManagedFields {
		var m map[string]any
		if e.FieldsV1 == nil || json.Unmarshal(e.FieldsV1.Raw, &m) != nil {
			continue
		}
		ok := true
		for _, p := range path {
			next, has := m[p].(map[string]any)
			if !has {
				ok = false
				break
			}
			m = next
		}
		if ok {
			out = append(out, e.Manager+"/"+string(e.Operation))
		}
	}
	return out
}

func TestKubeApplyCreatesAndRemovesFields(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	cms := e.client.CoreV1().ConfigMaps("default")

	cm, err := cms.Apply(ctx, corev1ac.ConfigMap("settings", "default").
		WithLabels(map[string]string{"app": "web"}).
		WithData(map[string]string{"a": "1", "b": "2"}), metav1.ApplyOptions{FieldManager: "alice"})
	if err != nil {
		t.Fatalf("apply (create): %v", err)
	}
	if cm.UID == "" || cm.ResourceVersion == "" || cm.Data["a"] != "1" || cm.Data["b"] != "2" {
		t.Fatalf("created by apply: %+v", cm)
	}
	got, err := cms.Get(ctx, "settings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m := managersOf(t, got.ObjectMeta, "f:data", "f:b"); len(m) != 1 || m[0] != "alice/Apply" {
		t.Errorf("data.b managed by %v, want [alice/Apply]; managedFields %+v", m, got.ManagedFields)
	}

	// Another manager adds a field; alice stops applying b: b goes,
	// bob's c stays.
	if _, err := cms.Apply(ctx, corev1ac.ConfigMap("settings", "default").WithData(map[string]string{"c": "3"}),
		metav1.ApplyOptions{FieldManager: "bob"}); err != nil {
		t.Fatalf("apply by bob: %v", err)
	}
	cm, err = cms.Apply(ctx, corev1ac.ConfigMap("settings", "default").
		WithLabels(map[string]string{"app": "web"}).
		WithData(map[string]string{"a": "1"}), metav1.ApplyOptions{FieldManager: "alice"})
	if err != nil {
		t.Fatalf("apply without b: %v", err)
	}
	if _, has := cm.Data["b"]; has || cm.Data["a"] != "1" || cm.Data["c"] != "3" || cm.Labels["app"] != "web" {
		t.Errorf("after alice stopped applying b: data %v labels %v, want a=1 c=3, no b", cm.Data, cm.Labels)
	}

	// Applying the same again changes nothing: same resourceVersion.
	again, err := cms.Apply(ctx, corev1ac.ConfigMap("settings", "default").
		WithLabels(map[string]string{"app": "web"}).
		WithData(map[string]string{"a": "1"}), metav1.ApplyOptions{FieldManager: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if again.ResourceVersion != cm.ResourceVersion {
		t.Errorf("unchanged apply wrote: resourceVersion %s → %s", cm.ResourceVersion, again.ResourceVersion)
	}
}

func TestKubeApplyConflictAndForce(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	cms := e.client.CoreV1().ConfigMaps("default")
	if _, err := cms.Apply(ctx, corev1ac.ConfigMap("cfg", "default").WithData(map[string]string{"mode": "fast"}),
		metav1.ApplyOptions{FieldManager: "alice"}); err != nil {
		t.Fatal(err)
	}
	_, err := cms.Apply(ctx, corev1ac.ConfigMap("cfg", "default").WithData(map[string]string{"mode": "slow"}),
		metav1.ApplyOptions{FieldManager: "bob"})
	var se *apierrors.StatusError
	if !apierrors.IsConflict(err) || !errors.As(err, &se) {
		t.Fatalf("bob's apply over alice's field: %v, want 409 Conflict", err)
	}
	st := se.ErrStatus
	if st.Details == nil || len(st.Details.Causes) != 1 {
		t.Fatalf("conflict status %+v, want one cause", st)
	}
	c := st.Details.Causes[0]
	if c.Type != metav1.CauseTypeFieldManagerConflict || c.Field != ".data.mode" || !strings.Contains(c.Message, `"alice"`) {
		t.Errorf("cause %+v, want FieldManagerConflict on .data.mode with alice", c)
	}
	if !strings.Contains(st.Message, "Apply failed with 1 conflict") {
		t.Errorf("message %q", st.Message)
	}
	if got, _ := cms.Get(ctx, "cfg", metav1.GetOptions{}); got.Data["mode"] != "fast" {
		t.Errorf("a refused apply changed the object: %v", got.Data)
	}

	cm, err := cms.Apply(ctx, corev1ac.ConfigMap("cfg", "default").WithData(map[string]string{"mode": "slow"}),
		metav1.ApplyOptions{FieldManager: "bob", Force: true})
	if err != nil {
		t.Fatalf("forced apply: %v", err)
	}
	if cm.Data["mode"] != "slow" {
		t.Errorf("forced apply: data %v", cm.Data)
	}
	if m := managersOf(t, cm.ObjectMeta, "f:data", "f:mode"); len(m) != 1 || m[0] != "bob/Apply" {
		t.Errorf("after force data.mode managed by %v, want [bob/Apply]", m)
	}
	// alice lost the field: applying her old value now conflicts with bob.
	_, err = cms.Apply(ctx, corev1ac.ConfigMap("cfg", "default").WithData(map[string]string{"mode": "fast"}),
		metav1.ApplyOptions{FieldManager: "alice"})
	if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), `"bob"`) {
		t.Errorf("alice after bob forced: %v, want a conflict with bob", err)
	}
}

// An update (PUT, or a merge patch) records its manager's fields, so a
// later apply of one of them conflicts with it.
func TestKubeUpdateTracksManagedFields(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	cms := e.client.CoreV1().ConfigMaps("default")
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"mode": "fast"}},
		metav1.CreateOptions{FieldManager: "creator"})
	if err != nil {
		t.Fatal(err)
	}
	if m := managersOf(t, cm.ObjectMeta, "f:data", "f:mode"); len(m) != 1 || m[0] != "creator/Update" {
		t.Errorf("created: data.mode managed by %v, want [creator/Update]", m)
	}
	cm.Data["level"] = "3"
	if cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: "editor"}); err != nil {
		t.Fatal(err)
	}
	if m := managersOf(t, cm.ObjectMeta, "f:data", "f:level"); len(m) != 1 || m[0] != "editor/Update" {
		t.Errorf("updated: data.level managed by %v, want [editor/Update]", m)
	}
	if _, err := cms.Patch(ctx, "cfg", types.MergePatchType, []byte(`{"data":{"color":"red"}}`), metav1.PatchOptions{FieldManager: "patcher"}); err != nil {
		t.Fatal(err)
	}
	_, err = cms.Apply(ctx, corev1ac.ConfigMap("cfg", "default").WithData(map[string]string{"level": "4", "color": "blue"}),
		metav1.ApplyOptions{FieldManager: "alice"})
	if !apierrors.IsConflict(err) {
		t.Fatalf("apply over updated fields: %v, want 409", err)
	}
	for _, want := range []string{`"editor"`, `"patcher"`, ".data.level", ".data.color"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("conflict %q does not name %s", err, want)
		}
	}
	// The user agent names a write without a manager, as on Kubernetes.
	if _, err := cms.Patch(ctx, "cfg", types.MergePatchType, []byte(`{"data":{"x":"y"}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := cms.Get(ctx, "cfg", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m := managersOf(t, got.ObjectMeta, "f:data", "f:x"); len(m) != 1 || !strings.HasPrefix(m[0], "apiserver.test/") {
		t.Errorf("data.x managed by %v, want the test binary's user agent", m)
	}
}

func TestKubeApplyRefusals(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	// No fieldManager: 422 on PatchOptions, as kube-apiserver answers.
	res := e.client.CoreV1().RESTClient().Patch(types.ApplyPatchType).Namespace("default").Resource("configmaps").Name("x").
		Body([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n")).Do(ctx)
	var code int
	res.StatusCode(&code)
	if err := res.Error(); code != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), "fieldManager") {
		t.Errorf("apply without fieldManager: %d %v, want 422 naming fieldManager", code, err)
	}

	// A field MiniKu does not implement is refused as on every write,
	// naming its path, and nothing is stored.
	rs := appsv1ac.ReplicaSet("web", "default").WithSpec(appsv1ac.ReplicaSetSpec().
		WithReplicas(1).
		WithSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{"app": "web"})).
		WithTemplate(corev1ac.PodTemplateSpec().WithLabels(map[string]string{"app": "web"}).
			WithSpec(corev1ac.PodSpec().WithContainers(corev1ac.Container().WithName("c").WithImage("busybox").
				WithLivenessProbe(corev1ac.Probe().WithExec(corev1ac.ExecAction().WithCommand("true")))))))
	_, err := e.client.AppsV1().ReplicaSets("default").Apply(ctx, rs, metav1.ApplyOptions{FieldManager: "alice"})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.template.spec.containers[0].livenessProbe") {
		t.Errorf("apply with a livenessProbe: %v, want 422 naming the field", err)
	}
	if _, err := e.client.AppsV1().ReplicaSets("default").Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("refused apply left an object: %v", err)
	}

	// A field no schema has is the manifest's fault: 400.
	res = e.client.CoreV1().RESTClient().Patch(types.ApplyPatchType).Namespace("default").Resource("configmaps").Name("x").
		Param("fieldManager", "alice").Body([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\nnotAField: 1\n")).Do(ctx)
	res.StatusCode(&code)
	if err := res.Error(); code != http.StatusBadRequest || !strings.Contains(err.Error(), "notAField") {
		t.Errorf("apply with an unknown field: %d %v, want 400 naming it", code, err)
	}

	// dryRun applies and answers, and stores nothing.
	cm, err := e.client.CoreV1().ConfigMaps("default").Apply(ctx, corev1ac.ConfigMap("dry", "default").WithData(map[string]string{"a": "b"}),
		metav1.ApplyOptions{FieldManager: "alice", DryRun: []string{metav1.DryRunAll}})
	if err != nil || cm.Data["a"] != "b" {
		t.Fatalf("dry-run apply: %v %+v", err, cm)
	}
	if _, err := e.client.CoreV1().ConfigMaps("default").Get(ctx, "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("dry-run apply stored the object: %v", err)
	}
}

func TestKubeApplyReplicaSet(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	rss := e.client.AppsV1().ReplicaSets("default")
	apply := func(manager string, replicas int32, image string, force bool) error {
		rs := appsv1ac.ReplicaSet("web", "default").WithSpec(appsv1ac.ReplicaSetSpec().
			WithReplicas(replicas).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{"app": "web"})).
			WithTemplate(corev1ac.PodTemplateSpec().WithLabels(map[string]string{"app": "web"}).
				WithSpec(corev1ac.PodSpec().WithContainers(corev1ac.Container().WithName("c").WithImage(image)))))
		_, err := rss.Apply(ctx, rs, metav1.ApplyOptions{FieldManager: manager, Force: force})
		return err
	}
	if err := apply("alice", 2, "busybox", false); err != nil {
		t.Fatalf("apply: %v", err)
	}
	// kubectl scale's write through the scale subresource owns
	// spec.replicas afterwards: alice's next apply of another count
	// conflicts with it.
	if _, err := rss.Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"replicas":3}}`), metav1.PatchOptions{FieldManager: "scaler"}, "scale"); err != nil {
		t.Fatalf("scale: %v", err)
	}
	if err := apply("alice", 2, "busybox:2", false); !apierrors.IsConflict(err) || !strings.Contains(err.Error(), ".spec.replicas") {
		t.Fatalf("apply over a scaled count: %v, want a conflict on .spec.replicas", err)
	}
	if err := apply("alice", 2, "busybox:2", true); err != nil {
		t.Fatal(err)
	}
	got, err := rss.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *got.Spec.Replicas != 2 || got.Spec.Template.Spec.Containers[0].Image != "busybox:2" || len(got.Spec.Template.Spec.Containers) != 1 {
		t.Errorf("after forced apply: replicas %d, containers %+v", *got.Spec.Replicas, got.Spec.Template.Spec.Containers)
	}
}
