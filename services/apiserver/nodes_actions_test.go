package apiserver_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/apiserver"
)

func TestCordonUncordonDrain(t *testing.T) {
	e := mustEnv(t)
	ctx := context.Background()
	for _, name := range []string{"n1", "n2"} {
		if err := e.conn.Nodes.Create(ctx, &schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: name}, Status: schemas.NodeReady, LastHeartbeat: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []struct{ name, node string }{{"a", "n1"}, {"b", "n1"}, {"c", "n2"}, {"d", ""}} {
		pod := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: p.name}, NodeName: p.node, Status: schemas.PodRunning,
			PodSpec: schemas.PodSpec{Image: "busybox", Command: []string{"true"}}}
		if err := e.conn.Pods.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
	}

	var n schemas.Node
	e.json("POST", "/nodes/n1/cordon", "", http.StatusOK, &n)
	if !n.Unschedulable {
		t.Fatalf("cordon: %+v", n)
	}
	// Idempotent: a second cordon writes nothing.
	before := e.lastSeqs()
	e.json("POST", "/nodes/n1/cordon", "", http.StatusOK, &n)
	if after := e.lastSeqs(); after["nodes"] != before["nodes"] {
		t.Fatal("second cordon wrote the node again")
	}
	var un schemas.Node
	e.json("POST", "/nodes/n1/uncordon", "", http.StatusOK, &un)
	if un.Unschedulable {
		t.Fatalf("uncordon: %+v", un)
	}

	var res apiserver.DrainResult
	e.json("POST", "/nodes/n1/drain", "", http.StatusOK, &res)
	if res.Node != "n1" || strings.Join(res.Evicted, ",") != "a,b" {
		t.Fatalf("drain: %+v, want a and b evicted", res)
	}
	got, err := e.conn.Nodes.Get(ctx, "n1")
	if err != nil || !got.Unschedulable {
		t.Fatalf("drained node not cordoned: %+v %v", got, err)
	}
	// Deleted through DELETE /pods' path: gone from the API (or Terminating).
	for _, name := range []string{"a", "b"} {
		r := e.do("GET", "/pods/"+name, "", "")
		if r.status == http.StatusOK && !strings.Contains(string(r.body), "deletionTimestamp") {
			t.Fatalf("pod %s still there after drain: %s", name, r.body)
		}
	}
	for _, name := range []string{"c", "d"} {
		e.json("GET", "/pods/"+name, "", http.StatusOK, nil)
	}

	for _, c := range []struct {
		method, path string
		status       int
		msg          string
	}{
		{"POST", "/nodes/nope/cordon", 404, `node "nope" not found`},
		{"POST", "/nodes/nope/drain", 404, `node "nope" not found`},
		{"POST", "/nodes/nope/uncordon", 404, `node "nope" not found`},
		{"POST", "/nodes/n1/explode", 404, "no such path"},
		{"GET", "/nodes/n1/cordon", 405, "not allowed"},
		{"POST", "/nodes/N_1/cordon", 400, "node"},
		{"POST", "/nodes/n1/cordon?force=1", 400, "force"},
	} {
		r := e.do(c.method, c.path, "", "")
		if r.status != c.status || !strings.Contains(r.errMsg(t), c.msg) {
			t.Errorf("%s %s: %d %s, want %d containing %q", c.method, c.path, r.status, r.body, c.status, c.msg)
		}
	}
}
