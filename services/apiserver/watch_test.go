package apiserver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/apiserver"
)

type watchLine struct {
	Type   string `json:"type"`
	Object struct {
		Name            string            `json:"name"`
		ResourceVersion uint64            `json:"resourceVersion"`
		Labels          map[string]string `json:"labels"`
		DesiredCount    int               `json:"desiredCount"`
		Image           string            `json:"image"`
	} `json:"object"`
}

func (l watchLine) String() string {
	return fmt.Sprintf("%s %s@%d", l.Type, l.Object.Name, l.Object.ResourceVersion)
}

// watcher is an open watch: its lines arrive on lines, closed at EOF.
type watcher struct {
	t      *testing.T
	resp   *http.Response
	cancel context.CancelFunc
	lines  chan watchLine
	done   chan struct{}
}

func openWatch(t *testing.T, url string) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s: status %d", url, resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("Content-Type %q", ct)
	}
	w := &watcher{t: t, resp: resp, cancel: cancel, lines: make(chan watchLine, 1000), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer close(w.lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var l watchLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Errorf("watch line %q: %v", sc.Text(), err)
				return
			}
			w.lines <- l
		}
	}()
	t.Cleanup(w.close)
	return w
}

func (w *watcher) close() {
	w.cancel()
	w.resp.Body.Close()
	<-w.done
}

// next returns the next event that is not a BOOKMARK.
func (w *watcher) next() watchLine {
	w.t.Helper()
	for {
		select {
		case l, ok := <-w.lines:
			if !ok {
				w.t.Fatal("watch ended")
			}
			if l.Type == "BOOKMARK" {
				continue
			}
			return l
		case <-time.After(20 * time.Second):
			w.t.Fatal("no watch event within 20s")
		}
	}
}

func (w *watcher) expect(want ...string) []watchLine {
	w.t.Helper()
	var got []watchLine
	for _, s := range want {
		l := w.next()
		got = append(got, l)
		if g := l.Type + " " + l.Object.Name; g != s {
			w.t.Fatalf("event %s, want %s (so far %v)", l, s, got)
		}
	}
	return got
}

func TestWatchPods(t *testing.T) {
	forWatchSources(t, func(t *testing.T, e *env, cached bool) {
		e.json("POST", "/pods", `{"name":"b","image":"alpine","labels":{"app":"web"}}`, http.StatusCreated, nil)
		e.json("POST", "/pods", `{"name":"a","image":"alpine","labels":{"app":"db"}}`, http.StatusCreated, nil)
		e.json("DELETE", "/pods/b", "", http.StatusOK, nil)
		e.json("POST", "/pods", `{"name":"b","image":"alpine","labels":{"app":"web"}}`, http.StatusCreated, nil)

		all := openWatch(t, e.url+"/pods?watch=true")
		web := openWatch(t, e.url+"/pods?watch=1&labelSelector=app%3Dweb")
		// First an ADDED for every current object (in revision order), then changes.
		all.expect("ADDED a", "ADDED b")
		web.expect("ADDED b")

		e.json("POST", "/pods", `{"name":"c","image":"alpine","labels":{"app":"web"}}`, http.StatusCreated, nil)
		ctx := context.Background()
		if _, err := e.conn.Pods.Mutate(ctx, "a", func(p *schemas.Pod) error { p.Labels = map[string]string{"app": "web"}; return nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := e.conn.Pods.Mutate(ctx, "b", func(p *schemas.Pod) error { p.Labels = nil; return nil }); err != nil {
			t.Fatal(err)
		}
		var c schemas.Pod
		e.json("GET", "/pods/c", "", http.StatusOK, &c)
		e.json("DELETE", "/pods/c", "", http.StatusOK, nil)
		got := all.expect("ADDED c", "MODIFIED a", "MODIFIED b", "DELETED c")
		if got[3].Object.ResourceVersion <= c.ResourceVersion {
			t.Errorf("DELETED carries revision %d, not after the last write %d", got[3].Object.ResourceVersion, c.ResourceVersion)
		}
		for i := 1; i < len(got); i++ {
			if got[i].Object.ResourceVersion <= got[i-1].Object.ResourceVersion {
				t.Errorf("revisions not increasing: %v", got)
			}
		}
		// a enters the selection (ADDED), b leaves it (DELETED).
		web.expect("ADDED c", "ADDED a", "DELETED b", "DELETED c")

		// The other kinds watch the same way.
		rs := openWatch(t, e.url+"/replicasets?watch=true")
		e.json("POST", "/replicasets", rsWeb, http.StatusCreated, nil)
		if l := rs.expect("ADDED web")[0]; l.Object.DesiredCount != 2 {
			t.Errorf("replicaset event carries %+v", l.Object)
		}
		nodes := openWatch(t, e.url+"/nodes?watch=true")
		if err := e.conn.Nodes.Create(ctx, &schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: "n1"}}); err != nil {
			t.Fatal(err)
		}
		nodes.expect("ADDED n1")
		// watch=false is a plain list.
		var list []schemas.Pod
		e.json("GET", "/pods?watch=false", "", http.StatusOK, &list)
		if len(list) != 2 {
			t.Errorf("watch=false listed %d pods", len(list))
		}
	})
}

