package quorum

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	healthy := StreamReport{Replicas: 3, Leader: "s1", Peers: []Peer{{Name: "s2", Active: 300 * time.Millisecond}, {Name: "s3", Active: time.Second}}}
	for _, tc := range []struct {
		name string
		obs  Observation
		want string // "" served, else a part of the reason
	}{
		{"one server, no clustering", Observation{Streams: map[string]StreamReport{"pods": {Err: errors.New("timeout")}}}, ""},
		{"healthy R3", Observation{Clustered: true, Streams: map[string]StreamReport{"pods": healthy}}, ""},
		{"one replica gone keeps the majority", Observation{Clustered: true, Streams: map[string]StreamReport{"pods": {Replicas: 3, Leader: "s1",
			Peers: []Peer{{Name: "s2", Offline: true}, {Name: "s3", Active: time.Second}}}}}, ""},
		{"R1 on a cluster", Observation{Clustered: true, Streams: map[string]StreamReport{"pods": {Replicas: 1, Leader: "s2"}}}, ""},
		{"no meta leader", Observation{Clustered: true, Meta: errors.New("JetStream system temporarily unavailable"),
			Streams: map[string]StreamReport{"pods": healthy}}, "no meta leader"},
		{"stream does not answer", Observation{Clustered: true, Streams: map[string]StreamReport{"pods": {Err: errors.New("context deadline exceeded")}}}, "does not answer"},
		{"no stream leader", Observation{Clustered: true, Streams: map[string]StreamReport{"pods": {Replicas: 3}}}, "has no leader"},
		{"leader alone", Observation{Clustered: true, Streams: map[string]StreamReport{"pods": {Replicas: 3, Leader: "s1",
			Peers: []Peer{{Name: "s3", Offline: true}, {Name: "s2", Active: 2500 * time.Millisecond}}}}},
			"leader s1 reaches 1 of 3 replicas, needs 2 (s2 last heard 2.5s ago, s3 offline)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.obs.At = t0
			st := Decide(State{}, tc.obs)
			err := st.Check("pods", t0)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want a reason with %q", err, tc.want)
			}
		})
	}
}

// Since is when the bucket last changed between served and refused, so
// the message says how long the store has been lost; a verdict too old no
// longer stands.
func TestDecideSinceAndStale(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	down := Observation{Clustered: true, Streams: map[string]StreamReport{"pods": {Replicas: 3}}}
	up := Observation{Clustered: true, Streams: map[string]StreamReport{"pods": {Replicas: 1, Leader: "s1"}}}
	var st State
	for i, obs := range []Observation{up, down, down, down} {
		obs.At = t0.Add(time.Duration(i) * time.Second)
		st = Decide(st, obs)
	}
	var qe *Error
	if err := st.Check("pods", t0.Add(3*time.Second)); !errors.As(err, &qe) || !qe.Since.Equal(t0.Add(time.Second)) {
		t.Fatalf("after three failing rounds from t0+1s: %v (since %v)", err, qe)
	}
	up.At = t0.Add(4 * time.Second)
	st = Decide(st, up)
	if err := st.Check("pods", up.At); err != nil {
		t.Fatalf("back: %v", err)
	}
	if st.Buckets["pods"].Since != up.At {
		t.Fatalf("since %v, want %v", st.Buckets["pods"].Since, up.At)
	}
	if err := st.Check("pods", up.At.Add(StaleAfter+time.Second)); err == nil || !strings.Contains(err.Error(), "unknown") {
		t.Fatalf("a verdict %v old: %v, want refused as unknown", StaleAfter+time.Second, err)
	}
	if err := st.Check("other", up.At); err != nil {
		t.Fatalf("a bucket never probed: %v", err)
	}
}
