package apiserver_test

import (
	"errors"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas"
)

// The kubelet's status writes (the node API) and the API's pods/status
// run one rule: a terminal phase is final. Both refuse Failed → Running,
// naming status.phase, and the API answers 422 Invalid.
func TestKubeStatusRuleIsTheKubelets(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	pods := e.client.CoreV1().Pods("default")
	if _, err := pods.Create(ctx, kpod("done", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "done"}, Target: corev1.ObjectReference{Kind: "Node", Name: "n1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cur, err := e.conn.Pods.Get(ctx, "done")
	if err != nil {
		t.Fatal(err)
	}
	cur.Status = schemas.PodFailed
	failed, err := e.conn.UpdatePodStatus(ctx, "n1", cur)
	if err != nil {
		t.Fatal(err)
	}
	failed.Status = schemas.PodRunning
	_, kerr := e.conn.UpdatePodStatus(ctx, "n1", failed)
	if !errors.Is(kerr, bus.ErrInvalid) || !strings.Contains(kerr.Error(), "status.phase") {
		t.Fatalf("kubelet: Failed back to Running = %v, want ErrInvalid naming status.phase", kerr)
	}
	p, err := pods.Get(ctx, "done", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status.Phase = corev1.PodRunning
	_, err = pods.UpdateStatus(ctx, p, metav1.UpdateOptions{})
	st := statusOf(t, err)
	if st.Code != 422 || st.Details == nil || len(st.Details.Causes) == 0 || st.Details.Causes[0].Field != "status.phase" {
		t.Fatalf("API: Failed back to Running = %+v, want 422 on status.phase", st)
	}
	if !strings.Contains(kerr.Error(), st.Details.Causes[0].Message) {
		t.Fatalf("kubelet's refusal %q and the API's %q differ", kerr, st.Details.Causes[0].Message)
	}
}

// pods/binding refuses a bound pod with kube-apiserver's 409 and message,
// the scheduler's Bind's (bus/registry).
func TestKubeBindingOnce(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	pods := e.client.CoreV1().Pods("default")
	if _, err := pods.Create(ctx, kpod("b", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bind := func(node string) error {
		return pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Target: corev1.ObjectReference{Kind: "Node", Name: node}}, metav1.CreateOptions{})
	}
	if err := bind("n1"); err != nil {
		t.Fatal(err)
	}
	err := bind("n2")
	if !apierrors.IsConflict(err) || err.Error() != `Operation cannot be fulfilled on pods/binding "b": pod b is already assigned to node "n1"` {
		t.Fatalf("rebinding = %v, want kube-apiserver's Conflict", err)
	}
}

// A replicaset status the controller could never write (more ready than
// current) is refused on replicasets/status as in the controller.
func TestKubeReplicaSetStatusRule(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	rss := e.client.AppsV1().ReplicaSets("default")
	one := int32(0)
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "fe"}, Spec: appsv1.ReplicaSetSpec{Replicas: &one,
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "fe"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "fe"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}}}
	got, err := rss.Create(ctx, rs, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got.Status.Replicas, got.Status.ReadyReplicas = 1, 2
	_, err = rss.UpdateStatus(ctx, got, metav1.UpdateOptions{})
	st := statusOf(t, err)
	if st.Code != 422 || st.Details == nil || len(st.Details.Causes) == 0 || st.Details.Causes[0].Field != "status.readyReplicas" {
		t.Fatalf("ready > replicas = %+v, want 422 on status.readyReplicas", st)
	}
}
