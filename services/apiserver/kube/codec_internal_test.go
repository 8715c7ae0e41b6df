package kube

import (
	"bytes"
	"net/http/httptest"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/util/sets"
)

// kubectl and client-go send built-in kinds as protobuf when asked to:
// every body type the handler decodes must come through the wire scheme,
// which holds only the groups MiniKu serves (not client-go's every group).
func TestProtobufBodiesDecode(t *testing.T) {
	s := wireScheme()
	enc := protobuf.NewSerializer(s, s)
	for _, tc := range []struct {
		in, into runtime.Object
		check    func(runtime.Object) bool
	}{
		{&corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "p"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}},
			&corev1.Pod{}, func(o runtime.Object) bool {
				p := o.(*corev1.Pod)
				return p.Name == "p" && p.Spec.Containers[0].Image == "busybox"
			}},
		{&appsv1.ReplicaSet{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "ReplicaSet"}, ObjectMeta: metav1.ObjectMeta{Name: "rs"}},
			&appsv1.ReplicaSet{}, func(o runtime.Object) bool { return o.(*appsv1.ReplicaSet).Name == "rs" }},
		{&autoscalingv1.Scale{TypeMeta: metav1.TypeMeta{APIVersion: "autoscaling/v1", Kind: "Scale"}, Spec: autoscalingv1.ScaleSpec{Replicas: 3}},
			&autoscalingv1.Scale{}, func(o runtime.Object) bool { return o.(*autoscalingv1.Scale).Spec.Replicas == 3 }},
		{&policyv1.Eviction{TypeMeta: metav1.TypeMeta{APIVersion: "policy/v1", Kind: "Eviction"}, ObjectMeta: metav1.ObjectMeta{Name: "e"}},
			&policyv1.Eviction{}, func(o runtime.Object) bool { return o.(*policyv1.Eviction).Name == "e" }},
		{&corev1.Binding{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Binding"}, Target: corev1.ObjectReference{Name: "n1"}},
			&corev1.Binding{}, func(o runtime.Object) bool { return o.(*corev1.Binding).Target.Name == "n1" }},
	} {
		var buf bytes.Buffer
		if err := enc.Encode(tc.in, &buf); err != nil {
			t.Fatalf("%T: encode: %v", tc.in, err)
		}
		r := httptest.NewRequest("POST", "/", nil)
		if err := decodeObject(httptest.NewRecorder(), r, buf.Bytes(), "application/vnd.kubernetes.protobuf", tc.into); err != nil {
			t.Fatalf("%T: decode: %v", tc.in, err)
		}
		if !tc.check(tc.into) {
			t.Errorf("%T: decoded %+v", tc.in, tc.into)
		}
	}
}

// The wire scheme holds the groups MiniKu serves and no others: client-go's
// scheme registers every group Kubernetes has, and linking it made every
// process map ~45 API groups' code it never runs.
func TestWireSchemeGroups(t *testing.T) {
	got := sets.New[string]()
	for gvk := range wireScheme().AllKnownTypes() {
		got.Insert(gvk.Group)
	}
	want := sets.New("", "apps", "autoscaling", "policy")
	if !got.Equal(want) {
		t.Errorf("groups %v, want %v", sets.List(got), sets.List(want))
	}
}