func TestWatchBadRequests(t *testing.T) {
	e := mustEnv(t)
	for path, want := range map[string]string{
		"/pods?watch=maybe":                         "watch",
		"/pods?watch=true&resourceVersion=x":        "resourceVersion",
		"/pods?watch=true&resourceVersion=-1":       "resourceVersion",
		"/pods?watch=true&timeoutSeconds=1e3":       "timeoutSeconds",
		"/pods?watch=true&timeoutSeconds=999999999": "timeoutSeconds",
		"/pods?watch=true&labelSelector=a!=b":       "labelSelector",
		"/pods?watch=true&limit=3":                  `"limit"`,
		"/nodes?watch=true&nodeName=x":              `"nodeName"`,
		"/pods?watch=true&nodeName=A_B":             "nodeName",
		"/pods?resourceVersion=3":                   `"resourceVersion"`,
	} {
		r := e.json("GET", path, "", http.StatusBadRequest, nil)
		if msg := r.errMsg(t); !strings.Contains(msg, want) {
			t.Errorf("GET %s: %q does not name %s", path, msg, want)
		}
	}
}

// A client that reconnects with the last resourceVersion it saw gets every
// later change in revision order, none twice: the latest state of each
// object changed while it was away (the bucket keeps one revision per key),
// deletions included.
func TestWatchResumeFromResourceVersion(t *testing.T) {
	forWatchSources(t, func(t *testing.T, e *env, cached bool) {
		ctx := context.Background()
		for i := range 5 {
			e.json("POST", "/pods", fmt.Sprintf(`{"name":"p%d","image":"alpine"}`, i), http.StatusCreated, nil)
		}
		w := openWatch(t, e.url+"/pods?watch=true")
		seen := w.expect("ADDED p0", "ADDED p1", "ADDED p2", "ADDED p3", "ADDED p4")
		last := seen[4].Object.ResourceVersion
		w.close()

		// While disconnected: create, modify (several times), delete, and
		// delete-and-recreate.
		want := map[string]string{} // name -> final image, "" = deleted
		for i := 5; i < 15; i++ {
			e.json("POST", "/pods", fmt.Sprintf(`{"name":"p%d","image":"alpine"}`, i), http.StatusCreated, nil)
			want[fmt.Sprintf("p%d", i)] = "alpine"
		}
		for round := range 3 {
			for _, n := range []string{"p1", "p6", "p9"} {
				img := fmt.Sprintf("busybox:%d", round)
				if _, err := e.conn.Pods.Mutate(ctx, n, func(p *schemas.Pod) error { p.Image = img; return nil }); err != nil {
					t.Fatal(err)
				}
				want[n] = img
			}
		}
		for _, n := range []string{"p2", "p7", "p9"} {
			e.json("DELETE", "/pods/"+n, "", http.StatusOK, nil)
			want[n] = ""
		}
		e.json("DELETE", "/pods/p3", "", http.StatusOK, nil)
		e.json("POST", "/pods", `{"name":"p3","image":"nginx"}`, http.StatusCreated, nil)
		want["p3"] = "nginx"

		cacheBefore, _, _ := apiserver.WatchStats(e.srv)
		w2 := openWatch(t, fmt.Sprintf("%s/pods?watch=true&resourceVersion=%d", e.url, last))
		got := map[string]watchLine{}
		prev := last
		// From the bucket: the latest state of each object that changed,
		// once. From the cache, which remembers them: every change, in
		// order (10 creates, 9 updates, 3 deletes, a delete and a create).
		// Read until every object is in its final state.
		final := func() bool {
			for name, img := range want {
				l, ok := got[name]
				if !ok || (img == "") != (l.Type == "DELETED") || (img != "" && l.Object.Image != img) {
					return false
				}
			}
			return true
		}
		events := 0
		for !final() {
			l := w2.next()
			events++
			if _, dup := got[l.Object.Name]; dup && !cached {
				t.Fatalf("%s delivered twice (had %s)", l, got[l.Object.Name])
			}
			if _, expected := want[l.Object.Name]; !expected {
				t.Fatalf("unexpected event %s: that pod did not change", l)
			}
			if l.Object.ResourceVersion <= prev {
				t.Fatalf("%s out of order: revision not after %d", l, prev)
			}
			prev = l.Object.ResourceVersion
			got[l.Object.Name] = l
		}
		cacheAfter, _, handovers := apiserver.WatchStats(e.srv)
		switch {
		case !cached && events != len(want):
			t.Errorf("%d events from the bucket, want %d", events, len(want))
		case cached && cacheAfter > cacheBefore && handovers == 0 && (events < len(want) || events > 24):
			// The cache's history holds the changes its KV watch saw: in
			// order, but a loaded machine may see only the last of a key's
			// quick rewrites (the bucket keeps one version a key; see
			// bus.Change), so fewer than all 24 but never fewer than one a pod.
			t.Errorf("%d events from the cache, want %d to 24", events, len(want))
		}
		for name, img := range want {
			l := got[name]
			switch {
			case img == "" && l.Type != "DELETED":
				t.Errorf("%s: got %s, want DELETED", name, l)
			case img != "" && (l.Type == "DELETED" || l.Object.Image != img):
				t.Errorf("%s: got %s image %q, want image %q", name, l, l.Object.Image, img)
			}
		}
		// And then live changes continue on the same stream, nothing else in between.
		e.json("POST", "/pods", `{"name":"z","image":"alpine"}`, http.StatusCreated, nil)
		if l := w2.expect("ADDED z")[0]; l.Object.ResourceVersion <= prev {
			t.Errorf("live event %s not after %d", l, prev)
		}
	})
}

