package apiserver_test

import (
	"encoding/json"
	"net/http"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
)

// smp is the strategic merge patch from old to new, as kubectl builds
// it (cordon, uncordon, set image).
func smp[T any](t *testing.T, old, new T, dataStruct any) []byte {
	t.Helper()
	a, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(new)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strategicpatch.CreateTwoWayMergePatch(a, b, dataStruct)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestKubeCordonUncordon does what kubectl cordon and uncordon do: read
// the node, flip spec.unschedulable, send the two-way strategic merge
// patch. Uncordon's patch leaves in place the cordon taint the read
// showed.
func TestKubeCordonUncordon(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	nodes := e.client.CoreV1().Nodes()
	if _, err := nodes.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []bool{true, false, true, false} {
		old, err := nodes.Get(ctx, "n1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n := old.DeepCopy()
		n.Spec.Unschedulable = want
		got, err := nodes.Patch(ctx, "n1", types.StrategicMergePatchType, smp(t, old, n, corev1.Node{}), metav1.PatchOptions{})
		if err != nil {
			t.Fatalf("unschedulable=%v: %v", want, err)
		}
		if got.Spec.Unschedulable != want || (len(got.Spec.Taints) == 1) != want {
			t.Errorf("unschedulable=%v: got unschedulable %v taints %v", want, got.Spec.Unschedulable, got.Spec.Taints)
		}
	}
}

// TestKubeSetImage does what kubectl set image does to a replicaset's
// template (a pod's spec is immutable in MiniKu yet): the patch changes only the image, so the pull
// policy the read showed (Kubernetes' default for the old image) is
// carried over to the new one.
func TestKubeSetImage(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	rss := e.client.AppsV1().ReplicaSets("default")
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "img"}, Spec: appsv1.ReplicaSetSpec{
		Replicas: ptr(int32(0)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "img"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "img"}}, Spec: kpod("", nil).Spec}}}
	if _, err := rss.Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// busybox (Always) to a tag (IfNotPresent by default) and back.
	for _, image := range []string{"busybox:1.36", "busybox", "busybox:1.37"} {
		old, err := rss.Get(ctx, "img", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n := old.DeepCopy()
		n.Spec.Template.Spec.Containers[0].Image = image
		got, err := rss.Patch(ctx, "img", types.StrategicMergePatchType, smp(t, old, n, appsv1.ReplicaSet{}), metav1.PatchOptions{})
		if err != nil {
			t.Fatalf("replicaset set image %s: %v", image, err)
		}
		if c := got.Spec.Template.Spec.Containers[0]; c.Image != image {
			t.Errorf("replicaset image %q, want %q", c.Image, image)
		}
	}
	// Never is refused: MiniKu's kubelet pulls an image it does not have.
	pods := e.client.CoreV1().Pods("default")
	never := kpod("never", nil)
	never.Spec.Containers[0].ImagePullPolicy = corev1.PullNever
	_, err := pods.Create(ctx, never, metav1.CreateOptions{})
	if st := statusOf(t, err); st.Code != http.StatusUnprocessableEntity || st.Details == nil || len(st.Details.Causes) != 1 ||
		st.Details.Causes[0].Field != "spec.containers[0].imagePullPolicy" {
		t.Errorf("imagePullPolicy Never: %d %s %+v", st.Code, st.Message, st.Details)
	}
}

func ptr[T any](v T) *T { return &v }
