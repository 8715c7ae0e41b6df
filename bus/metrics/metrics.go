// Package metrics holds MiniKu's Prometheus metrics: one process-wide
// registry (components of `miniku up` share a process and so a /metrics)
// and one small function per instrumented site, so each component gains a
// metric with a one-line hook and the definitions live in one place.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/miniku/miniku/schemas"
)

// Registry is the process's registry. A package-level one (rather than one
// passed through every Config) keeps the hooks one line each; tests read
// it through Handler and compare values before and after, never absolutes.
var Registry = prometheus.NewRegistry()

// Buckets for operations that take from a millisecond (KV on loopback) to
// seconds (image pulls, a NATS leader election).
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

var (
	apiRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "miniku_apiserver_requests_total",
		Help: "API requests by method, route pattern and status code.",
	}, []string{"method", "route", "code"})
	apiLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "miniku_apiserver_request_duration_seconds",
		Help:    "API request latency by method, route pattern and status code (watch and follow streams are their own routes, ending in ?watch and ?follow).",
		Buckets: latencyBuckets,
	}, []string{"method", "route", "code"})

	apiWatches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "miniku_apiserver_watches_total",
		Help: "Watches of pods, replicasets and nodes by where they were served from: cache (the apiserver's watch cache), bucket (a KV watcher of their own: a resume older than the cache remembers, or no cache yet) or handover (from the cache to a KV watcher mid-stream: a reconnect, or a client too slow).",
	}, []string{"kind", "source"})

	schedBinds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "miniku_scheduler_binds_total",
		Help: "Pod binding attempts by result: bound, conflict (someone else wrote first) or error.",
	}, []string{"result"})
	schedBindLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "miniku_scheduler_bind_latency_seconds",
		Help:    "Time from a pod's creation to its binding to a node.",
		Buckets: latencyBuckets,
	})

	reconcile = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "miniku_controller_reconcile_duration_seconds",
		Help:    "Duration of one controller reconcile by kind (replicaset, node) and result (ok, error).",
		Buckets: latencyBuckets,
	}, []string{"kind", "result"})

	kvLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "miniku_kv_operation_duration_seconds",
		Help:    "KV operation latency by bucket, operation (get, create, update, delete, list) and result (ok, notfound, conflict, error).",
		Buckets: latencyBuckets,
	}, []string{"bucket", "op", "result"})

	containerStarts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "miniku_kubelet_container_starts_total",
		Help: "Containers started by a kubelet, by node and result (ok, error).",
	}, []string{"node", "result"})

	podsDesc = prometheus.NewDesc("miniku_pods",
		"Pods per phase (Terminating counted apart from its phase), as the leading controller's cache sees them.",
		[]string{"phase"}, nil)
	heartbeatDesc = prometheus.NewDesc("miniku_node_heartbeat_age_seconds",
		"Seconds since each node's last heartbeat (the kubelet's clock against the controller's).",
		[]string{"node"}, nil)
	nodeReadyDesc = prometheus.NewDesc("miniku_node_ready",
		"1 if the node is Ready, else 0.", []string{"node"}, nil)
)

func init() {
	Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		apiRequests, apiLatency, apiWatches, schedBinds, schedBindLatency, reconcile, kvLatency, containerStarts,
		&cluster,
	)
}

// Handler serves the registry in the Prometheus text format.
func Handler() http.Handler {
	return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{Registry: Registry})
}

// APIRequest records one API request; route is the pattern
// ("/pods/{name}"), never the raw path, to bound the label values.
func APIRequest(method, route string, code int, d time.Duration) {
	c := strconv.Itoa(code)
	apiRequests.WithLabelValues(method, route, c).Inc()
	apiLatency.WithLabelValues(method, route, c).Observe(d.Seconds())
}

// Watch records where a watch of kind was served from (cache, bucket or
// handover).
func Watch(kind, source string) { apiWatches.WithLabelValues(kind, source).Inc() }

