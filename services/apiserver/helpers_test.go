package apiserver_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/apiserver"
)

type env struct {
	t    *testing.T
	ns   *server.Server
	conn *bus.Conn
	srv  *apiserver.Server
	url  string
}

// mustEnv starts a real NATS, a bus connection and an apiserver behind a
// real HTTP server: body limits and concurrency behave as in production.
func mustEnv(t *testing.T) *env { return newEnv(t, "", false) }

// mustEnvCached is mustEnv with the watch cache: the apiserver gets caches
// with a history, as miniku up gives it, running and synced, so that
// watches are served from memory.
func mustEnvCached(t *testing.T) *env { return newEnv(t, "", true) }

// newEnv is mustEnv with NATS storing in dir ("": a temporary one) and,
// if cached, the watch cache.
func newEnv(t *testing.T, dir string, cached bool) *env {
	t.Helper()
	ns := bustest.Server(t, "", dir)
	log := bustest.Logger(t)
	conn := bustest.Conn(t, ns.ClientURL(), log)
	cfg := apiserver.Config{Addr: "127.0.0.1:0", Logger: log}
	if cached {
		cfg.Pods, cfg.ReplicaSets, cfg.Nodes = runCaches(t, conn)
	}
	srv, err := apiserver.New(cfg, conn)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &env{t: t, ns: ns, conn: conn, srv: srv, url: ts.URL}
}

// runCaches runs history-keeping caches of every bucket until the test
// ends, and waits until they are synced.
func runCaches(t *testing.T, conn *bus.Conn) (*bus.Informer[schemas.Pod, *schemas.Pod],
	*bus.Informer[schemas.ReplicaSet, *schemas.ReplicaSet], *bus.Informer[schemas.Node, *schemas.Node]) {
	t.Helper()
	log := bustest.Logger(t)
	pods := bus.NewInformer(conn, conn.Pods, time.Minute, log).WithHistory(bus.DefaultHistory)
	rss := bus.NewInformer(conn, conn.ReplicaSets, time.Minute, log).WithHistory(bus.DefaultHistory)
	nodes := bus.NewInformer(conn, conn.Nodes, time.Minute, log).WithHistory(bus.DefaultHistory)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{pods.Run, rss.Run, nodes.Run} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = run(ctx) }()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, synced := range []func(context.Context) error{pods.WaitSynced, rss.WaitSynced, nodes.WaitSynced} {
		if err := synced(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return pods, rss, nodes
}

// forWatchSources runs a watch test against both sources of watches: KV
// watchers of their own, and the watch cache. Each must serve the watches
// of its run (the cache at least one).
func forWatchSources(t *testing.T, test func(t *testing.T, e *env, cached bool)) {
	for _, cached := range []bool{false, true} {
		name := map[bool]string{false: "bucket", true: "cache"}[cached]
		t.Run(name, func(t *testing.T) {
			e := mustEnv(t)
			if cached {
				e = mustEnvCached(t)
			}
			test(t, e, cached)
			// A cache more than cacheWait behind (a loaded machine) sends
			// a watch to the bucket; never all of them.
			fromCache, fromBucket, _ := apiserver.WatchStats(e.srv)
			if cached && fromCache == 0 {
				t.Errorf("with a watch cache: no watch from it, %d from the bucket", fromBucket)
			}
			if !cached && fromCache != 0 {
				t.Errorf("without a watch cache: %d watches from it", fromCache)
			}
		})
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) errMsg(t *testing.T) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error == "" {
		t.Fatalf("status %d: body is not a JSON error: %q (%v)", r.status, r.body, err)
	}
	return e.Error
}

// do sends a request; body "" sends none. contentType "" sends none.
func (e *env) do(method, path, contentType, body string) response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.url+path, rd)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		e.t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// json sends body as application/json and decodes a 2xx reply into out.
func (e *env) json(method, path, body string, wantStatus int, out any) response {
	e.t.Helper()
	r := e.do(method, path, "application/json", body)
	if r.status != wantStatus {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, wantStatus, r.body)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			e.t.Fatalf("%s %s: decode %q: %v", method, path, r.body, err)
		}
	}
	return r
}

// lastSeqs returns each bucket's stream sequence: any write at all,
// including a delete marker, moves it.
func (e *env) lastSeqs() map[string]uint64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := map[string]uint64{}
	for _, kv := range []jetstream.KeyValue{e.conn.Pods.KV(), e.conn.ReplicaSets.KV(), e.conn.Nodes.KV()} {
		st, err := kv.Status(ctx)
		if err != nil {
			e.t.Fatalf("status of %s: %v", kv.Bucket(), err)
		}
		out[kv.Bucket()] = st.(*jetstream.KeyValueBucketStatus).StreamInfo().State.LastSeq
	}
	return out
}

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
