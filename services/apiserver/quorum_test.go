package apiserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/services/apiserver"
)

// clusterAPI is an apiserver (Run, as miniku up runs it: caches, probe)
// connected to the first server of a three-server cluster with R3
// buckets, as the apiserver connects (no reconnect buffer).
type clusterAPI struct {
	t      *testing.T
	hosts  *bustest.Hosts
	conn   *bus.Conn
	url    string
	client *http.Client
}

func newClusterAPI(t *testing.T) *clusterAPI {
	t.Helper()
	hosts := bustest.NewHosts(t, 3)
	log := bustest.Logger(t)
	// Creating the R3 buckets waits on JetStream placing them: slow on a
	// loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	conn, err := bus.Connect(ctx, bus.Options{URL: hosts.URL(0), Name: t.Name(), Replicas: 3, Logger: log,
		SecretsKey: bustest.SecretsKey(), NoReconnectBuffer: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	srv, err := apiserver.New(apiserver.Config{Addr: "127.0.0.1:0", Logger: log}, conn)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(rctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("apiserver Run: %v", err)
		}
	})
	select {
	case <-srv.Listening():
	case err := <-done:
		t.Fatalf("apiserver stopped before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("apiserver not listening after 30s")
	}
	c := &clusterAPI{t: t, hosts: hosts, conn: conn, url: "http://" + srv.Addr(), client: &http.Client{Timeout: 12 * time.Second}}
	t.Cleanup(c.client.CloseIdleConnections)
	return c
}

type reply struct {
	code  int
	body  []byte
	retry string
	err   error
	took  time.Duration
}

