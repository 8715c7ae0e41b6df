package quorum

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Source is the I/O a probe round needs.
type Source interface {
	// Clustered: the connected server is one of a NATS cluster.
	Clustered() bool
	// MetaLeader asks what only the JetStream meta leader answers.
	MetaLeader(ctx context.Context) error
	// StreamInfo asks the stream's leader about it.
	StreamInfo(ctx context.Context, stream string) (*jetstream.StreamInfo, error)
}

// Interval is how often the store is probed; RequestTimeout bounds each
// of a round's requests (they run in parallel).
const (
	Interval       = time.Second
	RequestTimeout = 750 * time.Millisecond
)

// Probe probes the streams of the buckets the apiserver serves every
// Interval and keeps the verdict (Decide). It is safe for concurrent use.
type Probe struct {
	src     Source
	streams map[string]string // bucket -> stream
	log     *slog.Logger
	now     func() time.Time

	mu    sync.Mutex
	state State
	// lost holds, per bucket, a channel closed when the bucket goes from
	// served to not; it is replaced when the bucket is served again.
	lost map[string]chan struct{}
}

// NewProbe probes streams, by bucket name.
func NewProbe(src Source, streams map[string]string, log *slog.Logger) *Probe {
	if log == nil {
		log = slog.Default()
	}
	p := &Probe{src: src, streams: streams, log: log, now: time.Now, lost: map[string]chan struct{}{}}
	for b := range streams {
		p.lost[b] = make(chan struct{})
	}
	return p
}

// Run probes until ctx ends.
func (p *Probe) Run(ctx context.Context) error {
	t := time.NewTicker(Interval)
	defer t.Stop()
	for {
		p.Round(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Round runs one probe round and records its verdict.
func (p *Probe) Round(ctx context.Context) State {
	obs := p.observe(ctx)
	if ctx.Err() != nil {
		return p.State()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	next := Decide(p.state, obs)
	for b, st := range next.Buckets {
		prev, had := p.state.Buckets[b]
		wasOK := !had || prev.Err == nil
		switch {
		case wasOK && st.Err != nil:
			p.log.Warn("store bucket unavailable: refusing its reads and writes (503), ending its watches", "bucket", b, "reason", st.Err)
			close(p.lost[b])
		case !wasOK && st.Err == nil:
			p.log.Info("store bucket available again", "bucket", b, "unavailable_for", st.Since.Sub(prev.Since).Round(10*time.Millisecond))
			p.lost[b] = make(chan struct{})
		}
	}
	p.state = next
	return next
}

func (p *Probe) observe(ctx context.Context) Observation {
	obs := Observation{Clustered: p.src.Clustered(), Streams: make(map[string]StreamReport, len(p.streams))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Go(func() {
		rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
		defer cancel()
		err := p.src.MetaLeader(rctx)
		mu.Lock()
		obs.Meta = err
		mu.Unlock()
	})
	for b, s := range p.streams {
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
			defer cancel()
			rep := report(p.src.StreamInfo(rctx, s))
			mu.Lock()
			obs.Streams[b] = rep
			mu.Unlock()
		})
	}
	wg.Wait()
	// The round's time is its end: every answer is at least that fresh.
	obs.At = p.now()
	return obs
}

func report(info *jetstream.StreamInfo, err error) StreamReport {
	if err == nil && info == nil {
		err = errors.New("no stream info")
	}
	if err != nil {
		return StreamReport{Err: err}
	}
	r := StreamReport{Replicas: info.Config.Replicas}
	if c := info.Cluster; c != nil {
		r.Leader = c.Leader
		for _, pi := range c.Replicas {
			r.Peers = append(r.Peers, Peer{Name: pi.Name, Offline: pi.Offline, Active: pi.Active})
		}
	} else {
		r.Leader = "self" // a stream of one server alone
	}
	return r
}

// State is the last verdict.
func (p *Probe) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// Check is nil when bucket may be served now (State.Check).
func (p *Probe) Check(bucket string) error {
	if p == nil {
		return nil
	}
	return p.State().Check(bucket, p.now())
}

// Lost is closed when bucket stops being served; a caller holding a
// watch open ends it then. Unknown buckets never close.
func (p *Probe) Lost(bucket string) <-chan struct{} {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lost[bucket]
}

// Summary is nil when every bucket is served, else the reasons, for the
// readiness check.
func (p *Probe) Summary() error {
	if p == nil {
		return nil
	}
	st := p.State()
	now := p.now()
	var msgs []string
	for _, b := range slices.Sorted(maps.Keys(p.streams)) {
		if err := st.Check(b, now); err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	// One line: /readyz shows a check per line.
	return errors.New(strings.Join(msgs, "; "))
}
