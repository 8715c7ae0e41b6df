package apiserver_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/miniku/miniku/schemas"
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

// TestKubeEvents lists, gets, watches and tabulates the EVENTS stream's
// records as v1 Events, with the field selector kubectl describe sends.
func TestKubeEvents(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	pod, err := e.client.CoreV1().Pods("default").Create(ctx, kpod("ev", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// What the scheduler and a kubelet emit: one event, then three in
	// one message.
	e.conn.Emit(schemas.ObjectEvent{Reason: "Scheduled", Kind: schemas.KindPod, Name: "ev", Node: "n1", Component: "default-scheduler"})
	e.conn.EmitAll([]schemas.ObjectEvent{
		{Reason: "Pulled", Kind: schemas.KindPod, Name: "ev", Node: "n1", Component: "kubelet"},
		{Reason: "Created", Kind: schemas.KindPod, Name: "ev", Node: "n1", Component: "kubelet"},
		{Reason: "Started", Kind: schemas.KindPod, Name: "ev", Node: "n1", Component: "kubelet"},
	})
	e.conn.Emit(schemas.ObjectEvent{Reason: "Scheduled", Kind: schemas.KindPod, Name: "other", Node: "n1", Component: "default-scheduler"})
	e.conn.Emit(schemas.ObjectEvent{Type: schemas.EventWarning, Reason: "NodeNotReady", Kind: schemas.KindNode, Name: "n1", Node: "n1"})

	events := e.client.CoreV1().Events("default")
	kind, uid := "Pod", string(pod.UID)
	sel := events.GetFieldSelector(&pod.Name, &pod.Namespace, &kind, &uid).String()
	var list *corev1.EventList
	deadline := time.Now().Add(10 * time.Second)
	for {
		list, err = events.List(ctx, metav1.ListOptions{FieldSelector: sel, Limit: 500})
		if err != nil {
			t.Fatalf("list %s: %v", sel, err)
		}
		if len(list.Items) >= 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var reasons []string
	seen := map[string]bool{}
	for _, ev := range list.Items {
		reasons = append(reasons, ev.Reason)
		if seen[ev.Name] {
			t.Errorf("two events named %s", ev.Name)
		}
		seen[ev.Name] = true
		if ev.InvolvedObject.Name != "ev" || ev.InvolvedObject.Kind != "Pod" || ev.Namespace != "default" {
			t.Errorf("event %s is about %+v in %q", ev.Name, ev.InvolvedObject, ev.Namespace)
		}
	}
	if got := strings.Join(reasons, ","); got != "Scheduled,Pulled,Created,Started" {
		t.Errorf("events of pod ev (%s): %s", sel, got)
	}
	all, err := e.client.CoreV1().Events("").List(ctx, metav1.ListOptions{})
	if err != nil || len(all.Items) != 6 {
		t.Fatalf("all events: %d, %v", len(all.Items), err)
	}
	warn, err := events.List(ctx, metav1.ListOptions{FieldSelector: "type=Warning,involvedObject.kind=Node"})
	if err != nil || len(warn.Items) != 1 || warn.Items[0].Reason != "NodeNotReady" {
		t.Errorf("warnings about nodes: %+v, %v", warn, err)
	}
	for _, ev := range list.Items {
		got, err := events.Get(ctx, ev.Name, metav1.GetOptions{})
		if err != nil || got.Reason != ev.Reason || got.ResourceVersion != ev.ResourceVersion {
			t.Errorf("get %s: %+v, %v", ev.Name, got, err)
		}
	}
	if _, err := events.Get(ctx, "ev.ffff", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get a missing event: %v, want NotFound", err)
	}
	if _, err := events.Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); !apierrors.IsMethodNotSupported(err) {
		t.Errorf("create an event: %v, want MethodNotAllowed", err)
	}
	const asTable = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
	code, _, data := e.raw(t, "GET", "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dother", "", asTable, "")
	var tab metav1.Table
	if err := json.Unmarshal(data, &tab); code != http.StatusOK || err != nil || len(tab.Rows) != 1 || tab.Rows[0].Cells[2] != "Scheduled" {
		t.Errorf("events as Table: %d %s", code, data)
	}

	w, err := events.Watch(ctx, metav1.ListOptions{ResourceVersion: all.ResourceVersion, FieldSelector: "involvedObject.name=ev"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	e.conn.Emit(schemas.ObjectEvent{Reason: "Other", Kind: schemas.KindPod, Name: "other"})
	e.conn.Emit(schemas.ObjectEvent{Reason: "Killing", Kind: schemas.KindPod, Name: "ev", Component: "kubelet"})
	select {
	case got := <-w.ResultChan():
		ev, ok := got.Object.(*corev1.Event)
		if got.Type != watch.Added || !ok || ev.Reason != "Killing" {
			t.Errorf("watch: %s %+v", got.Type, got.Object)
		}
	case <-ctx.Done():
		t.Fatal("no event on the watch")
	}
}