func (c *clusterAPI) call(method, path, body string) reply {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.url+path, rd)
	if err != nil {
		return reply{err: err}
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := c.client.Do(req)
	if err != nil {
		return reply{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return reply{code: resp.StatusCode, body: data, retry: resp.Header.Get("Retry-After"), err: err, took: time.Since(start)}
}

const cmPath = "/api/v1/namespaces/default/configmaps"

func configMapJSON(name, rv, value string) string {
	meta := map[string]any{"name": name}
	if rv != "" {
		meta["resourceVersion"] = rv
	}
	b, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": map[string]string{"v": value}})
	return string(b)
}

// configMapValue is a ConfigMap reply's data.v and resourceVersion.
func configMapValue(body []byte) (value, rv string, err error) {
	var cm struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		Data map[string]string `json:"data"`
	}
	if err := json.Unmarshal(body, &cm); err != nil {
		return "", "", err
	}
	return cm.Data["v"], cm.Metadata.ResourceVersion, nil
}

// isQuorumStatus checks a Kubernetes API refusal: 503, Retry-After, a
// Status with reason ServiceUnavailable naming the bucket and the time.
func isQuorumStatus(r reply, bucket string) error {
	if r.err != nil {
		return r.err
	}
	if r.code != http.StatusServiceUnavailable {
		return fmt.Errorf("status %d, want 503: %s", r.code, r.body)
	}
	var st metaStatus
	if err := json.Unmarshal(r.body, &st); err != nil {
		return fmt.Errorf("503 body is not a Status: %q", r.body)
	}
	if st.Kind != "Status" || st.Reason != "ServiceUnavailable" || !strings.Contains(st.Message, "bucket "+bucket) || !strings.Contains(st.Message, " ago") {
		return fmt.Errorf("503 Status %+v: want reason ServiceUnavailable and a message naming bucket %s and since when", st, bucket)
	}
	if r.retry == "" || st.Details == nil || st.Details.RetryAfterSeconds == 0 {
		return fmt.Errorf("503 without Retry-After (header %q, details %+v)", r.retry, st.Details)
	}
	return nil
}

// isQuorumError checks the seed API's refusal: 503, Retry-After, its
// usual {"error": ...} naming the bucket.
func isQuorumError(r reply, bucket string) error {
	if r.err != nil {
		return r.err
	}
	var e struct {
		Error, Reason string
	}
	if r.code != http.StatusServiceUnavailable || json.Unmarshal(r.body, &e) != nil || !strings.Contains(e.Error, "bucket "+bucket) || e.Reason != "ServiceUnavailable" || r.retry == "" {
		return fmt.Errorf("status %d, Retry-After %q: %s; want 503 with an error naming bucket %s", r.code, r.retry, r.body, bucket)
	}
	return nil
}

// Two of three servers lost: within a few seconds every read and write
// of the API answers 503 at once with a Status saying which store is lost
// and since when, /readyz fails store-quorum, /livez stays 200; with the
// servers back everything answers again and nothing written before is
// lost. Without the gate reads were served 200 from the surviving
// replica and the caches (stale), and writes hung 0.5-10 s.
func TestQuorumLostRefusesThenRecovers(t *testing.T) {
	c := newClusterAPI(t)
	values := map[string]string{}
	for i := range 4 {
		name := fmt.Sprintf("cm-%d", i)
		r := c.call(http.MethodPost, cmPath, configMapJSON(name, "", "before-"+name))
		if r.err != nil || r.code != http.StatusCreated {
			t.Fatalf("create %s: %d %v %s", name, r.code, r.err, r.body)
		}
		values[name] = "before-" + name
	}
	if r := c.call(http.MethodPost, "/replicasets", `{"name":"rs","desiredCount":0,"selector":{"app":"x"},"template":{"image":"busybox"}}`); r.code != http.StatusCreated {
		t.Fatalf("create replicaset: %d %v %s", r.code, r.err, r.body)
	}
	bustest.Eventually(t, 10*time.Second, func() error {
		if r := c.call(http.MethodGet, "/readyz?verbose", ""); r.code != http.StatusOK {
			return fmt.Errorf("readyz %d: %s", r.code, r.body)
		}
		return nil
	})
	get := c.call(http.MethodGet, cmPath+"/cm-0", "")
	_, rv0, _ := configMapValue(get.body)

	// A write in flight as the quorum goes: it must end within a bounded
	// time, and be applied wholly or not at all (checked after recovery).
	inflight := make(chan reply, 1)
	lost := time.Now()
	for i := 1; i < 3; i++ {
		c.hosts.Stop(i)
	}
	go func() { inflight <- c.call(http.MethodPut, cmPath+"/cm-0", configMapJSON("cm-0", rv0, "inflight")) }()

	// Every read and write, on both APIs.
	checks := []struct {
		name string
		try  func() error
	}{
		{"kube get", func() error { return isQuorumStatus(c.call(http.MethodGet, cmPath+"/cm-1", ""), "configmaps") }},
		{"kube list", func() error { return isQuorumStatus(c.call(http.MethodGet, cmPath, ""), "configmaps") }},
		{"kube create", func() error {
			return isQuorumStatus(c.call(http.MethodPost, cmPath, configMapJSON("new", "", "x")), "configmaps")
		}},
		{"kube update", func() error {
			return isQuorumStatus(c.call(http.MethodPut, cmPath+"/cm-2", configMapJSON("cm-2", "1", "x")), "configmaps")
		}},
		{"kube delete", func() error { return isQuorumStatus(c.call(http.MethodDelete, cmPath+"/cm-3", ""), "configmaps") }},
		{"kube list pods", func() error {
			return isQuorumStatus(c.call(http.MethodGet, "/api/v1/namespaces/default/pods", ""), "pods")
		}},
		{"seed get", func() error { return isQuorumError(c.call(http.MethodGet, "/replicasets/rs", ""), "replicasets") }},
		{"seed list", func() error { return isQuorumError(c.call(http.MethodGet, "/pods", ""), "pods") }},
		{"seed create", func() error {
			return isQuorumError(c.call(http.MethodPost, "/pods", `{"name":"p","image":"busybox"}`), "pods")
		}},
	}
	var first503 time.Duration
	bustest.Eventually(t, 15*time.Second, func() error {
		for _, ch := range checks {
			if err := ch.try(); err != nil {
				return fmt.Errorf("%s: %w", ch.name, err)
			}
			if first503 == 0 {
				first503 = time.Since(lost)
			}
		}
		return nil
	})
	all503 := time.Since(lost)
	// Once refused, at once: no request waits on NATS.
	for _, ch := range checks {
		start := time.Now()
		if err := ch.try(); err != nil {
			t.Fatalf("%s after the quorum was lost: %v", ch.name, err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s: refused after %v, want at once", ch.name, took)
		}
	}
	r := c.call(http.MethodGet, "/readyz?verbose", "")
	if r.code != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "[-]store-quorum failed: ") || !strings.Contains(string(r.body), "[+]ping ok") {
		t.Errorf("readyz without quorum: %d %s", r.code, r.body)
	}
	if r := c.call(http.MethodGet, "/readyz/store-quorum", ""); r.code != http.StatusServiceUnavailable {
		t.Errorf("readyz/store-quorum without quorum: %d %s", r.code, r.body)
	}
	for _, p := range []string{"/livez", "/livez?verbose", "/livez/ping", "/healthz"} {
		if r := c.call(http.MethodGet, p, ""); r.code != http.StatusOK {
			t.Errorf("%s without quorum: %d %s, want 200: losing the quorum is no reason to restart", p, r.code, r.body)
		}
	}
	in := <-inflight
	t.Logf("write in flight as the quorum went: %d after %v: %s", in.code, in.took.Round(time.Millisecond), in.body)
	if in.err != nil || (in.code != http.StatusOK && in.code != http.StatusServiceUnavailable) {
		t.Errorf("write in flight: %d %v, want 200 or 503", in.code, in.err)
	}
	if in.took > 5*time.Second {
		t.Errorf("write in flight answered after %v, want within 5 s", in.took)
	}

	back := time.Now()
	for i := 1; i < 3; i++ {
		c.hosts.Start(i)
	}
	var first200 time.Duration
	bustest.Eventually(t, 30*time.Second, func() error {
		r := c.call(http.MethodGet, cmPath+"/cm-1", "")
		if r.code != http.StatusOK {
			return fmt.Errorf("get after the servers returned: %d %v %s", r.code, r.err, r.body)
		}
		if first200 == 0 {
			first200 = time.Since(back)
		}
		for _, p := range []string{cmPath, "/replicasets/rs", "/pods", "/readyz"} {
			if r := c.call(http.MethodGet, p, ""); r.code != http.StatusOK {
				return fmt.Errorf("GET %s after the servers returned: %d %s", p, r.code, r.body)
			}
		}
		return nil
	})
	allBack := time.Since(back)
	t.Logf("quorum lost: first 503 after %v, every API path 503 after %v; servers back: first 200 after %v, every path 200 after %v",
		first503.Round(10*time.Millisecond), all503.Round(10*time.Millisecond), first200.Round(10*time.Millisecond), allBack.Round(10*time.Millisecond))
	if all503 > 5*time.Second {
		t.Errorf("every path refused only %v after the quorum was lost, want within ~3 s", all503)
	}

	// Nothing written before is lost; the in-flight write is all or nothing.
	for name, want := range values {
		r := c.call(http.MethodGet, cmPath+"/"+name, "")
		got, _, err := configMapValue(r.body)
		if r.code != http.StatusOK || err != nil {
			t.Fatalf("get %s after recovery: %d %v %s", name, r.code, err, r.body)
		}
		if name == "cm-0" && got == "inflight" {
			continue // applied wholly
		}
		if got != want {
			t.Errorf("%s after recovery: %q, want %q", name, got, want)
		}
	}
	if r := c.call(http.MethodGet, "/replicasets/rs", ""); r.code != http.StatusOK {
		t.Errorf("replicaset after recovery: %d %s", r.code, r.body)
	}
}

// A watch open when the quorum goes ends (the client re-lists and is
// told 503) instead of staying open and silent.
func TestQuorumLostEndsWatches(t *testing.T) {
	c := newClusterAPI(t)
	if r := c.call(http.MethodPost, cmPath, configMapJSON("w", "", "v")); r.code != http.StatusCreated {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	watches := map[string]string{"kube": cmPath + "?watch=true", "seed": "/pods?watch=true"}
	var wg sync.WaitGroup
	ended := make(chan string, len(watches))
	for name, path := range watches {
		resp, err := http.Get(c.url + path)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s watch: %v %v", name, err, resp)
		}
		wg.Go(func() {
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
			ended <- name
		})
	}
	t.Cleanup(wg.Wait)
	lost := time.Now()
	for i := 1; i < 3; i++ {
		c.hosts.Stop(i)
	}
	for range watches {
		select {
		case name := <-ended:
			t.Logf("%s watch ended %v after the quorum was lost", name, time.Since(lost).Round(10*time.Millisecond))
		case <-time.After(10 * time.Second):
			t.Fatal("a watch still open 10 s after the quorum was lost")
		}
	}
	if err := isQuorumStatus(c.call(http.MethodGet, cmPath+"?watch=true", ""), "configmaps"); err != nil {
		t.Errorf("re-watch without quorum: %v", err)
	}
}
