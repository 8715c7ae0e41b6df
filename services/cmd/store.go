package cmd

import (
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/metrics"
)

// storeFlags are the store's disk reserve and compaction.
type storeFlags struct {
	reserveMiB *uint64
	compaction *time.Duration
}

func registerStoreFlags(fs *flag.FlagSet, withReserve, withCompaction bool) storeFlags {
	var f storeFlags
	if withReserve {
		f.reserveMiB = fs.Uint64("store-reserve-mib", bus.DefaultStoreReserve>>20,
			"free space (MiB) on the store's disk that users' writes must leave: below it the API answers 507, and heartbeats and leases keep half of it")
	}
	if withCompaction {
		f.compaction = fs.Duration("compaction-delay", bus.DefaultCompactionDelay,
			"how long delete markers are kept: watches may resume from a resourceVersion this recent (older ones get 410 Gone); 0 disables compaction")
	}
	return f
}

// compactionDelay is the apiserver's CompactionDelay for the flag (its 0
// means "disabled" to the user, negative to the apiserver).
func (f storeFlags) compactionDelay() (time.Duration, error) {
	if f.compaction == nil {
		return 0, nil
	}
	d := *f.compaction
	switch {
	case d == 0:
		return -1, nil
	case d < time.Second:
		return 0, fmt.Errorf("--compaction-delay %v: want 0 (off) or at least 1s", d)
	}
	return d, nil
}

// guard makes the store guard of an embedded server with its data in
// dataDir; it is also the source of the store's metrics.
func (f storeFlags) guard(dataDir string, log *slog.Logger) (*bus.StoreGuard, func()) {
	g := bus.NewStoreGuard(bus.StoreGuardConfig{Dir: filepath.Join(dataDir, "nats"), Reserve: *f.reserveMiB << 20, Logger: log})
	return g, metrics.SetStore(g)
}