func TestWatchBookmarkAndTimeout(t *testing.T) {
	forWatchSources(t, func(t *testing.T, e *env, cached bool) {
		apiserver.SetWatchHeartbeat(e.srv, 20*time.Millisecond)
		var p schemas.Pod
		e.json("POST", "/pods", `{"name":"a","image":"alpine"}`, http.StatusCreated, &p)
		w := openWatch(t, e.url+"/pods?watch=true&timeoutSeconds=2")
		var bookmarks int
		for l := range w.lines {
			switch l.Type {
			case "BOOKMARK":
				if l.Object.ResourceVersion != p.ResourceVersion {
					t.Errorf("bookmark at %d, want %d", l.Object.ResourceVersion, p.ResourceVersion)
				}
				bookmarks++
			case "ADDED":
			default:
				t.Errorf("unexpected %s", l)
			}
		}
		// The channel closed: timeoutSeconds ended the stream cleanly.
		if bookmarks == 0 {
			t.Error("no BOOKMARK on an idle watch")
		}
	})
}

// The watch is re-created after a NATS restart from the last revision it
// sent: the client sees the change made during the outage, once.
// Served from the cache, the watch is handed over to a KV watcher when the
// cache re-watches after the restart.
func TestWatchSurvivesNATSRestart(t *testing.T) {
	for _, cached := range []bool{false, true} {
		t.Run(map[bool]string{false: "bucket", true: "cache"}[cached], func(t *testing.T) { testWatchSurvivesNATSRestart(t, cached) })
	}
}

