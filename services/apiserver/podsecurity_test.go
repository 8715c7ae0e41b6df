package apiserver_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/apiserver"
)

// envWithPodSecurity is mustEnv with Config.PodSecurity set.
func envWithPodSecurity(t *testing.T, level schemas.PodSecurityLevel) *env {
	t.Helper()
	ns := bustest.Server(t, "", "")
	log := bustest.Logger(t)
	conn := bustest.Conn(t, ns.ClientURL(), log)
	srv, err := apiserver.New(apiserver.Config{Addr: "127.0.0.1:0", Logger: log, PodSecurity: level}, conn)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &env{t: t, ns: ns, conn: conn, srv: srv, url: ts.URL}
}

const (
	hostNetPod = `{"name":"sniffer","image":"busybox","hostNetwork":true}`
	hostNetRS  = `{"name":"sniffers","desiredCount":1,"selector":{"app":"s"},"template":{"labels":{"app":"s"},"image":"busybox","hostNetwork":true}}`
	plainRS    = `{"name":"sniffers","desiredCount":1,"selector":{"app":"s"},"template":{"labels":{"app":"s"},"image":"busybox"}}`
)

// Pod Security "baseline" is the default: every API path that writes a pod
// spec refuses a host network namespace with Kubernetes' 403 and message,
// and writes nothing.
func TestHostNetworkForbiddenByDefault(t *testing.T) {
	e := envWithPodSecurity(t, "")
	before := e.lastSeqs()
	forbidden := func(method, path, body, want string) {
		t.Helper()
		r := e.do(method, path, "application/json", body)
		if r.status != 403 {
			t.Fatalf("%s %s: status %d, want 403: %s", method, path, r.status, r.body)
		}
		if msg := r.errMsg(t); msg != want {
			t.Fatalf("%s %s: %q, want %q", method, path, msg, want)
		}
	}
	forbidden("POST", "/pods", hostNetPod,
		`pod "sniffer" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)`)
	forbidden("POST", "/replicasets", hostNetRS,
		`replicaset "sniffers" is forbidden: violates PodSecurity "baseline:latest": host namespaces (template.hostNetwork=true)`)
	for bucket, seq := range e.lastSeqs() {
		if seq != before[bucket] {
			t.Fatalf("a refused write reached bucket %s", bucket)
		}
	}
	// A replicaset admitted without host namespaces cannot gain one by PUT,
	// with or without a resourceVersion.
	var rs schemas.ReplicaSet
	e.json("POST", "/replicasets", plainRS, 201, &rs)
	forbidden("PUT", "/replicasets/sniffers", hostNetRS,
		`replicaset "sniffers" is forbidden: violates PodSecurity "baseline:latest": host namespaces (template.hostNetwork=true)`)
	withVersion := strings.Replace(hostNetRS, `{"name":"sniffers",`, `{"name":"sniffers","resourceVersion":`+itoa(rs.ResourceVersion)+`,`, 1)
	forbidden("PUT", "/replicasets/sniffers", withVersion,
		`replicaset "sniffers" is forbidden: violates PodSecurity "baseline:latest": host namespaces (template.hostNetwork=true)`)
	var got schemas.ReplicaSet
	e.json("GET", "/replicasets/sniffers", "", 200, &got)
	if got.Template.HostNetwork || got.ResourceVersion != rs.ResourceVersion {
		t.Fatalf("refused PUT changed the replicaset: %+v", got)
	}
	// Without host namespaces, nothing is refused.
	e.json("POST", "/pods", `{"name":"ok","image":"busybox"}`, 201, nil)
	// Invalid input is still a 400 first, naming its field.
	if r := e.do("POST", "/pods", "application/json", `{"name":"Bad","image":"busybox","hostNetwork":true}`); r.status != 400 {
		t.Fatalf("invalid hostNetwork pod: %d %s, want 400", r.status, r.body)
	}
}

// --pod-security privileged is the explicit opt-in.
func TestHostNetworkAllowedWhenPrivileged(t *testing.T) {
	e := envWithPodSecurity(t, schemas.PodSecurityPrivileged)
	var p schemas.Pod
	e.json("POST", "/pods", hostNetPod, 201, &p)
	if !p.HostNetwork {
		t.Fatal("hostNetwork dropped")
	}
	e.json("POST", "/replicasets", plainRS, 201, nil)
	var rs schemas.ReplicaSet
	e.json("PUT", "/replicasets/sniffers", hostNetRS, 200, &rs)
	if !rs.Template.HostNetwork {
		t.Fatal("template.hostNetwork dropped")
	}
}

// A replicaset admitted under another level (here: written straight to the
// store) can still be scaled under baseline — its template is unchanged,
// as Kubernetes exempts such updates — but not changed.
func TestUnchangedPrivilegedTemplateCanBeScaled(t *testing.T) {
	e := envWithPodSecurity(t, schemas.PodSecurityBaseline)
	rs := schemas.ReplicaSet{ObjectMeta: schemas.ObjectMeta{Name: "sniffers"}, DesiredCount: 1, Selector: map[string]string{"app": "s"}}
	rs.Template.Labels = map[string]string{"app": "s"}
	rs.Template.Image = "busybox"
	rs.Template.HostNetwork = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.conn.ReplicaSets.Create(ctx, &rs); err != nil {
		t.Fatal(err)
	}
	var cur schemas.ReplicaSet
	e.json("GET", "/replicasets/sniffers", "", 200, &cur)
	cur.DesiredCount = 3
	e.json("PUT", "/replicasets/sniffers", mustJSON(t, cur), 200, &cur)
	if cur.DesiredCount != 3 {
		t.Fatalf("desiredCount %d after scaling", cur.DesiredCount)
	}
	cur.Template.Image = "busybox:1.36"
	if r := e.do("PUT", "/replicasets/sniffers", "application/json", mustJSON(t, cur)); r.status != 403 {
		t.Fatalf("changing a hostNetwork template under baseline: %d %s, want 403", r.status, r.body)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
