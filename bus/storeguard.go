package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/miniku/miniku/bus/metrics"
)

// A write that fails for lack of space leaves JetStream's file store in a
// sticky error: every later write to that stream fails with "no space left
// on device" even once space is free, until the store is reopened. The
// StoreGuard of the process that embeds the server notices the failure
// (from the server's log), waits until the disk has room again, then
// reopens JetStream in place (shut down and enabled again, which reloads
// every stream from disk) and drops the client connections so that every
// client re-creates its watchers at once. It also keeps a reserve of free
// space: the apiserver refuses users' writes below it (507), so that
// heartbeats and leases, which are not refused, still have room.

// DefaultStoreReserve is the free space the store keeps for the system's
// own writes: at about a kilobyte a write, tens of thousands of heartbeats
// and lease renewals.
const DefaultStoreReserve = 64 << 20

// ErrInsufficientStorage: the store's disk is below its reserve.
var ErrInsufficientStorage = errors.New("insufficient storage")

// ErrStoreRecovering: JetStream failed a write and has not been reopened
// yet; a write now would fail or hang on the reopen.
var ErrStoreRecovering = errors.New("store recovering from a failed write")

// StoreGuardConfig configures a StoreGuard.
type StoreGuardConfig struct {
	// Dir is the JetStream store directory (ServerConfig.StoreDir).
	Dir string
	// Reserve is the free space users' writes must leave (bytes); the
	// system's writes (deletes) may use all but a sixteenth of it. 0: DefaultStoreReserve.
	Reserve uint64
	// Interval between disk checks; 0: a second.
	Interval time.Duration
	Logger   *slog.Logger
}

// StoreGuard watches the store's disk and recovers JetStream after a
// write failure. Set ServerConfig.OnWriteError to its WriteFailed.
type StoreGuard struct {
	cfg StoreGuardConfig
	log *slog.Logger

	mu         sync.Mutex
	free       uint64
	total      uint64
	statErr    error
	checked    bool
	writeErr   string // since the last recovery; "" none
	recoveries int
	ns         *server.Server
	// kick wakes Run when a write finds room on the disk while a write
	// failure is pending: the reopen need not wait for the next tick.
	kick chan struct{}
}

// NewStoreGuard returns a guard; Run starts it.
func NewStoreGuard(cfg StoreGuardConfig) *StoreGuard {
	if cfg.Reserve == 0 {
		cfg.Reserve = DefaultStoreReserve
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &StoreGuard{cfg: cfg, log: log.With("component", "store"), kick: make(chan struct{}, 1)}
}

// WriteFailed is told of every JetStream store write error (the server's
// log lines): the store needs reopening once there is room.
func (g *StoreGuard) WriteFailed(msg string) {
	g.mu.Lock()
	first := g.writeErr == ""
	g.writeErr = msg
	g.mu.Unlock()
	if first {
		g.log.Error("store write failed; JetStream will be reopened once the disk has room", "err", msg)
	}
}

// isStoreWriteError says whether a nats-server log line reports a store
// write failure (the file store's sticky error, or a store refused).
func isStoreWriteError(msg string) bool {
	return strings.Contains(msg, "Critical write error") ||
		strings.Contains(msg, "failed to store a msg") ||
		strings.Contains(msg, "no space left on device")
}

// Run checks the disk every interval and reopens JetStream on ns after a
// write failure once there is room, until ctx ends.
func (g *StoreGuard) Run(ctx context.Context, ns *server.Server) error {
	g.mu.Lock()
	g.ns = ns
	g.mu.Unlock()
	t := time.NewTicker(g.cfg.Interval)
	defer t.Stop()
	for {
		g.check(ns)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-g.kick:
		}
	}
}

func (g *StoreGuard) check(ns *server.Server) {
	free, total, err := diskSpace(g.cfg.Dir)
	g.mu.Lock()
	g.free, g.total, g.statErr, g.checked = free, total, err, true
	failed := g.writeErr
	g.mu.Unlock()
	if err != nil || failed == "" || free < g.cfg.Reserve/2 {
		return
	}
	if err := g.reopen(ns); err != nil {
		g.log.Error("reopen JetStream", "err", err)
		return
	}
	g.mu.Lock()
	if g.writeErr == failed {
		g.writeErr = ""
	}
	g.recoveries++
	g.mu.Unlock()
	g.log.Info("JetStream reopened after a store write failure", "free", free)
}

