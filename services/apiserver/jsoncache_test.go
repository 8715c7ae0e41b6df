package apiserver

import (
	"encoding/json"
	"testing"

	"github.com/miniku/miniku/schemas"
)

// A list encoded from the cache is byte for byte what encoding the objects
// gives, a changed object (new revision) is encoded again, and a full list
// drops entries of objects no longer there.
func TestEncodeListCache(t *testing.T) {
	c := newJSONCache()
	a := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "a", ResourceVersion: 1}, Status: schemas.PodPending}
	b := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "b", ResourceVersion: 2}, Status: schemas.PodPending}
	check := func(objs []*schemas.Pod, all bool) {
		t.Helper()
		got, err := encodeList(c, objs, all)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(objs)
		if string(got) != string(want)+"\n" {
			t.Fatalf("encodeList:\n%s\nwant\n%s", got, want)
		}
	}
	check([]*schemas.Pod{a, b}, true)
	check([]*schemas.Pod{a, b}, true) // from the cache
	a2 := *a
	a2.ResourceVersion, a2.Status = 3, schemas.PodRunning
	check([]*schemas.Pod{&a2, b}, true)
	check([]*schemas.Pod{b}, false)
	if len(c.m) != 2 {
		t.Fatalf("a filtered list dropped entries: %d left", len(c.m))
	}
	check([]*schemas.Pod{b}, true)
	if _, ok := c.m["a"]; ok || len(c.m) != 1 {
		t.Fatalf("a full list without a kept its entry: %v", c.m)
	}
	check([]*schemas.Pod{}, true)
}
