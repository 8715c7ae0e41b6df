package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/pki"
	"github.com/miniku/miniku/runtime/image/imagetest"
)

// upWith starts `miniku up` like cluster.up, with extra flags.
func (c *cluster) upWith(t *testing.T, extra ...string) *proc {
	t.Helper()
	args := append([]string{"up",
		"--data-dir", c.dataDir, "--api-addr", c.apiAddr, "--nats-addr", c.natsAddr,
		"--nodes", "2", "--registry-mirror", "http://" + c.registry,
		"--heartbeat-interval", "500ms", "--node-grace", "3s", "--eviction-timeout", "3s"}, extra...)
	p := start(t, "miniku up", args...)
	eventually(t, 30*time.Second, func() error {
		if code, body := c.api.do("GET", "/healthz", ""); code != 200 {
			return fmt.Errorf("healthz: %d %s", code, body)
		}
		return nil
	})
	return p
}

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

func parseMetrics(t *testing.T, r io.Reader) []sample {
	t.Helper()
	var out []sample
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		s := sample{name: line[:i], labels: map[string]string{}, value: v}
		if j := strings.IndexByte(s.name, '{'); j >= 0 {
			for _, kv := range strings.Split(strings.TrimSuffix(s.name[j+1:], "}"), ",") {
				k, val, _ := strings.Cut(kv, "=")
				s.labels[k] = strings.Trim(val, `"`)
			}
			s.name = s.name[:j]
		}
		out = append(out, s)
	}
	return out
}

// sum adds the values of name's samples whose labels include want.
func sum(ss []sample, name string, want map[string]string) (total float64, found bool) {
	for _, s := range ss {
		if s.name != name {
			continue
		}
		match := true
		for k, v := range want {
			if s.labels[k] != v {
				match = false
			}
		}
		if match {
			total += s.value
			found = true
		}
	}
	return total, found
}

