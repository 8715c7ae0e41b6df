package apiserver_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
)

func TestEvents(t *testing.T) {
	e := mustEnv(t)
	var empty []schemas.ObjectEvent
	e.json("GET", "/events", "", http.StatusOK, &empty)
	if empty == nil || len(empty) != 0 {
		t.Fatalf("empty stream: %v", empty)
	}
	emit := func(kind, name, reason string) {
		e.conn.Emit(schemas.ObjectEvent{Kind: kind, Name: name, Reason: reason, Component: "test"})
	}
	for i := range 5 {
		emit(schemas.KindPod, "a", fmt.Sprintf("A%d", i))
		emit(schemas.KindPod, "b", fmt.Sprintf("B%d", i))
	}
	emit(schemas.KindNode, "a", "NodeReady")
	emit(schemas.KindReplicaSet, "web", "SuccessfulCreate")

	reasons := func(path string) (string, []schemas.ObjectEvent) {
		t.Helper()
		var evs []schemas.ObjectEvent
		e.json("GET", path, "", http.StatusOK, &evs)
		var rs []string
		for _, ev := range evs {
			rs = append(rs, ev.Reason)
		}
		return strings.Join(rs, ","), evs
	}
	// Emit does not wait for the server: wait until all 12 are stored.
	bustest.Eventually(t, 10*time.Second, func() error {
		if got, _ := reasons("/events"); strings.Count(got, ",") != 11 {
			return fmt.Errorf("events: %s", got)
		}
		return nil
	})
	for path, want := range map[string]string{
		"/events?kind=Pod&name=a":         "A0,A1,A2,A3,A4",
		"/events?kind=pod&name=a&limit=2": "A3,A4",
		"/events?name=a":                  "A0,A1,A2,A3,A4,NodeReady",
		"/events?kind=Node":               "NodeReady",
		"/events?kind=ReplicaSet&name=x":  "",
		"/events?limit=3":                 "B4,NodeReady,SuccessfulCreate",
		"/events?kind=Pod&limit=3":        "B3,A4,B4",
	} {
		got, evs := reasons(path)
		if got != want {
			t.Errorf("GET %s: %s, want %s", path, got, want)
		}
		for i, ev := range evs {
			if ev.Seq == 0 || (i > 0 && ev.Seq <= evs[i-1].Seq) || ev.Type != schemas.EventNormal || ev.Time.IsZero() || ev.Component != "test" {
				t.Errorf("GET %s: event %d: %+v", path, i, ev)
			}
		}
	}
	// Each read deletes its consumer rather than leave it to time out. On a
	// loaded machine one consumer-create request may time out on the client
	// after the server made it; that one lingers until its idle threshold,
	// so allow one, but never one per read (10 reads above and before).
	info, err := e.conn.EventsStream().Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Consumers; n > 1 {
		t.Errorf("%d consumers left on the stream after the reads", n)
	}
	for path, want := range map[string]string{
		"/events?kind=Secret":                    "kind",
		"/events?name=A_B":                       "name",
		"/events?limit=0":                        "limit",
		"/events?limit=x":                        "limit",
		"/events?limit=1000000":                  "limit",
		"/events?resourceVersion=3":              "resourceVersion",
		"/events?watch=true&limit=3":             "limit",
		"/events?watch=maybe":                    "watch",
		"/events?kind=Pod&name=a&labelSelector=": `"labelSelector"`,
	} {
		r := e.json("GET", path, "", http.StatusBadRequest, nil)
		if msg := r.errMsg(t); !strings.Contains(msg, want) {
			t.Errorf("GET %s: %q does not name %s", path, msg, want)
		}
	}
}

func TestWatchEvents(t *testing.T) {
	e := mustEnv(t)
	e.conn.Emit(schemas.ObjectEvent{Kind: schemas.KindPod, Name: "old", Reason: "Old"})
	var evs []schemas.ObjectEvent
	bustest.Eventually(t, 10*time.Second, func() error {
		e.json("GET", "/events", "", http.StatusOK, &evs)
		if len(evs) != 1 {
			return fmt.Errorf("%d events", len(evs))
		}
		return nil
	})
	// Without resourceVersion only new events; with one, those after it.
	w := openWatch(t, e.url+"/events?watch=true&kind=Pod&name=a")
	all := openWatch(t, fmt.Sprintf("%s/events?watch=true&resourceVersion=%d", e.url, evs[0].Seq-1))
	later := openWatch(t, fmt.Sprintf("%s/events?watch=true&resourceVersion=%d", e.url, evs[0].Seq))
	e.conn.Emit(schemas.ObjectEvent{Kind: schemas.KindPod, Name: "b", Reason: "Other"})
	e.conn.Emit(schemas.ObjectEvent{Kind: schemas.KindPod, Name: "a", Reason: "Scheduled"})
	w.expect("ADDED a")
	all.expect("ADDED old", "ADDED b", "ADDED a")
	later.expect("ADDED b", "ADDED a")
}

// Events emitted together about one object are one message of the stream:
// each is listed and watched on its own, sharing the message's sequence,
// and a watch resuming after that sequence gets none of them again.
func TestEventsEmittedTogether(t *testing.T) {
	e := mustEnv(t)
	e.conn.EmitAll([]schemas.ObjectEvent{
		{Kind: schemas.KindPod, Name: "c", Reason: "Pulled"},
		{Kind: schemas.KindPod, Name: "c", Reason: "Created"},
		{Kind: schemas.KindPod, Name: "c", Reason: "Started"},
		{Kind: schemas.KindPod, Name: "d", Reason: "Scheduled"},
	})
	var evs []schemas.ObjectEvent
	bustest.Eventually(t, 10*time.Second, func() error {
		e.json("GET", "/events", "", http.StatusOK, &evs)
		if len(evs) != 4 {
			return fmt.Errorf("%d events", len(evs))
		}
		return nil
	})
	info, err := e.conn.EventsStream().Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Fatalf("%d messages stored for one pod's three events and another's one, want 2", info.State.Msgs)
	}
	if evs[0].Seq != evs[2].Seq || evs[3].Seq <= evs[2].Seq {
		t.Fatalf("sequences %d %d %d %d: want the first three equal, the fourth later", evs[0].Seq, evs[1].Seq, evs[2].Seq, evs[3].Seq)
	}
	var last []schemas.ObjectEvent
	e.json("GET", "/events?limit=2", "", http.StatusOK, &last)
	if len(last) != 2 || last[0].Reason != "Started" || last[1].Reason != "Scheduled" {
		t.Fatalf("newest two: %+v", last)
	}
	all := openWatch(t, fmt.Sprintf("%s/events?watch=true&resourceVersion=%d", e.url, evs[0].Seq-1))
	after := openWatch(t, fmt.Sprintf("%s/events?watch=true&resourceVersion=%d", e.url, evs[0].Seq))
	e.conn.Emit(schemas.ObjectEvent{Kind: schemas.KindPod, Name: "e", Reason: "Killing"})
	all.expect("ADDED c", "ADDED c", "ADDED c", "ADDED d", "ADDED e")
	after.expect("ADDED d", "ADDED e")
}