// reopen shuts JetStream down and enables it again with the same store and
// limits (its limits would otherwise be worked out anew from the free
// space), then drops every client: their consumers are gone, and each
// reconnect makes them re-create their watchers without waiting for
// missed heartbeats.
func (g *StoreGuard) reopen(ns *server.Server) error {
	jcfg := ns.JetStreamConfig()
	if jcfg == nil {
		return errors.New("JetStream is not enabled")
	}
	// JetStreamConfig's StoreDir ends in the "jetstream" that Enable adds.
	jcfg.StoreDir = g.cfg.Dir
	if err := ns.ShutdownJetStream(); err != nil {
		return fmt.Errorf("shut down JetStream: %w", err)
	}
	if err := ns.EnableJetStream(jcfg); err != nil {
		return fmt.Errorf("enable JetStream: %w", err)
	}
	cz, err := ns.Connz(&server.ConnzOptions{Limit: 1 << 20})
	if err != nil {
		return fmt.Errorf("list connections: %w", err)
	}
	for _, c := range cz.Conns {
		_ = ns.DisconnectClientByID(c.Cid) // gone already is fine
	}
	return nil
}

// Room says whether a write may go ahead: users' writes need the whole
// reserve free, deletes (system true) a sixteenth of it.
func (g *StoreGuard) Room(system bool) error {
	// The disk is read again for each write (one statfs): a disk that
	// filled up since Run's last look must not let a write through to
	// fail halfway in the store.
	free, total, err := diskSpace(g.cfg.Dir)
	g.mu.Lock()
	g.free, g.total, g.statErr, g.checked = free, total, err, true
	failing := g.writeErr != ""
	g.mu.Unlock()
	checked := err == nil
	if failing && checked && free >= g.cfg.Reserve/2 {
		select {
		case g.kick <- struct{}{}:
		default:
		}
		return fmt.Errorf("%w: JetStream is being reopened", ErrStoreRecovering)
	}
	need := g.cfg.Reserve
	if system {
		// A delete writes a marker of a few hundred bytes and is how a
		// user makes room (a pod evicted at disk pressure is deleted to
		// free its layer): it needs only a sliver of the reserve.
		need /= 16
	}
	if checked && free < need {
		return fmt.Errorf("%w: %d bytes free on the store's disk, below the %d kept in reserve", ErrInsufficientStorage, free, need)
	}
	return nil
}

// StoreCheck is one line of a readiness report: Err nil is healthy.
type StoreCheck struct {
	Name string
	Err  error
}

// Checks reports the disk against its reserve and any write failure not
// yet recovered from.
func (g *StoreGuard) Checks() []StoreCheck {
	g.mu.Lock()
	defer g.mu.Unlock()
	disk := StoreCheck{Name: "store-disk"}
	switch {
	case g.statErr != nil:
		disk.Err = g.statErr
	case g.checked && g.free < g.cfg.Reserve:
		disk.Err = fmt.Errorf("%d bytes free, below the reserve of %d", g.free, g.cfg.Reserve)
	}
	write := StoreCheck{Name: "store-write"}
	if g.writeErr != "" {
		write.Err = fmt.Errorf("JetStream cannot write (%s); it is reopened once %d bytes are free", g.writeErr, g.cfg.Reserve/2)
	}
	return []StoreCheck{disk, write}
}

// StoreMetrics reads the disk and the streams' sizes for /metrics.
func (g *StoreGuard) StoreMetrics() metrics.StoreStats {
	g.mu.Lock()
	s := metrics.StoreStats{Free: g.free, Total: g.total, Reserve: g.cfg.Reserve, WriteFailing: g.writeErr != "", Recoveries: g.recoveries}
	ns := g.ns
	g.mu.Unlock()
	if ns != nil {
		s.Streams = streamStats(ns)
	}
	return s
}

func streamStats(ns *server.Server) []metrics.StreamSize {
	jsz, err := ns.Jsz(&server.JSzOptions{Accounts: true, Streams: true})
	if err != nil || jsz == nil {
		return nil
	}
	var out []metrics.StreamSize
	for _, a := range jsz.AccountDetails {
		for _, st := range a.Streams {
			out = append(out, metrics.StreamSize{Name: st.Name, Messages: st.State.Msgs, Bytes: st.State.Bytes})
		}
	}
	return out
}
