package apiserver_test

import (
	"encoding/json"
	"testing"

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
