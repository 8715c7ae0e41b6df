package apiserver_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/miniku/miniku/schemas"
)

func TestDeletePodGracefully(t *testing.T) {
	e := mustEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.conn.Nodes.Create(ctx, &schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: "node1"}, Status: schemas.NodeReady}); err != nil {
		t.Fatal(err)
	}
	// deletionTimestamp sent on create is ignored like other server-owned fields.
	e.json("POST", "/pods", `{"name":"p","image":"alpine","nodeName":"node1","terminationGracePeriodSeconds":20,
		"deletionTimestamp":"2020-01-01T00:00:00Z","deletionGracePeriodSeconds":1,"restartCount":4}`, http.StatusCreated, nil)
	var p schemas.Pod
	e.json("GET", "/pods/p", "", http.StatusOK, &p)
	if p.DeletionTimestamp != nil || p.DeletionGracePeriodSeconds != nil || p.RestartCount != 0 {
		t.Fatalf("created pod carries server-owned fields: %+v", p)
	}

	// A bound pod on an existing node is only marked Terminating.
	var marked schemas.Pod
	r := e.json("DELETE", "/pods/p", "", http.StatusOK, &marked)
	if marked.DeletionTimestamp == nil || marked.DeletionGracePeriodSeconds == nil || *marked.DeletionGracePeriodSeconds != 20 {
		t.Fatalf("DELETE returned %+v", marked)
	}
	if !strings.Contains(string(r.body), `"deletionTimestamp"`) {
		t.Errorf("body lacks deletionTimestamp: %s", r.body)
	}
	var got schemas.Pod
	e.json("GET", "/pods/p", "", http.StatusOK, &got)
	if got.DeletionTimestamp == nil || got.ResourceVersion != marked.ResourceVersion {
		t.Fatalf("GET after DELETE: %+v", got)
	}

	// Deleting again is idempotent and never lengthens the grace...
	var again schemas.Pod
	e.json("DELETE", "/pods/p?gracePeriodSeconds=60", "", http.StatusOK, &again)
	if again.ResourceVersion != marked.ResourceVersion || *again.DeletionGracePeriodSeconds != 20 {
		t.Fatalf("second DELETE changed the pod: %+v", again)
	}
	// ...but may shorten it, keeping the original timestamp.
	e.json("DELETE", "/pods/p?gracePeriodSeconds=5", "", http.StatusOK, &again)
	if *again.DeletionGracePeriodSeconds != 5 || !again.DeletionTimestamp.Equal(*marked.DeletionTimestamp) {
		t.Fatalf("shortened: %+v", again)
	}
	// A stale precondition is a 409 and writes nothing.
	e.json("DELETE", "/pods/p?resourceVersion=1", "", http.StatusConflict, nil)

	// Grace 0 deletes at once (kubectl delete --force --grace-period=0).
	e.json("DELETE", "/pods/p?gracePeriodSeconds=0", "", http.StatusOK, nil)
	e.json("GET", "/pods/p", "", http.StatusNotFound, nil)

	// Unbound pods and pods of nodes that do not exist go at once.
	for _, body := range []string{`{"name":"u","image":"alpine"}`, `{"name":"u","image":"alpine","nodeName":"ghost"}`} {
		e.json("POST", "/pods", body, http.StatusCreated, nil)
		var del schemas.Pod
		e.json("DELETE", "/pods/u", "", http.StatusOK, &del)
		if del.DeletionTimestamp != nil {
			t.Errorf("deleted at once but returned deletionTimestamp: %+v", del)
		}
		e.json("GET", "/pods/u", "", http.StatusNotFound, nil)
	}

	// Bad grace periods are refused, naming the parameter.
	e.json("POST", "/pods", `{"name":"q","image":"alpine","nodeName":"node1"}`, http.StatusCreated, nil)
	for _, q := range []string{"-1", "x", "86401", ""} {
		r := e.json("DELETE", "/pods/q?gracePeriodSeconds="+q, "", http.StatusBadRequest, nil)
		if msg := r.errMsg(t); !strings.Contains(msg, "gracePeriodSeconds") {
			t.Errorf("gracePeriodSeconds=%s: %q", q, msg)
		}
	}
	var q schemas.Pod
	e.json("GET", "/pods/q", "", http.StatusOK, &q)
	if q.DeletionTimestamp != nil {
		t.Fatalf("a refused DELETE marked the pod: %+v", q)
	}
}
