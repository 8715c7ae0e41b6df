package garbagecollector

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/schemas/kinds"
)

func rsRef(name string) schemas.OwnerReference {
	return schemas.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: name, UID: name + "-uid", Controller: true, BlockOwnerDeletion: true}
}

func rs(name string, deleting bool, fins ...string) Object {
	return Object{Resource: "replicasets", Name: name, UID: name + "-uid", Deleting: deleting, Finalizers: fins}
}

func pod(name string, deleting bool, owners ...schemas.OwnerReference) Object {
	return Object{Resource: "pods", Name: name, UID: name + "-uid", Deleting: deleting, Owners: owners}
}

func knownKinds(apiVersion, kind string) bool {
	return (apiVersion == "apps/v1" && kind == "ReplicaSet") || (apiVersion == "v1" && (kind == "Pod" || kind == "ConfigMap"))
}

// short is an action as "verb resource/name [detail]", for tables.
func short(as []Action) []string {
	out := []string{}
	for _, a := range as {
		s := fmt.Sprintf("%s %s/%s", a.Verb, a.Resource, a.Name)
		switch {
		case a.Verb == Unown:
			s += " " + a.OwnerUID
		case a.Verb == Finish:
			s += " " + a.Finalizer
		}
		if len(a.Gone) > 0 {
			s += " (confirm"
			for _, g := range a.Gone {
				s += " " + g.Name
			}
			s += ")"
		}
		out = append(out, s)
	}
	return out
}

func TestDecide(t *testing.T) {
	cmRef := schemas.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "cm", UID: "cm-uid"}
	depRef := schemas.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "d", UID: "d-uid"}
	for _, tc := range []struct {
		name string
		objs []Object
		want []string
	}{
		{"owner alive: nothing", []Object{rs("web", false), pod("a", false, rsRef("web"))}, []string{}},
		{"background: owner gone, dependents deleted after a live check",
			[]Object{pod("a", false, rsRef("web")), pod("b", false, rsRef("web"))},
			[]string{"delete pods/a (confirm web)", "delete pods/b (confirm web)"}},
		{"owner gone, dependent already terminating: left to finish",
			[]Object{pod("a", true, rsRef("web"))}, []string{}},
		{"owner of a kind not collected is never taken for gone",
			[]Object{pod("a", false, depRef)}, []string{}},
		{"one owner gone, another alive: only the reference goes",
			[]Object{rs("web", false), {Resource: "pods", Name: "a", UID: "a-uid", Owners: []schemas.OwnerReference{rsRef("web"), cmRef}}},
			[]string{"unown pods/a cm-uid (confirm cm)"}},
		{"orphan: references removed first",
			[]Object{rs("web", true, kinds.FinalizerOrphan), pod("a", false, rsRef("web")), pod("b", true, rsRef("web"))},
			[]string{"unown pods/a web-uid", "unown pods/b web-uid"}},
		{"orphan: no dependents left, finalizer removed",
			[]Object{rs("web", true, kinds.FinalizerOrphan, "example.com/keep"), pod("a", false)},
			[]string{"finish replicasets/web orphan"}},
		{"foreground: dependents deleted, owner kept",
			[]Object{rs("web", true, kinds.FinalizerForeground), pod("a", false, rsRef("web")), pod("b", true, rsRef("web"))},
			[]string{"delete pods/a"}},
		{"foreground: finalizer removed once every dependent is gone",
			[]Object{rs("web", true, kinds.FinalizerForeground)},
			[]string{"finish replicasets/web foregroundDeletion"}},
		{"a terminating owner without a collector finalizer keeps its dependents until it goes",
			[]Object{rs("web", true, "example.com/keep"), pod("a", false, rsRef("web"))}, []string{}},
		{"marked and nothing holds it: removed",
			[]Object{{Resource: "configmaps", Name: "cm", UID: "cm-uid", Deleting: true, Removable: true}},
			[]string{"remove configmaps/cm"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := short(Decide(tc.objs, knownKinds))
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// The same reference listed twice makes one dependent, not two actions.
func TestDecideDuplicateReference(t *testing.T) {
	got := short(Decide([]Object{rs("web", true, kinds.FinalizerOrphan), pod("a", false, rsRef("web"), rsRef("web"))}, knownKinds))
	if want := []string{"unown pods/a web-uid"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}