// Bind records a scheduler binding attempt of a pod created at created:
// err is the bind's compare-and-swap result, conflict says it lost to
// another writer. Latency (creation to bind) is observed only for binds
// that succeeded.
func Bind(created time.Time, err error, conflict bool) {
	switch {
	case err == nil:
		schedBinds.WithLabelValues("bound").Inc()
		if !created.IsZero() {
			schedBindLatency.Observe(time.Since(created).Seconds())
		}
	case conflict:
		schedBinds.WithLabelValues("conflict").Inc()
	default:
		schedBinds.WithLabelValues("error").Inc()
	}
}

// Reconciler returns f timed: every call is one observation of the
// reconcile duration of kind, so a queue's handler is instrumented where
// it is passed to Run.
func Reconciler(kind string, f func(ctx context.Context, name string) error) func(context.Context, string) error {
	return func(ctx context.Context, name string) error {
		start := time.Now()
		err := f(ctx, name)
		reconcile.WithLabelValues(kind, result(err)).Observe(time.Since(start).Seconds())
		return err
	}
}

// KVOp records one KV operation that started at start; res is ok,
// notfound, conflict or error.
func KVOp(bucket, op string, start time.Time, res string) {
	kvLatency.WithLabelValues(bucket, op, res).Observe(time.Since(start).Seconds())
}

// ContainerStart records a container start on node.
func ContainerStart(node string, err error) {
	containerStarts.WithLabelValues(node, result(err)).Inc()
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// ClusterSource lists the cached pods and nodes the cluster gauges are
// computed from at scrape time.
type ClusterSource interface {
	ClusterState() ([]*schemas.Pod, []*schemas.Node)
}

// clusterCollector computes pods per phase and heartbeat ages when
// scraped, from whichever source is set (the leading controller's
// informers), so the values are never stale and vanish when it stops.
type clusterCollector struct {
	mu  sync.Mutex
	src *clusterSource
	now func() time.Time
}

// clusterSource boxes a ClusterSource so that SetCluster's unset compares
// pointers, not possibly uncomparable sources.
type clusterSource struct{ ClusterSource }

var cluster = clusterCollector{now: time.Now}

// SetCluster makes src the source of the cluster gauges until the returned
// function is called.
func SetCluster(src ClusterSource) (unset func()) {
	box := &clusterSource{src}
	cluster.mu.Lock()
	cluster.src = box
	cluster.mu.Unlock()
	return func() {
		cluster.mu.Lock()
		if cluster.src == box {
			cluster.src = nil
		}
		cluster.mu.Unlock()
	}
}

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- podsDesc
	ch <- heartbeatDesc
	ch <- nodeReadyDesc
}

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	src := c.src
	c.mu.Unlock()
	if src == nil {
		return
	}
	pods, nodes := src.ClusterState()
	phases := map[string]int{}
	for _, p := range []schemas.PodPhase{schemas.PodPending, schemas.PodRunning, schemas.PodSucceeded, schemas.PodFailed, schemas.PodUnknown} {
		phases[string(p)] = 0
	}
	phases["Terminating"] = 0
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			phases["Terminating"]++
			continue
		}
		phases[string(p.Status)]++
	}
	for phase, n := range phases {
		ch <- prometheus.MustNewConstMetric(podsDesc, prometheus.GaugeValue, float64(n), phase)
	}
	now := c.now()
	for _, n := range nodes {
		ready := 0.0
		if n.Status == schemas.NodeReady {
			ready = 1
		}
		ch <- prometheus.MustNewConstMetric(nodeReadyDesc, prometheus.GaugeValue, ready, n.Name)
		if !n.LastHeartbeat.IsZero() {
			ch <- prometheus.MustNewConstMetric(heartbeatDesc, prometheus.GaugeValue, now.Sub(n.LastHeartbeat).Seconds(), n.Name)
		}
	}
}
