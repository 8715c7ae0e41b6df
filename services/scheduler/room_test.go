package scheduler

import (
	"testing"
	"time"

	"github.com/miniku/miniku/schemas"
)

func TestRoomTracker(t *testing.T) {
	r := newRoomTracker()
	p := podOn("p", "", "", "", "")
	p.Status = schemas.PodPending
	if r.podChanged("p", p, true) {
		t.Fatal("a pending pod freed room")
	}
	p.NodeName = "a"
	if r.podChanged("p", p, true) {
		t.Fatal("binding freed room")
	}
	p.Status = schemas.PodFailed
	if !r.podChanged("p", p, true) {
		t.Fatal("a bound pod that failed did not free room")
	}
	if r.podChanged("p", nil, false) {
		t.Fatal("deleting an already terminal pod freed room twice")
	}
	q := podOn("q", "a", "", "", "")
	r.podChanged("q", q, true)
	if !r.podChanged("q", nil, false) {
		t.Fatal("deleting a running pod did not free room")
	}

	n := sized("a", "1", "1Gi", 10, map[string]string{"x": "1", "y": "2"})
	if !r.nodeChanged("a", n, true) {
		t.Fatal("a new node is a change")
	}
	n.LastHeartbeat = time.Now()
	if r.nodeChanged("a", n, true) {
		t.Fatal("a heartbeat is not a change")
	}
	for _, change := range []func(){
		func() { n.Unschedulable = true },
		func() { n.Status = schemas.NodeNotReady },
		func() { n.Capacity.Memory = "2Gi" },
		func() { n.Labels["z"] = "3" },
	} {
		change()
		if !r.nodeChanged("a", n, true) {
			t.Fatalf("change not seen: %+v", n)
		}
	}
	if !r.nodeChanged("a", nil, false) {
		t.Fatal("a deleted node is a change")
	}
}
