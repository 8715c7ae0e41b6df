package kinds_test

import (
	"reflect"
	"testing"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas/kinds"
)

// The declarations as kube-apiserver's discovery lists them, and the
// buckets the bus keeps them in.
func TestDeclarations(t *testing.T) {
	all := []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
	for _, tc := range []struct {
		resource, gv, kind, singular string
		short, cats                  []string
		namespaced                   bool
		verbs, subs                  []string
		bucket                       string
	}{
		{"pods", "v1", "Pod", "pod", []string{"po"}, []string{"all"}, true, all, []string{"binding", "eviction", "exec", "log", "status"}, bus.BucketPods},
		{"nodes", "v1", "Node", "node", []string{"no"}, nil, false, all, []string{"status"}, bus.BucketNodes},
		{"namespaces", "v1", "Namespace", "namespace", []string{"ns"}, nil, false,
			[]string{"create", "delete", "get", "list", "patch", "update", "watch"}, []string{"finalize", "status"}, "namespaces"},
		{"replicasets", "apps/v1", "ReplicaSet", "replicaset", []string{"rs"}, []string{"all"}, true, all, []string{"scale", "status"}, bus.BucketReplicaSets},
		{"events", "v1", "Event", "event", []string{"ev"}, nil, true, []string{"get", "list", "watch"}, nil, ""},
	} {
		k, ok := kinds.ByResource(tc.resource)
		if !ok {
			t.Errorf("%s not declared", tc.resource)
			continue
		}
		i := k.Info()
		got := []any{i.GroupVersion.String(), i.Kind, i.ListKind, i.Singular, i.ShortNames, i.Categories, i.Namespaced, i.Verbs, i.Subresources, i.Bucket}
		want := []any{tc.gv, tc.kind, tc.kind + "List", tc.singular, tc.short, tc.cats, tc.namespaced, tc.verbs, tc.subs, tc.bucket}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %v\nwant %v", tc.resource, got, want)
		}
		if i.GVR().Resource != tc.resource || i.GVK().Kind != tc.kind {
			t.Errorf("%s: GVR %v GVK %v", tc.resource, i.GVR(), i.GVK())
		}
	}
	if n := len(kinds.All()); n != 5 {
		t.Errorf("%d kinds declared, want 5", n)
	}
}
