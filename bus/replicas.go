package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniku/miniku/schemas"
)

// ClusterReplicas is the replica count a cluster of servers JetStream
// servers keeps every bucket and stream at: 3 once there are three, else
// 1 (two replicas survive no loss a single one does not, and cost a
// quorum of both).
func ClusterReplicas(servers int) int {
	if servers >= 3 {
		return 3
	}
	return 1
}

// RaiseReplicas sets every MiniKu bucket's and stream's replicas to n
// where they have fewer, in place (JetStream moves the data), and returns
// the streams it changed. It never lowers one. Streams not created yet are
// left to their creator. The connection's user must be allowed to update
// them all (the apiserver's).
func (c *Conn) RaiseReplicas(ctx context.Context, n int) ([]string, error) {
	streams := append(kvStreams(schemas.StoreBuckets(func(schemas.Store) bool { return true })...), StreamEvents)
	var raised []string
	var errs []error
	for _, name := range streams {
		s, err := c.js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("stream %s: %w", name, err))
			continue
		}
		cfg := s.CachedInfo().Config
		if cfg.Replicas >= n {
			continue
		}
		cfg.Replicas = n
		if _, err := c.js.UpdateStream(ctx, cfg); err != nil {
			errs = append(errs, fmt.Errorf("raise stream %s to %d replicas: %w", name, n, err))
			continue
		}
		raised = append(raised, name)
	}
	return raised, errors.Join(errs...)
}

// StreamReplicas is the configured replica count of each MiniKu bucket
// and stream that exists, by stream name.
func (c *Conn) StreamReplicas(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	for _, name := range append(kvStreams(schemas.StoreBuckets(func(schemas.Store) bool { return true })...), StreamEvents) {
		s, err := c.js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", name, err)
		}
		out[name] = s.CachedInfo().Config.Replicas
	}
	return out, nil
}

// StreamState is one stream's placement as its cluster reports it.
type StreamState struct {
	Name     string      `json:"name"`
	Replicas int         `json:"replicas"`
	Leader   string      `json:"leader"`
	Peers    []PeerState `json:"peers"`
}

// PeerState is one follower of a stream.
type PeerState struct {
	Name    string `json:"name"`
	Current bool   `json:"current"`
	Offline bool   `json:"offline,omitempty"`
	Lag     uint64 `json:"lag"`
}

// StreamStates is the placement of every MiniKu bucket and stream that
// exists: its leader and each follower's lag.
func (c *Conn) StreamStates(ctx context.Context) ([]StreamState, error) {
	var out []StreamState
	for _, name := range append(kvStreams(schemas.StoreBuckets(func(schemas.Store) bool { return true })...), StreamEvents) {
		s, err := c.js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", name, err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", name, err)
		}
		st := StreamState{Name: name, Replicas: info.Config.Replicas}
		if info.Cluster != nil {
			st.Leader = info.Cluster.Leader
			for _, r := range info.Cluster.Replicas {
				st.Peers = append(st.Peers, PeerState{Name: r.Name, Current: r.Current, Offline: r.Offline, Lag: r.Lag})
			}
		}
		out = append(out, st)
	}
	return out, nil
}
