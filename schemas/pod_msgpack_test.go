package schemas

import (
	"bytes"
	"reflect"
	"testing"
	"time"
)

// podReflect is Pod without its msgpack methods: what msgpack's
// reflection writes and reads for the same fields.
type podReflect Pod

// podVariants are pods with every field set (maps with one entry, so the
// encoding is deterministic), with none set, and with each field of the
// full one zeroed in turn.
func podVariants(t *testing.T) []*Pod {
	full := &Pod{}
	seed := 0
	fill(t, reflect.ValueOf(full).Elem(), &seed)
	full.Labels = map[string]string{"app": "web"}
	full.NodeSelector = map[string]string{"disk": "ssd"}
	full.Annotations = map[string]string{"note": "x"}
	out := []*Pod{full, {}}
	var zeroEach func(v reflect.Value, set func())
	zeroEach = func(v reflect.Value, set func()) {
		for i := range v.NumField() {
			f := v.Field(i)
			if f.Kind() == reflect.Struct && f.Type() != reflect.TypeFor[time.Time]() {
				zeroEach(f, set)
				continue
			}
			old := reflect.New(f.Type()).Elem()
			old.Set(f)
			f.Set(reflect.Zero(f.Type()))
			set()
			f.Set(old)
		}
	}
	zeroEach(reflect.ValueOf(full).Elem(), func() { out = append(out, full.DeepCopy()) })
	// A pointer to a zero time is empty for msgpack too.
	zt := &Pod{StartedAt: &time.Time{}}
	return append(out, zt)
}

func TestPodMsgpackMatchesReflection(t *testing.T) {
	for i, p := range podVariants(t) {
		mine, err := Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := Marshal((*podReflect)(p))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(mine, theirs) {
			t.Fatalf("variant %d: encoding differs from msgpack's reflection:\nmine   %x\ntheirs %x", i, mine, theirs)
		}
		var got Pod
		if err := Unmarshal(theirs, &got); err != nil {
			t.Fatalf("variant %d: decode: %v", i, err)
		}
		var want podReflect
		if err := Unmarshal(theirs, &want); err != nil {
			t.Fatalf("variant %d: reflection decode: %v", i, err)
		}
		if !reflect.DeepEqual(&got, (*Pod)(&want)) {
			t.Fatalf("variant %d: decoded differently:\nmine   %+v\ntheirs %+v", i, got, want)
		}
	}
}

// Keys a newer writer adds are skipped; a nil time is an error, not a
// panic.
func TestPodMsgpackUnknownAndMalformed(t *testing.T) {
	type newer struct {
		Pod
		Extra map[string][]int `json:"extra"`
	}
	data, err := Marshal(&newer{Pod: Pod{ObjectMeta: ObjectMeta{Name: "a"}, NodeName: "n"}, Extra: map[string][]int{"x": {1, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	var p Pod
	if err := Unmarshal(data, &p); err != nil || p.Name != "a" || p.NodeName != "n" {
		t.Fatalf("decode with an unknown key: %+v, %v", p, err)
	}
	// {"createdAt": nil}
	if err := Unmarshal([]byte{0x81, 0xa9, 'c', 'r', 'e', 'a', 't', 'e', 'd', 'A', 't', 0xc0}, &p); err == nil {
		t.Fatal("nil createdAt decoded without an error")
	}
}

func BenchmarkPodCodec(b *testing.B) {
	now := time.Now()
	p := &Pod{ObjectMeta: ObjectMeta{Name: "bench-0a1b2c3d", UID: "0123456789abcdef0123456789abcdef", CreatedAt: now,
		Labels: map[string]string{"app": "bench"}}, PodSpec: PodSpec{Image: "busybox", Command: []string{"sleep", "1d"}},
		Owner: "bench", OwnerUID: "0123456789abcdef", NodeName: "hollow-17", Status: PodRunning,
		ContainerID: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", StartedAt: &now}
	for _, c := range []struct {
		name string
		v    any
		out  func() any
	}{{"handwritten", p, func() any { return new(Pod) }}, {"reflection", (*podReflect)(p), func() any { return new(podReflect) }}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				data, err := Marshal(c.v)
				if err != nil {
					b.Fatal(err)
				}
				if err := Unmarshal(data, c.out()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