func testWatchSurvivesNATSRestart(t *testing.T, cached bool) {
	dir := t.TempDir()
	e := newEnv(t, dir, cached)
	ns, conn, srv := e.ns, e.conn, e.srv
	addr := ns.Addr().String()
	log := bustest.Logger(t)
	ctx := context.Background()
	if err := conn.Pods.Create(ctx, &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "a"}}); err != nil {
		t.Fatal(err)
	}
	w := openWatch(t, e.url+"/pods?watch=true")
	w.expect("ADDED a")
	evw := openWatch(t, e.url+"/events?watch=true")

	ns.Shutdown()
	ns.WaitForShutdown()
	ns2 := bustest.Server(t, addr, dir)
	c2 := bustest.Conn(t, ns2.ClientURL(), log)
	if err := c2.Pods.Create(ctx, &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "b"}}); err != nil {
		t.Fatal(err)
	}
	if err := c2.Pods.Delete(ctx, "a", 0); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	w.expect("ADDED b", "DELETED a")
	t.Logf("watch delivered the outage's changes %v after the server came back", time.Since(start))
	if err := c2.Pods.Create(ctx, &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "c"}}); err != nil {
		t.Fatal(err)
	}
	w.expect("ADDED c")
	// The events watch came back too.
	c2.Emit(schemas.ObjectEvent{Kind: schemas.KindPod, Name: "c", Reason: "AfterRestart"})
	evw.expect("ADDED c")
	if fromCache, _, handovers := apiserver.WatchStats(srv); cached && (fromCache != 1 || handovers != 1) {
		t.Errorf("%d watches from the cache, %d handed over to the bucket; want 1 and 1", fromCache, handovers)
	}
}

// watchGoroutines counts goroutines serving watches.
func watchGoroutines() int {
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	n := 0
	for g := range strings.SplitSeq(stacks, "\n\n") {
		if strings.Contains(g, "services/apiserver.serveWatch") || strings.Contains(g, "services/apiserver.pumpWatch") ||
			strings.Contains(g, "apiserver.(*Server).watchEvents(") || strings.Contains(g, "apiserver.eventIterator") ||
			strings.Contains(g, "apiserver.(*Server).podLogs(") {
			n++
		}
	}
	return n
}

// A client that goes away ends its watch: no goroutine and no NATS
// subscription is left behind.
func TestWatchEndsWhenClientLeaves(t *testing.T) {
	forWatchSources(t, func(t *testing.T, e *env, cached bool) {
		// The first Emit subscribes for publish acks; that one stays.
		e.conn.Emit(schemas.ObjectEvent{Kind: schemas.KindPod, Name: "warm-up", Reason: "Test"})
		bustest.Eventually(t, 10*time.Second, func() error {
			var evs []schemas.ObjectEvent
			if e.json("GET", "/events", "", http.StatusOK, &evs); len(evs) != 1 {
				return fmt.Errorf("%d events stored", len(evs))
			}
			return nil
		})
		subsBefore := e.conn.NATS().NumSubscriptions()
		var ws []*watcher
		for range 5 {
			w := openWatch(t, e.url+"/pods?watch=true")
			ws = append(ws, w)
		}
		evw := openWatch(t, e.url+"/events?watch=true")
		e.json("POST", "/pods", `{"name":"a","image":"alpine"}`, http.StatusCreated, nil)
		for _, w := range ws {
			w.expect("ADDED a")
		}
		e.conn.Emit(schemas.ObjectEvent{Kind: schemas.KindPod, Name: "a", Reason: "Test"})
		evw.expect("ADDED a")
		ws = append(ws, evw)
		if n := watchGoroutines(); n < 6 {
			t.Fatalf("%d watch goroutines with 6 watches open", n)
		}
		for _, w := range ws {
			w.close()
		}
		bustest.Eventually(t, 10*time.Second, func() error {
			if n := watchGoroutines(); n != 0 {
				return fmt.Errorf("%d watch goroutines left", n)
			}
			if n := e.conn.NATS().NumSubscriptions(); n > subsBefore {
				return fmt.Errorf("%d NATS subscriptions, %d before the watches", n, subsBefore)
			}
			return nil
		})
	})
}

