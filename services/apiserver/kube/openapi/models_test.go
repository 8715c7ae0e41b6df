package openapi_test

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/miniku/miniku/schemas/kinds"
	"github.com/miniku/miniku/services/apiserver/kube/openapi"
)

// Every declared kind has its schema in the type converter server-side
// apply uses, and the schemas carry Kubernetes' merge keys: containers
// are a list keyed by name, so two of them are two set elements.
func TestTypeConverterKnowsEveryKind(t *testing.T) {
	tc, err := openapi.TypeConverter(openapi.FromKinds(kinds.All()))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range kinds.All() {
		obj := k.NewKube()
		obj.GetObjectKind().SetGroupVersionKind(k.Info().GVK())
		if _, err := tc.ObjectToTyped(obj); err != nil {
			t.Errorf("%s: %v", k.Info().GVK(), err)
		}
	}
	rs := &appsv1.ReplicaSet{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "ReplicaSet"}}
	rs.Spec.Template.Spec.Containers = []corev1.Container{{Name: "a", Image: "x"}, {Name: "b", Image: "y"}}
	tv, err := tc.ObjectToTyped(rs)
	if err != nil {
		t.Fatal(err)
	}
	set, err := tv.ToFieldSet()
	if err != nil {
		t.Fatal(err)
	}
	want := fieldpath.MakePathOrDie("spec", "template", "spec", "containers", fieldpath.KeyByFields("name", "b"), "image")
	if !set.Has(want) {
		t.Errorf("field set lacks %s:\n%s", want, set)
	}
	// A field no schema has is an error, not dropped.
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "notAField": 1}}
	if _, err := tc.ObjectToTyped(u); err == nil || !strings.Contains(err.Error(), "notAField") {
		t.Errorf("unknown field: %v", err)
	}
}
