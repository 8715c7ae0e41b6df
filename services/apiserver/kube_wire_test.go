package apiserver_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func (e *kubeEnv) raw(t *testing.T, method, path, ct, accept, body string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(kctx(t), method, e.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, data
}

func wantStatus(t *testing.T, what string, code int, data []byte, wantCode int, wantReason metav1.StatusReason) metav1.Status {
	t.Helper()
	var st metav1.Status
	if err := json.Unmarshal(data, &st); err != nil || st.Kind != "Status" {
		t.Fatalf("%s: %d %s is not a Status", what, code, data)
	}
	if code != wantCode || st.Code != int32(wantCode) || st.Reason != wantReason || st.Status != metav1.StatusFailure {
		t.Errorf("%s: %d %s %q, want %d %s", what, code, st.Reason, st.Message, wantCode, wantReason)
	}
	return st
}

const podPath = "/api/v1/namespaces/default/pods"

func TestKubeTables(t *testing.T) {
	e := startKube(t)
	for _, n := range []string{"a", "b"} {
		if code, _, data := e.raw(t, "POST", podPath, "application/yaml", "", `
apiVersion: v1
kind: Pod
metadata: {name: `+n+`}
spec:
  containers: [{name: c, image: busybox, command: [sleep, "9"]}]
`); code != http.StatusCreated {
			t.Fatalf("create %s: %d %s", n, code, data)
		}
	}
	const asTable = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
	for _, tc := range []struct {
		path, include string
		rows          int
	}{{podPath, "", 2}, {podPath + "/a", "", 1}, {podPath, "None", 2}, {podPath, "Object", 2}} {
		path := tc.path
		if tc.include != "" {
			path += "?includeObject=" + tc.include
		}
		code, _, data := e.raw(t, "GET", path, "", asTable, "")
		if code != 200 {
			t.Fatalf("GET %s as Table: %d %s", path, code, data)
		}
		var tab metav1.Table
		if err := json.Unmarshal(data, &tab); err != nil || tab.Kind != "Table" {
			t.Fatalf("GET %s: not a Table: %s", path, data)
		}
		var cols []string
		for _, c := range tab.ColumnDefinitions {
			cols = append(cols, c.Name)
		}
		if !strings.HasPrefix(strings.Join(cols, " "), "Name Ready Status Restarts Age") || len(tab.Rows) != tc.rows {
			t.Errorf("GET %s: columns %v, %d rows", path, cols, len(tab.Rows))
		}
		for _, r := range tab.Rows {
			var obj map[string]any
			_ = json.Unmarshal(r.Object.Raw, &obj)
			switch tc.include {
			case "None":
				if len(r.Object.Raw) != 0 && string(r.Object.Raw) != "null" {
					t.Errorf("includeObject=None: row carries %s", r.Object.Raw)
				}
			case "Object":
				if obj["kind"] != "Pod" || obj["spec"] == nil {
					t.Errorf("includeObject=Object: row carries %s", r.Object.Raw)
				}
			default:
				if obj["kind"] != "PartialObjectMetadata" || obj["spec"] != nil {
					t.Errorf("includeObject=Metadata: row carries %s", r.Object.Raw)
				}
			}
		}
	}
	code, _, data := e.raw(t, "GET", podPath, "", "application/vnd.kubernetes.protobuf", "")
	wantStatus(t, "protobuf only", code, data, http.StatusNotAcceptable, metav1.StatusReasonNotAcceptable)
	code, _, data = e.raw(t, "GET", podPath, "", "application/vnd.kubernetes.protobuf,application/json", "")
	if code != 200 || !json.Valid(data) {
		t.Errorf("protobuf then json: %d", code)
	}
}

func TestKubeBadInput(t *testing.T) {
	e := startKube(t)
	good := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}`
	unknown := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"u"},"spec":{"bogus":1,"containers":[{"name":"c","image":"busybox"}]}}`

	code, _, data := e.raw(t, "POST", podPath+"?fieldValidation=Strict", "application/json", "", unknown)
	st := wantStatus(t, "strict unknown field", code, data, http.StatusBadRequest, metav1.StatusReasonBadRequest)
	if !strings.Contains(st.Message, `unknown field "spec.bogus"`) {
		t.Errorf("strict: message %q does not name spec.bogus", st.Message)
	}
	code, hdr, data := e.raw(t, "POST", podPath, "application/json", "", unknown)
	if code != http.StatusCreated || !strings.Contains(hdr.Get("Warning"), `unknown field \"spec.bogus\"`) {
		t.Errorf("default validation: %d, Warning %q: %s", code, hdr.Get("Warning"), data)
	}
	code, _, data = e.raw(t, "POST", podPath, "application/json", "", `{"metadata":`)
	wantStatus(t, "malformed JSON", code, data, http.StatusBadRequest, metav1.StatusReasonBadRequest)
	code, _, data = e.raw(t, "POST", podPath, "text/plain", "", good)
	wantStatus(t, "text body", code, data, http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType)
	code, _, data = e.raw(t, "POST", podPath, "application/json", "", strings.Replace(good, `"p"`, `"Not_A_Name"`, 1))
	st = wantStatus(t, "bad name", code, data, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid)
	if st.Details == nil || len(st.Details.Causes) == 0 || st.Details.Causes[0].Field != "metadata.name" {
		t.Errorf("bad name: causes %+v", st.Details)
	}
	code, _, data = e.raw(t, "POST", podPath, "application/json", "", `{"metadata":{"name":"big"},"x":"`+strings.Repeat("x", 4<<20)+`"}`)
	wantStatus(t, "body over the limit", code, data, http.StatusRequestEntityTooLarge, metav1.StatusReasonRequestEntityTooLarge)
	code, _, data = e.raw(t, "GET", podPath+"?watch=1&resourceVersion=abc", "", "", "")
	wantStatus(t, "bogus watch resourceVersion", code, data, http.StatusBadRequest, metav1.StatusReasonBadRequest)
	code, _, data = e.raw(t, "GET", podPath+"/nope", "", "", "")
	st = wantStatus(t, "missing pod", code, data, http.StatusNotFound, metav1.StatusReasonNotFound)
	if st.Details == nil || st.Details.Name != "nope" || st.Details.Kind != "pods" {
		t.Errorf("missing pod: details %+v", st.Details)
	}
	code, _, data = e.raw(t, "PUT", podPath, "application/json", "", good)
	wantStatus(t, "PUT on a collection", code, data, http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed)
	code, _, data = e.raw(t, "GET", "/api/v1/widgets", "", "", "")
	wantStatus(t, "unknown resource", code, data, http.StatusNotFound, metav1.StatusReasonNotFound)

	// Nothing of the refused requests was written.
	l, err := e.client.CoreV1().Pods("default").List(kctx(t), metav1.ListOptions{})
	if err != nil || len(l.Items) != 1 || l.Items[0].Name != "u" {
		t.Errorf("stored pods: %v, %v", names(l.Items), err)
	}
}

