package apiserver_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/miniku/miniku/schemas"
)

const holdFinalizer = "example.com/hold"

var dropFinalizers = []byte(`{"metadata":{"finalizers":null}}`)

// TestKubeDeleteFinalizers: a finalizer keeps a deleted object, marked
// (deletionTimestamp, deletionGracePeriodSeconds 0), refusing new
// finalizers, until a patch removes the last one: then it is gone.
func TestKubeDeleteFinalizers(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	cms := e.client.CoreV1().ConfigMaps("default")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{holdFinalizer}}, Data: map[string]string{"a": "1"}}
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, "held", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := cms.Get(ctx, "held", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("object with a finalizer gone at delete: %v", err)
	}
	if got.DeletionTimestamp == nil || got.DeletionGracePeriodSeconds == nil || *got.DeletionGracePeriodSeconds != 0 {
		t.Fatalf("deleted object not marked: %v %v", got.DeletionTimestamp, got.DeletionGracePeriodSeconds)
	}
	marked := got.DeletionTimestamp
	// A second delete changes nothing.
	if err := cms.Delete(ctx, "held", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Updates still work, but add no finalizer and keep the mark.
	got.Data["a"] = "2"
	upd, err := cms.Update(ctx, got, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update of a terminating object: %v", err)
	}
	if upd.DeletionTimestamp == nil || !upd.DeletionTimestamp.Equal(marked) {
		t.Fatalf("update moved deletionTimestamp: %v, was %v", upd.DeletionTimestamp, marked)
	}
	upd.Finalizers = append(upd.Finalizers, "example.com/more")
	_, err = cms.Update(ctx, upd, metav1.UpdateOptions{})
	if st := statusOf(t, err); st.Code != http.StatusUnprocessableEntity || st.Details == nil || len(st.Details.Causes) == 0 ||
		st.Details.Causes[0].Field != "metadata.finalizers" {
		t.Fatalf("new finalizer on a terminating object: %d %s %+v", st.Code, st.Message, st.Details)
	}
	if _, err := cms.Patch(ctx, "held", types.MergePatchType, dropFinalizers, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Get(ctx, "held", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after its last finalizer went: %v, want NotFound", err)
	}
	// Without finalizers, a delete removes at once.
	cm.Finalizers = nil
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, "held", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Get(ctx, "held", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after delete: %v, want NotFound", err)
	}
}

// TestKubeDeletePropagation: Orphan and Foreground put their finalizer
// on the owner (for the garbage collector to act on and remove);
// Background, the default, removes it at once; a later delete may change
// the policy.
func TestKubeDeletePropagation(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	rss := e.client.AppsV1().ReplicaSets("default")
	create := func(name string) {
		t.Helper()
		rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr(int32(0)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}}, Spec: kpod("", nil).Spec}}}
		if _, err := rss.Create(ctx, rs, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	policy := func(p metav1.DeletionPropagation) metav1.DeleteOptions {
		return metav1.DeleteOptions{PropagationPolicy: &p}
	}
	for _, tc := range []struct {
		policy    metav1.DeletionPropagation
		finalizer string
	}{
		{metav1.DeletePropagationOrphan, "orphan"},
		{metav1.DeletePropagationForeground, "foregroundDeletion"},
	} {
		create("rs")
		if err := rss.Delete(ctx, "rs", policy(tc.policy)); err != nil {
			t.Fatal(err)
		}
		got, err := rss.Get(ctx, "rs", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("%s: %v", tc.policy, err)
		}
		if got.DeletionTimestamp == nil || !slices.Equal(got.Finalizers, []string{tc.finalizer}) {
			t.Fatalf("%s: deletionTimestamp %v, finalizers %v", tc.policy, got.DeletionTimestamp, got.Finalizers)
		}
		// Background now: the finalizer goes, and so the object.
		if err := rss.Delete(ctx, "rs", policy(metav1.DeletePropagationBackground)); err != nil {
			t.Fatal(err)
		}
		if _, err := rss.Get(ctx, "rs", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("%s then Background: %v, want NotFound", tc.policy, err)
		}
	}
	// kubectl --cascade=orphan with an old client: orphanDependents.
	create("old")
	if err := rss.Delete(ctx, "old", metav1.DeleteOptions{OrphanDependents: ptr(true)}); err != nil { //nolint:staticcheck // what old clients send
		t.Fatal(err)
	}
	if got, err := rss.Get(ctx, "old", metav1.GetOptions{}); err != nil || !slices.Equal(got.Finalizers, []string{"orphan"}) {
		t.Fatalf("orphanDependents: %v %v", got, err)
	}
	create("bg")
	if err := rss.Delete(ctx, "bg", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rss.Get(ctx, "bg", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("default (Background): %v, want NotFound", err)
	}
}

// TestKubeDeletePreconditions: a stale uid or resourceVersion is a 409,
// and the object stays.
func TestKubeDeletePreconditions(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	cms := e.client.CoreV1().ConfigMaps("default")
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stale := cm.ResourceVersion
	cm.Data = map[string]string{"x": "y"}
	if cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wrong := types.UID("not-its-uid")
	for name, pre := range map[string]*metav1.Preconditions{
		"resourceVersion": {ResourceVersion: &stale},
		"uid":             {UID: &wrong},
	} {
		err := cms.Delete(ctx, "c", metav1.DeleteOptions{Preconditions: pre})
		if !apierrors.IsConflict(err) {
			t.Fatalf("stale %s: %v, want 409 Conflict", name, err)
		}
	}
	uid, rv := cm.UID, cm.ResourceVersion
	if err := cms.Delete(ctx, "c", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}}); err != nil {
		t.Fatalf("current preconditions: %v", err)
	}
	if _, err := cms.Get(ctx, "c", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after delete: %v, want NotFound", err)
	}
}