// Stopping the server ends open watches at once instead of waiting out
// the shutdown grace period, and Run returns cleanly.
func TestWatchEndsOnShutdown(t *testing.T) {
	ns := bustest.Server(t, "", "")
	log := bustest.Logger(t)
	conn := bustest.Conn(t, ns.ClientURL(), log)
	srv, err := apiserver.New(apiserver.Config{Addr: "127.0.0.1:0", Logger: log}, conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	<-srv.Listening()
	w := openWatch(t, "http://"+srv.Addr()+"/pods?watch=true")
	if err := conn.Pods.Create(ctx, &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "a"}}); err != nil {
		t.Fatal(err)
	}
	w.expect("ADDED a")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
	for range w.lines {
	}
	noLeaks(t)
}

// A client resuming a filtered watch is told about objects that left its
// selection while it was away, and about nothing it could not have had.
func TestWatchResumeWithSelector(t *testing.T) {
	forWatchSources(t, func(t *testing.T, e *env, cached bool) {
		ctx := context.Background()
		for _, p := range []string{
			`{"name":"web1","image":"alpine","labels":{"app":"web"}}`,
			`{"name":"web2","image":"alpine","labels":{"app":"web"}}`,
			`{"name":"web3","image":"alpine","labels":{"app":"web"}}`,
			`{"name":"db1","image":"alpine","labels":{"app":"db"}}`,
		} {
			e.json("POST", "/pods", p, http.StatusCreated, nil)
		}
		w := openWatch(t, e.url+"/pods?watch=true&labelSelector=app=web")
		last := w.expect("ADDED web1", "ADDED web2", "ADDED web3")[2].Object.ResourceVersion
		w.close()

		relabel := func(name, app string) {
			if _, err := e.conn.Pods.Mutate(ctx, name, func(p *schemas.Pod) error { p.Labels = map[string]string{"app": app}; return nil }); err != nil {
				t.Fatal(err)
			}
		}
		relabel("web1", "db") // leaves the selection
		relabel("db1", "web") // enters it
		e.json("DELETE", "/pods/web2", "", http.StatusOK, nil)
		// web3 does not change.
		e.json("POST", "/pods", `{"name":"db2","image":"alpine","labels":{"app":"db"}}`, http.StatusCreated, nil)
		e.json("POST", "/pods", `{"name":"web4","image":"alpine","labels":{"app":"web"}}`, http.StatusCreated, nil)

		cacheBefore, _, _ := apiserver.WatchStats(e.srv)
		w2 := openWatch(t, fmt.Sprintf("%s/pods?watch=true&labelSelector=app=web&resourceVersion=%d", e.url, last))
		cacheAfter, _, _ := apiserver.WatchStats(e.srv)
		// What changed after the client's revision is ambiguous: the bucket
		// no longer has what it was before. db1 may or may not be new to the
		// client (MODIFIED); db2 may have been web before (DELETED: harmless
		// if the client never had it).
		if cacheAfter > cacheBefore {
			// The cache remembers what each object was: no ambiguity.
			w2.expect("DELETED web1", "ADDED db1", "DELETED web2", "ADDED web4")
		} else {
			w2.expect("DELETED web1", "MODIFIED db1", "DELETED web2", "DELETED db2", "MODIFIED web4")
		}
		// From here on the watch knows exactly what the client has.
		e.json("POST", "/pods", `{"name":"db3","image":"alpine","labels":{"app":"db"}}`, http.StatusCreated, nil)
		e.json("POST", "/pods", `{"name":"web5","image":"alpine","labels":{"app":"web"}}`, http.StatusCreated, nil)
		relabel("db2", "web")
		w2.expect("ADDED web5", "ADDED db2")
	})
}
