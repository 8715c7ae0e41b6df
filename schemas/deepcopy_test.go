package schemas

import (
	"reflect"
	"testing"
	"time"
)

// fill sets every field reachable from v to a non-zero value, so that a
// DeepCopy that forgets a field (or a field added later) shows.
func fill(t *testing.T, v reflect.Value, seed *int) {
	t.Helper()
	*seed++
	switch v.Kind() {
	case reflect.String:
		v.SetString("s" + string(rune('a'+*seed%26)))
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(int64(*seed))
	case reflect.Uint64, reflect.Uint8:
		v.SetUint(uint64(*seed))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem(), seed)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(t, v.Index(i), seed)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for range 2 {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(t, k, seed)
			fill(t, e, seed)
			v.SetMapIndex(k, e)
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Unix(int64(*seed), 0)))
			return
		}
		for i := range v.NumField() {
			fill(t, v.Field(i), seed)
		}
	default:
		t.Fatalf("fill: no case for %s", v.Type())
	}
}

// shared reports a pointer, slice or map of b that is also a's.
func shared(a, b reflect.Value, path string) string {
	switch a.Kind() {
	case reflect.Pointer, reflect.Map:
		if !a.IsNil() && a.UnsafePointer() == b.UnsafePointer() {
			return path
		}
		if a.Kind() == reflect.Pointer && !a.IsNil() {
			return shared(a.Elem(), b.Elem(), path)
		}
	case reflect.Slice:
		if a.Len() > 0 && a.UnsafePointer() == b.UnsafePointer() {
			return path
		}
	case reflect.Struct:
		if a.Type() == reflect.TypeFor[time.Time]() {
			return "" // its *Location is immutable and meant to be shared
		}
		for i := range a.NumField() {
			if p := shared(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name); p != "" {
				return p
			}
		}
	}
	return ""
}

func TestDeepCopy(t *testing.T) {
	for _, tc := range []struct {
		obj  any
		copy func(any) any
	}{
		{&Pod{}, func(o any) any { return o.(*Pod).DeepCopy() }},
		{&ReplicaSet{}, func(o any) any { return o.(*ReplicaSet).DeepCopy() }},
		{&Node{}, func(o any) any { return o.(*Node).DeepCopy() }},
		{&Namespace{}, func(o any) any { return o.(*Namespace).DeepCopy() }},
	} {
		seed := 0
		fill(t, reflect.ValueOf(tc.obj).Elem(), &seed)
		c := tc.copy(tc.obj)
		name := reflect.TypeOf(tc.obj).Elem().Name()
		if !reflect.DeepEqual(tc.obj, c) {
			t.Errorf("%s: copy differs from the original:\n%+v\n%+v", name, tc.obj, c)
		}
		if p := shared(reflect.ValueOf(tc.obj).Elem(), reflect.ValueOf(c).Elem(), name); p != "" {
			t.Errorf("%s: copy shares %s with the original", name, p)
		}
	}
	// nil stays nil, empty stays empty: a copy encodes like its original.
	var p *Pod
	if p.DeepCopy() != nil {
		t.Error("nil pod copied to non-nil")
	}
	if c := (&Pod{}).DeepCopy(); c.Labels != nil || c.Command != nil || c.ExitCode != nil {
		t.Errorf("zero pod copied with non-nil fields: %+v", c)
	}
}
