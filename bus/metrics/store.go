package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// StoreStats are the store's sizes and disk, as the process embedding the
// NATS server sees them.
type StoreStats struct {
	Free, Total, Reserve uint64
	WriteFailing         bool
	Recoveries           int
	Streams              []StreamSize
}

// StreamSize is one JetStream stream's size (bucket <b> is stream KV_<b>).
type StreamSize struct {
	Name            string
	Messages, Bytes uint64
}

// StoreSource computes StoreStats at scrape time (bus.StoreGuard).
type StoreSource interface{ StoreMetrics() StoreStats }

var (
	storeMsgsDesc = prometheus.NewDesc("miniku_store_messages",
		"Messages in each JetStream stream of the store (a bucket's live keys plus its delete markers not yet compacted).",
		[]string{"stream"}, nil)
	storeBytesDesc = prometheus.NewDesc("miniku_store_bytes",
		"Bytes held by each JetStream stream of the store.", []string{"stream"}, nil)
	storeFreeDesc = prometheus.NewDesc("miniku_store_disk_free_bytes",
		"Free bytes on the filesystem of the store's data directory (available to non-root writers).", nil, nil)
	storeTotalDesc = prometheus.NewDesc("miniku_store_disk_size_bytes",
		"Size of the filesystem of the store's data directory.", nil, nil)
	storeReserveDesc = prometheus.NewDesc("miniku_store_disk_reserve_bytes",
		"Free space the apiserver keeps for the system's writes: users' writes are refused (507) below it.", nil, nil)
	storeFailingDesc = prometheus.NewDesc("miniku_store_write_failing",
		"1 while JetStream has a store write failure it has not been reopened after, else 0.", nil, nil)
	storeRecoveriesDesc = prometheus.NewDesc("miniku_store_recoveries_total",
		"Times JetStream was reopened in place after a store write failure.", nil, nil)
	compactedDesc = prometheus.NewDesc("miniku_store_compacted_markers_total",
		"Delete markers removed by compaction, by bucket.", []string{"bucket"}, nil)
)

type storeCollector struct {
	mu        sync.Mutex
	src       *storeSource
	compacted map[string]uint64
}

type storeSource struct{ StoreSource }

var store = storeCollector{compacted: map[string]uint64{}}

func init() { Registry.MustRegister(&store) }

// SetStore makes src the source of the store gauges until unset is called.
func SetStore(src StoreSource) (unset func()) {
	box := &storeSource{src}
	store.mu.Lock()
	store.src = box
	store.mu.Unlock()
	return func() {
		store.mu.Lock()
		if store.src == box {
			store.src = nil
		}
		store.mu.Unlock()
	}
}

// Compacted counts n delete markers removed from bucket.
func Compacted(bucket string, n int) {
	store.mu.Lock()
	store.compacted[bucket] += uint64(n)
	store.mu.Unlock()
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{storeMsgsDesc, storeBytesDesc, storeFreeDesc, storeTotalDesc, storeReserveDesc, storeFailingDesc, storeRecoveriesDesc, compactedDesc} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	src := c.src
	for b, n := range c.compacted {
		ch <- prometheus.MustNewConstMetric(compactedDesc, prometheus.CounterValue, float64(n), b)
	}
	c.mu.Unlock()
	if src == nil {
		return
	}
	s := src.StoreMetrics()
	for _, st := range s.Streams {
		ch <- prometheus.MustNewConstMetric(storeMsgsDesc, prometheus.GaugeValue, float64(st.Messages), st.Name)
		ch <- prometheus.MustNewConstMetric(storeBytesDesc, prometheus.GaugeValue, float64(st.Bytes), st.Name)
	}
	ch <- prometheus.MustNewConstMetric(storeFreeDesc, prometheus.GaugeValue, float64(s.Free))
	ch <- prometheus.MustNewConstMetric(storeTotalDesc, prometheus.GaugeValue, float64(s.Total))
	ch <- prometheus.MustNewConstMetric(storeReserveDesc, prometheus.GaugeValue, float64(s.Reserve))
	failing := 0.0
	if s.WriteFailing {
		failing = 1
	}
	ch <- prometheus.MustNewConstMetric(storeFailingDesc, prometheus.GaugeValue, failing)
	ch <- prometheus.MustNewConstMetric(storeRecoveriesDesc, prometheus.CounterValue, float64(s.Recoveries))
}
