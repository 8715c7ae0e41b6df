package cli

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// A key given twice, or in another case than the field's, is refused by
// `miniku apply -f` before anything is sent, naming the key: encoding/json
// would let the last duplicate win and "Name" fill name.
func TestApplyRefusesDuplicateAndCaseVariantKeys(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, `{"error":"unexpected"}`, http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	for _, tc := range []struct{ name, file, doc, want string }{
		{"JSON duplicate", "p.json", `{"name":"a","name":"b","image":"alpine"}`, `"name"`},
		{"JSON case variant", "p.json", `{"name":"a","Name":"b","image":"alpine"}`, `unknown field "Name"`},
		{"JSON case variant alone", "p.json", `{"Name":"a","image":"alpine"}`, `unknown field "Name"`},
		{"JSON nested case variant", "rs.json", `{"name":"r","selector":{"app":"r"},"template":{"Image":"alpine"}}`, `unknown field "template.Image"`},
		{"YAML duplicate", "p.yaml", "name: a\nname: b\nimage: alpine\n", `"name"`},
		{"YAML duplicate label", "p.yaml", "name: a\nimage: alpine\nlabels: {x: \"1\", x: \"2\"}\n", `"x"`},
		{"YAML case variant", "p.yaml", "name: a\nName: b\nimage: alpine\n", `unknown field "Name"`},
		{"k8s YAML duplicate", "k.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: alpine, image: busybox}]\n", `"image"`},
		{"k8s YAML case variant", "k.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p, Name: q}\nspec: {containers: [{name: c, image: alpine}]}\n", "metadata.Name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(dir, tc.file)
			if err := os.WriteFile(f, []byte(tc.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			err := cmdApply(context.Background(), []string{"--server", srv.URL, "--token", "x", "-f", f}, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("apply: error %v, want one naming %s", err, tc.want)
			}
			t.Log(err)
		})
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d requests sent for refused manifests", n)
	}
}
