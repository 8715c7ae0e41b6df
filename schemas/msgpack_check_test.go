package schemas

import (
	"bytes"
	"errors"
	"runtime"
	"testing"
	"time"
)

// A few bytes declaring a huge array, map, string or binary, or nesting a
// megabyte deep, are refused before the decoder allocates for them: each of
// these killed the process (out of memory or stack) before the check.
func TestUnmarshalRefusesHostileHeaders(t *testing.T) {
	key := func(k string) []byte { return append([]byte{0x81, 0xa0 | byte(len(k))}, k...) }
	cases := map[string][]byte{
		"2^31 env structs": append(key("env"), 0xdd, 0x7f, 0xff, 0xff, 0xff),
		"2^31 labels":      append(key("labels"), 0xdf, 0x7f, 0xff, 0xff, 0xff),
		"2 GiB data":       append(key("data"), 0xc6, 0x7f, 0xff, 0xff, 0xff),
		"2 GiB name":       append(key("name"), 0xdb, 0x7f, 0xff, 0xff, 0xff),
		"nested 1M deep":   append(key("command"), bytes.Repeat([]byte{0x91}, 1<<20)...),
	}
	for name, data := range cases {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for _, v := range []any{&Pod{}, &ReplicaSet{}, &Node{}, &Event{}, &ObjectEvent{}, &LogChunk{}, &LogRequest{}} {
			if err := Unmarshal(data, v); !errors.Is(err, errMalformed) {
				t.Errorf("%s into %T: %v, want a malformed-msgpack error", name, v, err)
			}
		}
		runtime.ReadMemStats(&after)
		if d := after.TotalAlloc - before.TotalAlloc; d > 16<<20 {
			t.Errorf("%s: decoding allocated %d MiB", name, d>>20)
		}
	}
}

// Everything Marshal writes passes the check.
func TestCheckShapeAcceptsMarshal(t *testing.T) {
	now := time.Now()
	grace := int64(3)
	for _, v := range []any{
		&Pod{ObjectMeta: ObjectMeta{Name: "p", Labels: map[string]string{"a": "b"}, CreatedAt: now, DeletionTimestamp: &now},
			PodSpec: PodSpec{Image: "i", Command: []string{"a", "b"}, Env: []EnvVar{{Name: "A", Value: "1"}},
				TerminationGracePeriodSeconds: &grace}},
		&LogChunk{Seq: 1 << 40, Data: bytes.Repeat([]byte("x"), 70000)},
		&Event{Revision: 1 << 62, Time: now}, []any{nil, true, -1, -200, 1.5, float32(2), int64(-1 << 40), "s"},
		map[string]any{"big": bytes.Repeat([]byte("y"), 300), "str": string(bytes.Repeat([]byte("z"), 70000))},
	} {
		data, err := Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkShape(data); err != nil {
			t.Errorf("%T: %v", v, err)
		}
	}
}
