package schemas

import (
	"reflect"
	"testing"
	"time"
)

// FuzzUnmarshal feeds arbitrary bytes, as anyone allowed to publish on a
// subject or write a KV key could, to the decoder of every bus message and
// KV value. Decoding may fail but must never panic or allocate without
// bound, and whatever decodes must encode and decode again.
func FuzzUnmarshal(f *testing.F) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, v := range []any{
		Event{Type: "created", Kind: KindPod, Name: "p", Node: "n", Revision: 7, Time: now},
		ObjectEvent{Type: "Normal", Reason: "Started", Kind: "Pod", Name: "p", Message: "m", Time: now},
		Pod{ObjectMeta: ObjectMeta{Name: "p", UID: "u", Labels: map[string]string{"a": "b"}}, PodSpec: PodSpec{Image: "busybox", Command: []string{"sh"}}},
		ReplicaSet{ObjectMeta: ObjectMeta{Name: "r"}, DesiredCount: 3, Selector: map[string]string{"a": "b"}},
		Node{ObjectMeta: ObjectMeta{Name: "n"}, Status: NodeReady, LastHeartbeat: now},
		LogRequest{Pod: "p", Follow: true, Tail: 5},
		LogChunk{Data: []byte("x")},
		LogAck{},
	} {
		data, err := Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte{0xc1})
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})                                 // map with 4 G entries
	f.Add([]byte{0x81, 0xa4, 'n', 'a', 'm', 'e', 0xdb, 0xff, 0xff, 0xff, 0xff}) // 4 GiB string
	f.Fuzz(func(t *testing.T, data []byte) {
		// The hand-written pod decoder reads what msgpack's reflection
		// reads.
		var mine Pod
		var theirs podReflect
		if Unmarshal(data, &mine) == nil && Unmarshal(data, &theirs) == nil && !reflect.DeepEqual(&mine, (*Pod)(&theirs)) {
			t.Fatalf("pod decoded differently:\nmine   %+v\ntheirs %+v", mine, theirs)
		}
		_, _ = UnmarshalEvents(data) // must not panic
		for _, v := range []any{&Event{}, &ObjectEvent{}, &Pod{}, &ReplicaSet{}, &Node{}, &Namespace{}, &LogRequest{}, &LogChunk{}, &LogAck{}} {
			if err := Unmarshal(data, v); err != nil {
				continue
			}
			again, err := Marshal(v)
			if err != nil {
				t.Fatalf("decoded %T does not encode again: %v", v, err)
			}
			if err := Unmarshal(again, v); err != nil {
				t.Fatalf("decoded %T, encoded again, does not decode: %v", v, err)
			}
		}
	})
}