// TestKubeDeletePodFinalizers: a pod a finalizer holds is stopped as any
// other (terminating with its grace; its kubelet sets the grace to 0 when
// done, through the node API) and goes with its last finalizer. An
// unbound one is marked with no grace left at once.
func TestKubeDeletePodFinalizers(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	pods := e.client.CoreV1().Pods("default")
	if err := e.conn.Nodes.Create(ctx, &schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: "node-1"}, Status: schemas.NodeReady}); err != nil {
		t.Fatal(err)
	}
	for _, node := range []string{"", "node-1"} {
		p := kpod("held", nil)
		p.Finalizers = []string{holdFinalizer}
		p.Spec.NodeName = node
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := pods.Delete(ctx, "held", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		got, err := pods.Get(ctx, "held", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("node %q: %v", node, err)
		}
		want := int64(0)
		if node != "" {
			want = 30 // its kubelet stops it first
		}
		if got.DeletionTimestamp == nil || got.DeletionGracePeriodSeconds == nil || *got.DeletionGracePeriodSeconds != want {
			t.Fatalf("node %q: deletionTimestamp %v, grace %v, want %d", node, got.DeletionTimestamp, got.DeletionGracePeriodSeconds, want)
		}
		if node != "" {
			// The kubelet, done: kept for the finalizer, with no grace left.
			stored, err := e.conn.Pods.Get(ctx, "held")
			if err != nil {
				t.Fatal(err)
			}
			kept, err := e.conn.DeletePod(ctx, node, stored)
			if err != nil {
				t.Fatal(err)
			}
			if kept == nil || kept.DeletionGracePeriodSeconds == nil || *kept.DeletionGracePeriodSeconds != 0 {
				t.Fatalf("kubelet's delete of a pod a finalizer holds: %+v", kept)
			}
		}
		if _, err := pods.Patch(ctx, "held", types.MergePatchType, dropFinalizers, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := pods.Get(ctx, "held", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("node %q, after its last finalizer went: %v, want NotFound", node, err)
		}
	}
}

// A pod whose finalizer goes while its kubelet still stops it stays
// until the kubelet is done.
func TestKubeDeletePodFinalizerBeforeKubelet(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	pods := e.client.CoreV1().Pods("default")
	if err := e.conn.Nodes.Create(ctx, &schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: "node-1"}, Status: schemas.NodeReady}); err != nil {
		t.Fatal(err)
	}
	p := kpod("held", nil)
	p.Finalizers = []string{holdFinalizer}
	p.Spec.NodeName = "node-1"
	if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Delete(ctx, "held", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Patch(ctx, "held", types.MergePatchType, dropFinalizers, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	stored, err := e.conn.Pods.Get(ctx, "held")
	if err != nil {
		t.Fatalf("pod removed before its kubelet stopped it: %v", err)
	}
	if kept, err := e.conn.DeletePod(context.Background(), "node-1", stored); err != nil || kept != nil {
		t.Fatalf("kubelet's delete: kept %v, %v", kept, err)
	}
	if _, err := pods.Get(ctx, "held", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after the kubelet: %v, want NotFound", err)
	}
}
