package apiserver_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/apiserver"
)

const rsWeb = `{"name":"web","desiredCount":2,"selector":{"app":"web"},"template":{"image":"alpine:3.20","command":["sleep","60"]}}`

// events collects the events published on subject.
type events struct {
	mu  sync.Mutex
	got []string
}

func (ev *events) has(want string) error {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	for _, g := range ev.got {
		if g == want {
			return nil
		}
	}
	return fmt.Errorf("no event %q among %q", want, ev.got)
}

func subscribe(t *testing.T, c *bus.Conn, subject string) *events {
	t.Helper()
	ev := &events{}
	sub, err := c.Subscribe(subject, func(subj string, e schemas.Event) {
		ev.mu.Lock()
		ev.got = append(ev.got, fmt.Sprintf("%s %s %s", subj, e.Type, e.Name))
		ev.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	// Make sure the server has the subscription before anything publishes.
	if err := c.NATS().Flush(); err != nil {
		t.Fatal(err)
	}
	return ev
}

var hexUID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestPodRoundTrip(t *testing.T) {
	e := mustEnv(t)
	ev := subscribe(t, e.conn, "pod.>")

	// Server-owned fields sent by the client are ignored, not refused.
	var created schemas.Pod
	r := e.json("POST", "/pods", `{"name":"p1","image":"alpine","command":["true"],"labels":{"app":"x"},
		"nodeName":"node1","uid":"mine","status":"Bogus","containerId":"c","exitCode":3,"reason":"r","resourceVersion":77}`,
		http.StatusCreated, &created)
	if got := r.header.Get("Location"); got != "/pods/p1" {
		t.Errorf("Location %q", got)
	}
	if !hexUID.MatchString(created.UID) || created.Status != schemas.PodPending || created.ContainerID != "" ||
		created.ExitCode != nil || created.Reason != "" || created.ResourceVersion == 0 || created.ResourceVersion == 77 ||
		created.CreatedAt.IsZero() || created.CreatedAt.Location() != time.UTC || created.NodeName != "node1" {
		t.Fatalf("created pod: %+v", created)
	}

	var got schemas.Pod
	e.json("GET", "/pods/p1", "", http.StatusOK, &got)
	if got.UID != created.UID || got.ResourceVersion != created.ResourceVersion || !got.CreatedAt.Equal(created.CreatedAt) || got.Image != "alpine" {
		t.Fatalf("get: %+v, want %+v", got, created)
	}

	r = e.json("POST", "/pods", `{"name":"p1","image":"alpine"}`, http.StatusConflict, nil)
	if msg := r.errMsg(t); !strings.Contains(msg, `"p1" already exists`) {
		t.Errorf("duplicate: %q", msg)
	}

	var list []schemas.Pod
	e.json("GET", "/pods", "", http.StatusOK, &list)
	if len(list) != 1 || list[0].Name != "p1" {
		t.Fatalf("list: %+v", list)
	}

	r = e.json("DELETE", fmt.Sprintf("/pods/p1?resourceVersion=%d", created.ResourceVersion+5), "", http.StatusConflict, nil)
	if msg := r.errMsg(t); !strings.Contains(msg, "was modified") {
		t.Errorf("stale delete: %q", msg)
	}
	var deleted schemas.Pod
	e.json("DELETE", fmt.Sprintf("/pods/p1?resourceVersion=%d", created.ResourceVersion), "", http.StatusOK, &deleted)
	if deleted.UID != created.UID {
		t.Errorf("deleted: %+v", deleted)
	}
	r = e.json("GET", "/pods/p1", "", http.StatusNotFound, nil)
	if msg := r.errMsg(t); msg != `pod "p1" not found` {
		t.Errorf("get deleted: %q", msg)
	}
	e.json("DELETE", "/pods/p1", "", http.StatusNotFound, nil)
	r = e.json("GET", "/pods", "", http.StatusOK, nil)
	if string(r.body) != "[]\n" {
		t.Errorf("empty list: %q", r.body)
	}

	// A deleted name can be reused, and without a precondition delete
	// takes whatever version is current.
	e.json("POST", "/pods", `{"name":"p1","image":"alpine"}`, http.StatusCreated, nil)
	e.json("DELETE", "/pods/p1", "", http.StatusOK, nil)

	for _, want := range []string{"pod.created created p1", "pod.assigned.node1 assigned p1", "pod.deleted deleted p1"} {
		bustest.Eventually(t, 5*time.Second, func() error { return ev.has(want) })
	}
}

func TestReplicaSetRoundTrip(t *testing.T) {
	e := mustEnv(t)
	ev := subscribe(t, e.conn, "replicaset.>")
	ctx := context.Background()
	clock := time.Date(2030, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600))
	apiserver.SetClock(e.srv, func() time.Time { return clock })

	var rs schemas.ReplicaSet
	e.json("POST", "/replicasets", `{"name":"web","desiredCount":2,"currentCount":7,"readyCount":7,"uid":"u",
		"selector":{"app":"web"},"template":{"image":"alpine:3.20"}}`, http.StatusCreated, &rs)
	if rs.CurrentCount != 0 || rs.ReadyCount != 0 || !hexUID.MatchString(rs.UID) || rs.ResourceVersion == 0 ||
		!rs.CreatedAt.Equal(clock) || rs.CreatedAt.Location() != time.UTC {
		t.Fatalf("created: %+v", rs)
	}
	r := e.json("POST", "/replicasets", rsWeb, http.StatusConflict, nil)
	if msg := r.errMsg(t); msg != `replicaset "web" already exists` {
		t.Errorf("duplicate: %q", msg)
	}

	// The controller writes status behind the client's back.
	if _, err := e.conn.ReplicaSets.Mutate(ctx, "web", func(rs *schemas.ReplicaSet) error {
		rs.CurrentCount, rs.ReadyCount = 2, 1
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// PUT without resourceVersion: applied to the current version; status,
	// uid and createdAt are the server's whatever the body says.
	var upd schemas.ReplicaSet
	e.json("PUT", "/replicasets/web", `{"desiredCount":5,"currentCount":99,"readyCount":99,"uid":"hacked",
		"createdAt":"2000-01-01T00:00:00Z","selector":{"app":"web"},"template":{"image":"alpine:3.21"}}`, http.StatusOK, &upd)
	if upd.DesiredCount != 5 || upd.CurrentCount != 2 || upd.ReadyCount != 1 || upd.UID != rs.UID ||
		!upd.CreatedAt.Equal(rs.CreatedAt) || upd.Template.Image != "alpine:3.21" || upd.ResourceVersion <= rs.ResourceVersion {
		t.Fatalf("updated: %+v (created %+v)", upd, rs)
	}

	// A stale resourceVersion is refused and names both versions.
	r = e.json("PUT", "/replicasets/web", fmt.Sprintf(`{"name":"web","resourceVersion":%d,"desiredCount":9,"selector":{"app":"web"},"template":{"image":"alpine"}}`, rs.ResourceVersion), http.StatusConflict, nil)
	want := fmt.Sprintf(`replicaset "web" was modified (resourceVersion %d, you sent %d): re-read and retry`, upd.ResourceVersion, rs.ResourceVersion)
	if msg := r.errMsg(t); msg != want {
		t.Errorf("stale PUT:\n got %q\nwant %q", msg, want)
	}

	// The current resourceVersion succeeds; the selector can't change.
	var cas schemas.ReplicaSet
	e.json("PUT", "/replicasets/web", fmt.Sprintf(`{"name":"web","resourceVersion":%d,"desiredCount":3,"selector":{"app":"web"},"template":{"image":"alpine"}}`, upd.ResourceVersion), http.StatusOK, &cas)
	if cas.DesiredCount != 3 || cas.CurrentCount != 2 || cas.ResourceVersion <= upd.ResourceVersion {
		t.Fatalf("CAS update: %+v", cas)
	}
	for _, body := range []string{
		fmt.Sprintf(`{"resourceVersion":%d,"desiredCount":3,"selector":{"app":"db"},"template":{"image":"alpine"}}`, cas.ResourceVersion),
		`{"desiredCount":3,"selector":{"app":"web","tier":"x"},"template":{"image":"alpine"}}`,
	} {
		r = e.json("PUT", "/replicasets/web", body, http.StatusBadRequest, nil)
		if msg := r.errMsg(t); !strings.Contains(msg, "selector") {
			t.Errorf("selector change: %q", msg)
		}
	}

	var list []schemas.ReplicaSet
	e.json("GET", "/replicasets", "", http.StatusOK, &list)
	if len(list) != 1 || list[0].ResourceVersion != cas.ResourceVersion || list[0].DesiredCount != 3 {
		t.Fatalf("list: %+v", list)
	}

	e.json("PUT", "/replicasets/nope", `{"desiredCount":1,"selector":{"a":"b"},"template":{"image":"alpine"}}`, http.StatusNotFound, nil)
	e.json("PUT", "/replicasets/nope", `{"resourceVersion":3,"desiredCount":1,"selector":{"a":"b"},"template":{"image":"alpine"}}`, http.StatusNotFound, nil)

	e.json("DELETE", fmt.Sprintf("/replicasets/web?resourceVersion=%d", upd.ResourceVersion), "", http.StatusConflict, nil)
	var del schemas.ReplicaSet
	e.json("DELETE", "/replicasets/web", "", http.StatusOK, &del)
	if del.ResourceVersion != cas.ResourceVersion {
		t.Errorf("deleted %+v, want version %d", del, cas.ResourceVersion)
	}
	e.json("GET", "/replicasets/web", "", http.StatusNotFound, nil)
	e.json("DELETE", "/replicasets/web", "", http.StatusNotFound, nil)

	for _, want := range []string{
		"replicaset.created created web", "replicaset.updated updated web",
		"replicaset.scaled scaled web", "replicaset.deleted deleted web",
	} {
		bustest.Eventually(t, 5*time.Second, func() error { return ev.has(want) })
	}
}

// Two clients that read the same version and both PUT must not both win:
// exactly one gets 200 and the other 409, every time.
func TestConcurrentPutSameVersion(t *testing.T) {
	e := mustEnv(t)
	e.json("POST", "/replicasets", rsWeb, http.StatusCreated, nil)
	for i := range 20 {
		var cur schemas.ReplicaSet
		e.json("GET", "/replicasets/web", "", http.StatusOK, &cur)
		var (
			wg       sync.WaitGroup
			start    = make(chan struct{})
			statuses [2]int
			bodies   [2]schemas.ReplicaSet
		)
		for j := range 2 {
			wg.Go(func() {
				<-start
				body := fmt.Sprintf(`{"resourceVersion":%d,"desiredCount":%d,"selector":{"app":"web"},"template":{"image":"alpine"}}`,
					cur.ResourceVersion, 10*i+j)
				r := e.do("PUT", "/replicasets/web", "application/json", body)
				statuses[j] = r.status
				if r.status == http.StatusOK {
					_ = jsonUnmarshal(r.body, &bodies[j])
				}
			})
		}
		close(start)
		wg.Wait()
		ok, conflict := 0, 0
		winner := -1
		for j, s := range statuses {
			switch s {
			case http.StatusOK:
				ok++
				winner = j
			case http.StatusConflict:
				conflict++
			}
		}
		if ok != 1 || conflict != 1 {
			t.Fatalf("round %d: statuses %v, want one 200 and one 409", i, statuses)
		}
		var after schemas.ReplicaSet
		e.json("GET", "/replicasets/web", "", http.StatusOK, &after)
		if after.DesiredCount != 10*i+winner || after.ResourceVersion != bodies[winner].ResourceVersion {
			t.Fatalf("round %d: stored %+v, winner wrote %+v", i, after, bodies[winner])
		}
	}
}

// PUTs without a resourceVersion all succeed but must never undo a status
// write the controller made in between (the original MiniKu's lost update).
func TestPutWithoutVersionKeepsConcurrentStatus(t *testing.T) {
	e := mustEnv(t)
	e.json("POST", "/replicasets", rsWeb, http.StatusCreated, nil)
	const n = 30
	var wg sync.WaitGroup
	wg.Go(func() {
		for range n {
			if _, err := e.conn.ReplicaSets.Mutate(context.Background(), "web", func(rs *schemas.ReplicaSet) error {
				rs.CurrentCount++
				return nil
			}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for c := range 3 {
		wg.Go(func() {
			for i := range n / 3 {
				r := e.do("PUT", "/replicasets/web", "application/json",
					fmt.Sprintf(`{"desiredCount":%d,"selector":{"app":"web"},"template":{"image":"alpine"}}`, c*100+i))
				if r.status != http.StatusOK {
					t.Errorf("PUT: %d %s", r.status, r.body)
				}
			}
		})
	}
	wg.Wait()
	var rs schemas.ReplicaSet
	e.json("GET", "/replicasets/web", "", http.StatusOK, &rs)
	if rs.CurrentCount != n {
		t.Fatalf("currentCount %d, want %d: a PUT overwrote a status write", rs.CurrentCount, n)
	}
}

func TestListFilters(t *testing.T) {
	e := mustEnv(t)
	ctx := context.Background()
	for _, p := range []string{
		`{"name":"c","image":"alpine","labels":{"app":"web","tier":"front"},"nodeName":"n1"}`,
		`{"name":"a","image":"alpine","labels":{"app":"web","tier":"back"},"nodeName":"n2"}`,
		`{"name":"b","image":"alpine","labels":{"app":"db"}}`,
	} {
		e.json("POST", "/pods", p, http.StatusCreated, nil)
	}
	e.json("POST", "/replicasets", rsWeb, http.StatusCreated, nil)
	e.json("POST", "/replicasets", `{"name":"db","labels":{"team":"data"},"desiredCount":1,"selector":{"app":"db"},"template":{"image":"postgres:16"}}`, http.StatusCreated, nil)
	for _, n := range []string{"n2", "n1"} {
		node := &schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: n, Labels: map[string]string{"zone": n}}, Status: schemas.NodeReady}
		if err := e.conn.Nodes.Create(ctx, node); err != nil {
			t.Fatal(err)
		}
	}

	names := func(path string) string {
		t.Helper()
		var objs []schemas.ObjectMeta
		e.json("GET", path, "", http.StatusOK, &objs)
		var out []string
		for _, o := range objs {
			out = append(out, o.Name)
		}
		return strings.Join(out, ",")
	}
	for path, want := range map[string]string{
		"/pods":                                   "a,b,c",
		"/pods?labelSelector=app%3Dweb":           "a,c",
		"/pods?labelSelector=app=web,tier=front":  "c",
		"/pods?labelSelector=app==web,+tier=back": "a",
		"/pods?labelSelector=app=nope":            "",
		"/pods?labelSelector=":                    "a,b,c",
		"/pods?nodeName=n1":                       "c",
		"/pods?nodeName=":                         "b",
		"/pods?nodeName=n2&labelSelector=app=web": "a",
		"/replicasets":                            "db,web",
		"/replicasets?labelSelector=team=data":    "db",
		"/nodes":                                  "n1,n2",
		"/nodes?labelSelector=zone=n2":            "n2",
	} {
		if got := names(path); got != want {
			t.Errorf("GET %s: %q, want %q", path, got, want)
		}
	}
	var n schemas.Node
	e.json("GET", "/nodes/n1", "", http.StatusOK, &n)
	if n.Status != schemas.NodeReady || n.ResourceVersion == 0 {
		t.Errorf("node: %+v", n)
	}
	e.json("GET", "/nodes/n9", "", http.StatusNotFound, nil)
}

func TestHealthz(t *testing.T) {
	e := mustEnv(t)
	r := e.json("GET", "/healthz", "", http.StatusOK, nil)
	if string(r.body) != `{"status":"ok"}`+"\n" {
		t.Errorf("healthz body %q", r.body)
	}
	e.ns.Shutdown()
	bustest.Eventually(t, 10*time.Second, func() error {
		r := e.do("GET", "/healthz", "", "")
		if r.status != http.StatusServiceUnavailable {
			return fmt.Errorf("status %d: %s", r.status, r.body)
		}
		r.errMsg(t)
		return nil
	})
}

// With NATS gone, requests fail with 503 and a JSON error once the
// request's time is up, rather than hanging.
func TestStoreUnavailable(t *testing.T) {
	e := mustEnv(t)
	apiserver.SetRequestTimeout(e.srv, 300*time.Millisecond)
	e.ns.Shutdown()
	for _, req := range [][3]string{
		{"GET", "/pods", ""},
		{"GET", "/replicasets/web", ""},
		{"POST", "/pods", `{"name":"a","image":"alpine"}`},
		{"DELETE", "/pods/a", ""},
	} {
		r := e.do(req[0], req[1], "", req[2])
		if r.status != http.StatusServiceUnavailable {
			t.Errorf("%s %s: %d %s", req[0], req[1], r.status, r.body)
			continue
		}
		if msg := r.errMsg(t); !strings.Contains(msg, "unavailable") {
			t.Errorf("%s %s: %q", req[0], req[1], msg)
		}
	}
}
