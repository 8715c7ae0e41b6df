package openapi_test

import (
	"reflect"
	"strings"
	"testing"

	"k8s.io/kube-openapi/pkg/util"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/miniku/miniku/services/apiserver/kube/openapi"
)

// zz_generated.openapi.go is generated from the k8s.io/api in go.mod. If
// that module moves on without `go generate`, a new field would be missing
// from the schemas and kubectl would refuse it as unknown. This walks every
// Go type the served kinds reach and fails on a JSON field, or a type,
// the generated definitions do not have.
func TestGeneratedDefinitionsMatchGoTypes(t *testing.T) {
	defs := openapi.GetOpenAPIDefinitions(func(path string) spec.Ref { return spec.MustCreateRef("#/definitions/" + path) })
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type, where string)
	walk = func(rt reflect.Type, where string) {
		for rt.Kind() == reflect.Pointer || rt.Kind() == reflect.Slice || rt.Kind() == reflect.Map || rt.Kind() == reflect.Array {
			rt = rt.Elem()
		}
		if rt.Kind() != reflect.Struct || seen[rt] || rt.PkgPath() == "" {
			return
		}
		seen[rt] = true
		name := util.GetCanonicalTypeName(reflect.New(rt).Elem().Interface())
		def, ok := defs[name]
		if !ok {
			if strings.HasPrefix(rt.PkgPath(), "k8s.io/") {
				t.Errorf("%s: no generated definition for %s (%s)", where, name, rt)
			}
			return
		}
		if len(def.Schema.Properties) == 0 {
			return // a type with its own schema: Quantity, Time, IntOrString, RawExtension
		}
		var fields func(st reflect.Type)
		fields = func(st reflect.Type) {
			for i := 0; i < st.NumField(); i++ {
				f := st.Field(i)
				tagName, _, _ := strings.Cut(f.Tag.Get("json"), ",")
				if !f.IsExported() || tagName == "-" {
					continue
				}
				if f.Anonymous && tagName == "" {
					fields(f.Type) // inline TypeMeta
					continue
				}
				if tagName == "" {
					tagName = f.Name
				}
				if _, ok := def.Schema.Properties[tagName]; !ok {
					t.Errorf("%s: generated schema %s has no property %q (Go field %s): run go generate", where, name, tagName, f.Name)
				}
				walk(f.Type, where+"."+tagName)
			}
		}
		fields(rt)
		for _, dep := range def.Dependencies {
			if _, ok := defs[dep]; !ok {
				t.Errorf("%s: %s depends on %s, which has no definition", where, name, dep)
			}
		}
	}
	for _, r := range served() {
		walk(reflect.TypeOf(r.Object), r.GVK.Kind)
		walk(reflect.TypeOf(r.List), r.ListKind)
	}
	if len(seen) < 100 {
		t.Fatalf("walked only %d types: the walk is broken", len(seen))
	}
}
