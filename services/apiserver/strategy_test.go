package apiserver_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/miniku/miniku/schemas"
)

// The seed API runs the kinds strategies: rules only the Kubernetes view
// knew of (ports, metadata) hold here too, and server-owned metadata a
// client sends is reset.
func TestSeedRunsKindStrategies(t *testing.T) {
	e := mustEnv(t)
	r := e.json("POST", "/pods", `{"name":"p1","image":"alpine","ports":[{"containerPort":70000}]}`, http.StatusBadRequest, nil)
	if msg := r.errMsg(t); !strings.Contains(msg, "containerPort") {
		t.Errorf("bad port: %q", msg)
	}
	r = e.json("POST", "/replicasets", `{"name":"rs1","desiredCount":1,"selector":{"app":"x"},"template":{"image":"alpine"},
		"annotations":{"bad key!":"v"}}`, http.StatusBadRequest, nil)
	if msg := r.errMsg(t); !strings.Contains(msg, "annotations") {
		t.Errorf("bad annotation: %q", msg)
	}
	var p schemas.Pod
	e.json("POST", "/pods", `{"name":"p2","image":"alpine","generation":9,"ports":[{"containerPort":80}]}`, http.StatusCreated, &p)
	if p.Generation != 0 || len(p.Ports) != 1 {
		t.Errorf("created %+v", p)
	}
	var rs schemas.ReplicaSet
	e.json("POST", "/replicasets", `{"name":"rs2","desiredCount":1,"selector":{"app":"x"},"template":{"image":"alpine"}}`, http.StatusCreated, &rs)
	var upd schemas.ReplicaSet
	e.json("PUT", "/replicasets/rs2", `{"desiredCount":3,"selector":{"app":"x"},"template":{"image":"alpine"},"uid":"other","generation":7}`, http.StatusOK, &upd)
	if upd.UID != rs.UID || upd.Generation != 2 || upd.DesiredCount != 3 {
		t.Errorf("updated %+v (created %+v)", upd, rs)
	}
}