func TestKubePatch(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	pods := e.client.CoreV1().Pods("default")
	if _, err := pods.Create(ctx, kpod("p", map[string]string{"a": "1"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		typ   types.PatchType
		patch string
		label string
	}{
		{types.MergePatchType, `{"metadata":{"labels":{"m":"1"}}}`, "m"},
		{types.JSONPatchType, `[{"op":"add","path":"/metadata/labels/j","value":"1"}]`, "j"},
		{types.StrategicMergePatchType, `{"metadata":{"labels":{"s":"1"}}}`, "s"},
	} {
		p, err := pods.Patch(ctx, "p", tc.typ, []byte(tc.patch), metav1.PatchOptions{})
		if err != nil {
			t.Fatalf("%s: %v", tc.typ, err)
		}
		if p.Labels[tc.label] != "1" || p.Labels["a"] != "1" {
			t.Errorf("%s: labels %v", tc.typ, p.Labels)
		}
	}
	_, err := pods.Patch(ctx, "p", types.JSONPatchType, []byte(`[{"op":"replace","path":"/metadata/nothere/x","value":1}]`), metav1.PatchOptions{})
	if st := statusOf(t, err); st.Code != http.StatusUnprocessableEntity {
		t.Errorf("json patch that does not apply: %d %s", st.Code, st.Message)
	}
	_, err = pods.Patch(ctx, "p", types.MergePatchType, []byte(`{"metadata":{"resourceVersion":"1"}}`), metav1.PatchOptions{})
	if st := statusOf(t, err); st.Code != http.StatusConflict {
		t.Errorf("merge patch with a stale resourceVersion: %d %s", st.Code, st.Message)
	}
	// Server-side apply, in JSON (which is YAML): kube_apply_test.go has
	// the rest.
	p, err := pods.Patch(ctx, "p", types.ApplyPatchType, []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"ap":"1"}}}`), metav1.PatchOptions{FieldManager: "t"})
	if err != nil || p.Labels["ap"] != "1" || p.Labels["a"] != "1" {
		t.Errorf("apply patch: %v, labels %v", err, p.Labels)
	}
}
