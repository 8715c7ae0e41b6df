// Package quorum tells the apiserver whether the store can serve a
// bucket: JetStream has a meta leader and the bucket's stream a leader
// that still reaches a majority of its replicas. Without that, JetStream
// keeps answering reads from whatever replica the apiserver's server
// holds, which may be behind acknowledged writes, and writes wait for a
// timeout; the apiserver refuses both at once instead (503), so a client
// never takes a stale read for the current state (docs/cluster.md).
//
// Decide is the decision, a pure function over one round of probe
// results; Probe (probe.go) does the I/O every second and keeps the last
// verdict with its time.
package quorum

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Peer is one replica of a stream other than its leader, as the leader
// reports it (jetstream.PeerInfo).
type Peer struct {
	Name    string
	Offline bool
	// Active is how long ago the leader last heard from it.
	Active time.Duration
}

// StreamReport is what one stream-info request answered.
type StreamReport struct {
	// Err is the request's failure (no answer: no server thinks it leads
	// the stream, or the meta layer has no leader).
	Err error
	// Replicas is the stream's configured replica count.
	Replicas int
	// Leader is the stream's raft leader ("" while none is elected).
	Leader string
	Peers  []Peer
}

// Observation is one probe round.
type Observation struct {
	At time.Time
	// Clustered is whether the server the apiserver is connected to is
	// one of a NATS cluster. One server alone has no quorum to lose: its
	// store either answers or fails each request on its own.
	Clustered bool
	// Meta is the failure of a request only the JetStream meta leader
	// answers (account info): no meta leader, no stream or consumer can
	// be created, so no watch can start.
	Meta error
	// Streams are the reports by bucket name ("pods", "events").
	Streams map[string]StreamReport
}

// BucketState is one bucket's verdict.
type BucketState struct {
	// Err says why the bucket cannot be served; nil: it can.
	Err error
	// Since is when the bucket last changed between served and not.
	Since time.Time
}

// State is the verdict of the last observation.
type State struct {
	At        time.Time
	Clustered bool
	Buckets   map[string]BucketState
}

// PeerTimeout is how long a leader may not hear from a replica before
// that replica no longer counts towards its majority. NATS' raft sends a
// heartbeat every second, and a follower calls an election after 4-9 s
// without one: a leader cut off from its majority is refused here before
// the majority can have elected another leader and accepted writes it
// cannot see (its own notion, lostQuorumInterval, is 10 s).
const PeerTimeout = 2 * time.Second

// StaleAfter is the age after which a verdict no longer stands: a probe
// that stopped answering (the process starved, NATS hung) says nothing
// about the store now.
const StaleAfter = 5 * time.Second

// Decide is the state after observation obs, given the previous one
// (zero at the start): each bucket's verdict, with the time it last
// changed.
func Decide(prev State, obs Observation) State {
	next := State{At: obs.At, Clustered: obs.Clustered, Buckets: make(map[string]BucketState, len(obs.Streams))}
	for name, rep := range obs.Streams {
		err := verdict(obs, name, rep)
		since := obs.At
		if p, ok := prev.Buckets[name]; ok && (p.Err == nil) == (err == nil) {
			since = p.Since
		}
		next.Buckets[name] = BucketState{Err: err, Since: since}
	}
	return next
}

func verdict(obs Observation, name string, rep StreamReport) error {
	if !obs.Clustered {
		return nil
	}
	switch {
	case obs.Meta != nil:
		return fmt.Errorf("JetStream has no meta leader (%v)", obs.Meta)
	case rep.Err != nil:
		return fmt.Errorf("stream of bucket %s does not answer (%v): no leader", name, rep.Err)
	case rep.Leader == "":
		return fmt.Errorf("stream of bucket %s has no leader", name)
	case rep.Replicas <= 1:
		return nil
	}
	alive := 1 // the leader
	var gone []string
	for _, p := range rep.Peers {
		switch {
		case p.Offline:
			gone = append(gone, p.Name+" offline")
		case p.Active > PeerTimeout:
			gone = append(gone, fmt.Sprintf("%s last heard %v ago", p.Name, p.Active.Round(100*time.Millisecond)))
		default:
			alive++
		}
	}
	if need := rep.Replicas/2 + 1; alive < need {
		slices.Sort(gone)
		return fmt.Errorf("stream of bucket %s lost its quorum: leader %s reaches %d of %d replicas, needs %d (%s)",
			name, rep.Leader, alive, rep.Replicas, need, strings.Join(gone, ", "))
	}
	return nil
}

// Check is nil when bucket may be served at now, else an *Error. A bucket
// never probed (the probe has not run yet, or the bucket is not probed)
// passes: the store's own errors still answer its requests.
func (st State) Check(bucket string, now time.Time) error {
	if st.At.IsZero() || !st.Clustered {
		return nil
	}
	if age := now.Sub(st.At); age > StaleAfter {
		return &Error{Bucket: bucket, Since: st.At, Reason: fmt.Sprintf("the store's health is unknown: last probed %v ago", age.Round(time.Second))}
	}
	b, ok := st.Buckets[bucket]
	if !ok || b.Err == nil {
		return nil
	}
	return &Error{Bucket: bucket, Since: b.Since, Reason: b.Err.Error()}
}

// Error is a bucket the store cannot serve now.
type Error struct {
	Bucket string
	// Since is when the probe first saw it so.
	Since  time.Time
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("store bucket %s unavailable since %s (%v ago): %s",
		e.Bucket, e.Since.UTC().Format(time.RFC3339), time.Since(e.Since).Round(100*time.Millisecond), e.Reason)
}

// RetryAfter is the hint a refused client gets, in seconds: the probe
// runs every second and a JetStream election takes a few.
const RetryAfter = 2
