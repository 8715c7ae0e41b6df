package apiserver_test

import (
	"context"
	"maps"
	"net/http"
	"strings"
	"testing"

	"github.com/miniku/miniku/schemas"
)

// Every refused request gets a 4xx with a JSON error naming the problem,
// and writes nothing at all.
func TestBadRequests(t *testing.T) {
	e := mustEnv(t)
	var web schemas.ReplicaSet
	e.json("POST", "/replicasets", rsWeb, http.StatusCreated, &web)
	before := e.lastSeqs()

	const json = "application/json"
	pod := func(fields string) string { return `{"name":"p","image":"alpine"` + fields + `}` }
	// rs's fields replace its desiredCount and template if they have one:
	// a key given twice is refused on its own.
	rs := func(fields string) string {
		count, template := `,"desiredCount":1`, `,"template":{"image":"alpine"}`
		if strings.Contains(fields, `"desiredCount":`) {
			count = ""
		}
		if strings.Contains(fields, `"template":`) {
			template = ""
		}
		return `{"name":"r","selector":{"app":"r"}` + count + template + fields + `}`
	}
	long := strings.Repeat("a", 64)
	huge := `{"name":"p","image":"alpine","command":["` + strings.Repeat("x", 2<<20) + `"]}`

	cases := []struct {
		name, method, path, ctype, body string
		status                          int
		want                            string // substring of the error
	}{
		{"truncated JSON", "POST", "/pods", json, `{"name":"p",`, 400, "truncated"},
		{"syntax error", "POST", "/pods", json, `{"name":"p",,}`, 400, "offset 13"},
		{"not an object", "POST", "/pods", json, `["p"]`, 400, "JSON object"},
		{"null body", "POST", "/pods", json, `null`, 400, "name: must not be empty"},
		{"name wrong type", "POST", "/pods", json, `{"name":5,"image":"alpine"}`, 400, "name: must be a string"},
		{"desiredCount wrong type", "POST", "/replicasets", json, rs(`,"desiredCount":"3"`), 400, "desiredCount"},
		{"nested wrong type", "POST", "/replicasets", json, `{"name":"r","selector":{"a":"b"},"template":{"image":7}}`, 400, "template.image"},
		{"time wrong format", "POST", "/replicasets", json, rs(`,"createdAt":"yesterday"`), 400, "createdAt"},
		{"labels wrong type", "POST", "/pods", json, pod(`,"labels":{"a":1}`), 400, "labels"},
		{"command wrong type", "POST", "/pods", json, pod(`,"command":"sleep 1"`), 400, "command"},
		{"unknown field", "POST", "/pods", json, pod(`,"imagePullPolicy":"Always"`), 400, `"imagePullPolicy"`},
		{"unknown nested field", "POST", "/replicasets", json, rs(`,"template":{"image":"alpine","replicas":2}`), 400, `"template.replicas"`},
		{"name with slash", "POST", "/pods", json, `{"name":"a/b","image":"alpine"}`, 400, "name"},
		{"path name with escaped slash", "GET", "/pods/a%2Fb", "", "", 400, "name"},
		{"path name ..", "GET", "/pods/..", "", "", 400, "name"},
		{"path name .", "DELETE", "/pods/.", "", "", 400, "name"},
		{"path name escaped ..", "DELETE", "/replicasets/%2E%2E", "", "", 400, "name"},
		{"path name with space", "GET", "/replicasets/a%20b", "", "", 400, "name"},
		{"name with space", "POST", "/pods", json, `{"name":"a b","image":"alpine"}`, 400, "name"},
		{"unicode name", "POST", "/pods", json, `{"name":"café","image":"alpine"}`, 400, "name"},
		{"unicode path name", "GET", "/nodes/caf%C3%A9", "", "", 400, "name"},
		{"uppercase name", "POST", "/replicasets", json, strings.Replace(rs(""), `"r"`, `"Web"`, 1), 400, "name"},
		{"uppercase path name", "PUT", "/replicasets/WEB", json, rs(""), 400, "name"},
		{"64-char name", "POST", "/pods", json, `{"name":"` + long + `","image":"alpine"}`, 400, "name: must be at most 63"},
		{"64-char path name", "GET", "/pods/" + long, "", "", 400, "at most 63"},
		{"replicaset name too long for pod names", "POST", "/replicasets", json, strings.Replace(rs(""), `"r"`, `"`+long[:55]+`"`, 1), 400, "at most 54"},
		{"empty path name", "GET", "/pods/", "", "", 400, "name: must not be empty"},
		{"negative desiredCount", "POST", "/replicasets", json, rs(`,"desiredCount":-1`), 400, "desiredCount"},
		{"huge desiredCount", "POST", "/replicasets", json, rs(`,"desiredCount":1000001`), 400, "desiredCount"},
		{"overflowing desiredCount", "POST", "/replicasets", json, rs(`,"desiredCount":1e30`), 400, "desiredCount"},
		{"empty command", "POST", "/pods", json, pod(`,"command":[]`), 400, "command"},
		{"empty command string", "POST", "/replicasets", json, rs(`,"template":{"image":"alpine","command":[""]}`), 400, "template.command"},
		{"missing image", "POST", "/pods", json, `{"name":"p"}`, 400, "image: must not be empty"},
		{"bad image ref", "POST", "/pods", json, `{"name":"p","image":"UPPER/../x:tag"}`, 400, "image"},
		{"empty selector", "POST", "/replicasets", json, `{"name":"r","selector":{},"template":{"image":"alpine"}}`, 400, "selector"},
		{"template labels outside selector", "POST", "/replicasets", json, rs(`,"template":{"image":"alpine","labels":{"app":"x"}}`), 400, "template.labels"},
		{"bad label key", "POST", "/pods", json, pod(`,"labels":{"-x":"y"}`), 400, "labels"},
		{"negative grace period", "POST", "/pods", json, pod(`,"terminationGracePeriodSeconds":-1`), 400, "terminationGracePeriodSeconds"},
		{"bad nodeName", "POST", "/pods", json, pod(`,"nodeName":"Node_1"`), 400, "nodeName"},
		{"several errors joined", "POST", "/pods", json, `{"name":"A","image":""}`, 400, "name: "},
		{"2 MiB body", "POST", "/pods", json, huge, 400, "request body larger than 1 MiB"},
		{"2 MiB PUT body", "PUT", "/replicasets/web", json, huge, 400, "request body larger than 1 MiB"},
		{"trailing garbage", "POST", "/pods", json, pod("") + ` x`, 400, "after the JSON object"},
		{"two objects", "POST", "/pods", json, pod("") + pod(""), 400, "after the JSON object"},
		{"empty body", "POST", "/pods", json, "", 400, "empty"},
		{"whitespace body", "POST", "/replicasets", json, "  \n", 400, "empty"},
		{"duplicate key", "POST", "/pods", json, `{"name":"a","name":"b","image":"alpine"}`, 400, `"name"`},
		{"duplicate nested key", "POST", "/replicasets", json, rs(`,"template":{"image":"alpine","image":"busybox"}`), 400, `template.image`},
		{"duplicate label key", "POST", "/pods", json, pod(`,"labels":{"a":"1","a":"2"}`), 400, `labels.a`},
		{"case-variant key", "POST", "/pods", json, `{"name":"a","Name":"b","image":"alpine"}`, 400, `"Name"`},
		{"case-variant key alone", "POST", "/pods", json, `{"Name":"a","image":"alpine"}`, 400, `"Name"`},
		{"case-variant nested key", "POST", "/replicasets", json, rs(`,"template":{"Image":"alpine"}`), 400, `template.Image`},
		{"YAML duplicate key", "POST", "/pods", "application/yaml", "name: a\nname: b\nimage: alpine\n", 400, `"name"`},
		{"YAML case-variant key", "POST", "/pods", "application/yaml", "name: a\nName: b\nimage: alpine\n", 400, `"Name"`},
		{"YAML unknown field", "POST", "/pods", "application/yaml", "name: a\nimage: alpine\nreplicas: 2\n", 400, `"replicas"`},
		{"YAML syntax error", "POST", "/pods", "application/yaml", "name: [a\n", 400, "YAML"},
		{"wrong content type", "POST", "/pods", "text/plain", pod(""), 415, "text/plain"},
		{"malformed content type", "POST", "/pods", "json/", pod(""), 415, "Content-Type"},
		{"wrong method on item", "PATCH", "/pods/p", json, pod(""), 405, "PATCH"},
		{"wrong method on collection", "DELETE", "/replicasets", "", "", 405, "DELETE"},
		{"PUT on pods", "PUT", "/pods/p", json, pod(""), 405, "PUT"},
		{"POST on nodes", "POST", "/nodes", json, `{"name":"n"}`, 405, "POST"},
		{"unknown path", "GET", "/deployments", "", "", 404, "/deployments"},
		{"too deep path", "GET", "/pods/a/b", "", "", 404, "/pods/a/b"},
		{"PUT name mismatch", "PUT", "/replicasets/web", json, `{"name":"other","selector":{"app":"web"},"template":{"image":"alpine"}}`, 400, "name"},
		{"PUT selector change", "PUT", "/replicasets/web", json, `{"selector":{"app":"db"},"template":{"image":"alpine"}}`, 400, "selector"},
		{"PUT invalid", "PUT", "/replicasets/web", json, `{"desiredCount":-5,"selector":{"app":"web"},"template":{"image":"alpine"}}`, 400, "desiredCount"},
		{"PUT stale version", "PUT", "/replicasets/web", json, `{"resourceVersion":1000,"selector":{"app":"web"},"template":{"image":"alpine"}}`, 409, "resourceVersion"},
		{"malformed labelSelector", "GET", "/pods?labelSelector=app", "", "", 400, "labelSelector"},
		{"inequality labelSelector", "GET", "/replicasets?labelSelector=app!=web", "", "", 400, "labelSelector"},
		{"bad labelSelector key", "GET", "/nodes?labelSelector=-a=b", "", "", 400, "labelSelector"},
		{"unknown query parameter", "GET", "/pods?labelselector=app=web", "", "", 400, "labelselector"},
		{"bad nodeName filter", "GET", "/pods?nodeName=A..", "", "", 400, "nodeName"},
		{"bad delete resourceVersion", "DELETE", "/replicasets/web?resourceVersion=abc", "", "", 400, "resourceVersion"},
		{"stale delete resourceVersion", "DELETE", "/replicasets/web?resourceVersion=1000", "", "", 409, "resourceVersion"},
		{"delete missing", "DELETE", "/pods/ghost", "", "", 404, `pod "ghost" not found`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, tc.ctype, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			msg := r.errMsg(t)
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not mention %q", msg, tc.want)
			}
			if tc.status == http.StatusMethodNotAllowed && r.header.Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
			t.Logf("%d %s", r.status, msg)
		})
	}

	if after := e.lastSeqs(); !maps.Equal(before, after) {
		t.Errorf("a refused request wrote to KV: stream sequences %v, then %v", before, after)
	}
	pods, err := e.conn.Pods.List(context.Background())
	if err != nil || len(pods) != 0 {
		t.Errorf("pods after bad requests: %v %v", pods, err)
	}
	got, err := e.conn.ReplicaSets.Get(context.Background(), "web")
	if err != nil || got.ResourceVersion != web.ResourceVersion {
		t.Errorf("replicaset after bad requests: %+v %v", got, err)
	}
}

// curl -d sends form-urlencoded; the body is JSON all the same.
func TestContentTypes(t *testing.T) {
	e := mustEnv(t)
	for i, ct := range []string{"", "application/json", "application/json; charset=utf-8", "application/x-www-form-urlencoded", "application/yaml"} {
		name := []string{"a", "b", "c", "d", "e"}[i]
		r := e.do("POST", "/pods", ct, `{"name":"`+name+`","image":"alpine"}`)
		if r.status != http.StatusCreated {
			t.Errorf("Content-Type %q: %d %s", ct, r.status, r.body)
		}
	}
}
