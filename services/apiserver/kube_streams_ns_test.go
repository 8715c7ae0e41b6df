package apiserver_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
)

// TestKubeStreamsNamespace: pods/log and pods/exec reach the pod only
// through the namespace it lives in; in another one, existing or not, it
// is a 404 NotFound Status, as kube-apiserver's lookup of the pod there.
func TestKubeStreamsNamespace(t *testing.T) {
	e := mustEnv(t)
	fakeExecKubelet(t, e, "n1")
	e.json("POST", "/pods", `{"name":"p","image":"alpine","nodeName":"n1"}`, http.StatusCreated, nil)
	for path, want := range map[string]struct {
		code int32
		msg  string
	}{
		"/api/v1/namespaces/kube-system/pods/p/log":                          {http.StatusNotFound, `pods "p" not found`},
		"/api/v1/namespaces/kube-public/pods/p/exec?command=cat&stdout=true": {http.StatusNotFound, `pods "p" not found`},
		"/api/v1/namespaces/nope/pods/p/log":                                 {http.StatusNotFound, `pods "p" not found`},
		"/api/v1/namespaces/nope/pods/p/exec?command=cat&stdout=true":        {http.StatusNotFound, `pods "p" not found`},
		// Where the pod is, the request reaches the exec handler.
		"/api/v1/namespaces/default/pods/p/exec?stdout=true": {http.StatusBadRequest, "command: Required value"},
	} {
		method := "GET"
		if strings.Contains(path, "/exec") {
			method = "POST"
		}
		req, _ := http.NewRequest(method, e.url+path, nil)
		req.Header.Set(httpstream.HeaderProtocolVersion, "v4.channel.k8s.io")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var st metav1.Status
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil || resp.StatusCode != int(want.code) || st.Kind != "Status" || st.Code != want.code || !strings.Contains(st.Message, want.msg) {
			t.Errorf("%s %s: %d %+v %v, want %d saying %q", method, path, resp.StatusCode, st, err, want.code, want.msg)
		}
		if want.code == http.StatusNotFound && st.Reason != metav1.StatusReasonNotFound {
			t.Errorf("%s %s: reason %q, want NotFound", method, path, st.Reason)
		}
	}
}