func scrape(t *testing.T, a api) []sample {
	t.Helper()
	req, err := http.NewRequest("GET", a.base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	a.authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	return parseMetrics(t, resp.Body)
}

// TestMetrics scrapes a real `miniku up`: /metrics needs the token on the
// API port and not on --metrics-addr, every documented metric is there, and
// creating a replicaset moves the counters it should.
func TestMetrics(t *testing.T) {
	c := newCluster(t)
	metricsAddr := freeAddr(t)
	up := c.upWith(t, "--metrics-addr", metricsAddr, "--log-format", "json")
	a := c.api

	if code, _ := (api{t: t, base: "http://" + metricsAddr}).do("GET", "/metrics", ""); code != 200 {
		t.Fatalf("GET /metrics on --metrics-addr: %d, want 200", code)
	}
	resp, err := http.Get(a.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /metrics on the API port without the token: %d, want 401", resp.StatusCode)
	}

	// Wait for both nodes' heartbeat gauges: the controller's caches are
	// loaded and the kubelets have reported.
	var before []sample
	eventually(t, 30*time.Second, func() error {
		before = scrape(t, a)
		for _, n := range []string{"node-1", "node-2"} {
			if _, ok := sum(before, "miniku_node_heartbeat_age_seconds", map[string]string{"node": n}); !ok {
				return fmt.Errorf("no heartbeat age for %s", n)
			}
		}
		return nil
	})
	postsBefore, _ := sum(before, "miniku_apiserver_requests_total", map[string]string{"method": "POST", "route": "/replicasets", "code": "201"})
	bindsBefore, _ := sum(before, "miniku_scheduler_binds_total", map[string]string{"result": "bound"})
	startsBefore, _ := sum(before, "miniku_kubelet_container_starts_total", map[string]string{"result": "ok"})

	rs := `{"name":"metrics","desiredCount":3,"selector":{"app":"metrics"},"template":{"image":"alpine","command":["/bin/sh","-c","while true; do sleep 1; done"]}}`
	if code, body := a.do("POST", "/replicasets", rs); code != 201 {
		t.Fatalf("POST /replicasets: %d %s", code, body)
	}
	var pods []string
	eventually(t, 60*time.Second, func() error {
		ps, err := running(a, "metrics", 3)
		pods = pods[:0]
		for _, p := range ps {
			pods = append(pods, p.Name)
		}
		return err
	})
	if code, body := a.do("GET", "/pods/"+pods[0], ""); code != 200 {
		t.Fatalf("GET /pods/%s: %d %s", pods[0], code, body)
	}

	var after []sample
	eventually(t, 30*time.Second, func() error {
		after = scrape(t, a)
		if n, _ := sum(after, "miniku_pods", map[string]string{"phase": "Running"}); n < 3 {
			return fmt.Errorf("miniku_pods{phase=Running} = %v, want >= 3", n)
		}
		return nil
	})
	for _, name := range []string{
		"miniku_apiserver_requests_total",
		"miniku_apiserver_request_duration_seconds_bucket",
		"miniku_scheduler_binds_total",
		"miniku_scheduler_bind_latency_seconds_count",
		"miniku_controller_reconcile_duration_seconds_count",
		"miniku_kv_operation_duration_seconds_count",
		"miniku_kubelet_container_starts_total",
		"miniku_pods",
		"miniku_node_ready",
		"miniku_node_heartbeat_age_seconds",
		"go_goroutines",
	} {
		if _, ok := sum(after, name, nil); !ok {
			t.Errorf("metric %s missing", name)
		}
	}
	if n, _ := sum(after, "miniku_apiserver_requests_total", map[string]string{"method": "POST", "route": "/replicasets", "code": "201"}); n != postsBefore+1 {
		t.Errorf("POST /replicasets 201 count: %v -> %v, want +1", postsBefore, n)
	}
	if n, _ := sum(after, "miniku_scheduler_binds_total", map[string]string{"result": "bound"}); n < bindsBefore+3 {
		t.Errorf("scheduler binds: %v -> %v, want at least +3", bindsBefore, n)
	}
	if n, _ := sum(after, "miniku_kubelet_container_starts_total", map[string]string{"result": "ok"}); n < startsBefore+3 {
		t.Errorf("container starts: %v -> %v, want at least +3", startsBefore, n)
	}
	if _, ok := sum(after, "miniku_apiserver_requests_total", map[string]string{"method": "GET", "route": "/pods/{name}", "code": "200"}); !ok {
		t.Errorf("no GET /pods/{name} request counted")
	}
	for _, s := range after {
		if r := s.labels["route"]; strings.Contains(r, "metrics-") {
			t.Errorf("route label %q holds an object name, not a pattern", r)
		}
	}
	// Lists are served from the apiserver's cache after reading the
	// bucket's revision.
	for _, op := range []string{"get", "create", "update", "revision"} {
		if _, ok := sum(after, "miniku_kv_operation_duration_seconds_count", map[string]string{"bucket": "pods", "op": op}); !ok {
			t.Errorf("no KV %s on pods observed", op)
		}
	}
	if n, _ := sum(after, "miniku_controller_reconcile_duration_seconds_count", map[string]string{"kind": "replicaset"}); n == 0 {
		t.Errorf("no replicaset reconcile observed")
	}

	// --log-format json: every line is an object, and the components'
	// lines carry their component (and pod/node where they apply).
	var kubeletPodLine bool
	for _, line := range strings.Split(strings.TrimSpace(up.output()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["component"] == "kubelet" && rec["pod"] != nil && rec["node"] != nil {
			kubeletPodLine = true
		}
	}
	if !kubeletPodLine {
		t.Errorf("no kubelet log line with component, pod and node")
	}
	if strings.Contains(up.output(), mustToken(t, c)) {
		t.Errorf("the API token appears in the log")
	}
}

func mustToken(t *testing.T, c *cluster) string {
	t.Helper()
	data, err := os.ReadFile(c.dataDir + "/token")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

// TestSeparateProcessMetrics: each component run as its own process
// serves its own metrics on --metrics-addr, without a token, and each
// shows what that component did.
func TestSeparateProcessMetrics(t *testing.T) {
	requireRoot(t)
	dataDir := t.TempDir()
	natsAddr, apiAddr := freeAddr(t), freeAddr(t)
	registry := imagetest.Registry(t)
	t.Cleanup(func() { cleanupContainers(t, dataDir) })
	natsURL := "nats://" + natsAddr
	ctlDir := filepath.Join(dataDir, "nats-server")
	start(t, "nats", "nats", "--addr", natsAddr, "--data-dir", ctlDir, "--kubelets", "node-a")
	eventually(t, 30*time.Second, func() error {
		_, err := os.Stat(filepath.Join(ctlDir, "nats", "auth", bus.UserViewer+".json"))
		return err
	})
	m := map[string]string{"apiserver": freeAddr(t), "scheduler": freeAddr(t), "controller": freeAddr(t), "kubelet": freeAddr(t)}
	start(t, "apiserver", "apiserver", "--nats", natsURL, "--api-addr", apiAddr, "--data-dir", ctlDir, "--metrics-addr", m["apiserver"])
	start(t, "scheduler", "scheduler", "--nats", natsURL, "--data-dir", ctlDir, "--metrics-addr", m["scheduler"])
	start(t, "controller", "controller", "--nats", natsURL, "--data-dir", ctlDir, "--metrics-addr", m["controller"])
	start(t, "kubelet node-a", "kubelet", "--nats", natsURL, "--node-name", "node-a",
		"--nats-creds", filepath.Join(ctlDir, "nats", "auth", "kubelet-node-a.json"), "--nats-ca", pki.CAPath(ctlDir), "--data-dir", dataDir,
		"--registry-mirror", "http://"+registry, "--heartbeat-interval", "500ms", "--metrics-addr", m["kubelet"])
	a := api{t: t, base: "http://" + apiAddr}
	eventually(t, 30*time.Second, func() error { _, err := a.pods(); return err })

	rs := `{"name":"sep","desiredCount":2,"selector":{"app":"sep"},"template":{"image":"alpine","command":["/bin/sh","-c","while true; do sleep 1; done"]}}`
	if code, body := a.do("POST", "/replicasets", rs); code != 201 {
		t.Fatalf("POST /replicasets: %d %s", code, body)
	}
	eventually(t, 60*time.Second, func() error { _, err := running(a, "sep", 2); return err })

	// What each process must show, and what it must not (another
	// component's metrics live in that component's process).
	for comp, want := range map[string]map[string]string{
		"apiserver":  {"miniku_apiserver_requests_total": `{"route":"/replicasets","code":"201"}`},
		"scheduler":  {"miniku_scheduler_binds_total": `{"result":"bound"}`},
		"controller": {"miniku_controller_reconcile_duration_seconds_count": `{"kind":"replicaset"}`, "miniku_pods": `{"phase":"Running"}`},
		"kubelet":    {"miniku_kubelet_container_starts_total": `{"node":"node-a","result":"ok"}`},
	} {
		eventually(t, 30*time.Second, func() error {
			resp, err := http.Get("http://" + m[comp] + "/metrics")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("%s /metrics: %d", comp, resp.StatusCode)
			}
			ss := parseMetrics(t, resp.Body)
			for name, labels := range want {
				var l map[string]string
				if err := json.Unmarshal([]byte(labels), &l); err != nil {
					t.Fatal(err)
				}
				if n, _ := sum(ss, name, l); n < 1 {
					return fmt.Errorf("%s: %s%s = %v, want >= 1", comp, name, labels, n)
				}
			}
			if _, ok := sum(ss, "miniku_kv_operation_duration_seconds_count", nil); !ok {
				return fmt.Errorf("%s: no KV operations", comp)
			}
			if comp != "scheduler" {
				if _, ok := sum(ss, "miniku_scheduler_binds_total", nil); ok {
					return fmt.Errorf("%s serves the scheduler's binds", comp)
				}
			}
			return nil
		})
	}
}
