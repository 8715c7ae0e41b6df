package openapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/miniku/miniku/services/apiserver/kube/openapi"
)

// kubectl is the real consumer of these documents: these tests run it
// against the handler. Discovery (/version, /api, /apis) is a fixture
// here — kubectl maps "pod" to its kind before it reads any document — and
// nothing else is served, so a request for an object fails the test. The
// e2e test against `miniku up` covers the same with the real REST handler.

func kubectlServer(t *testing.T, fieldValidation bool) string {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed")
	}
	h, err := openapi.New(openapi.Config{Resources: served(), FieldValidation: fieldValidation, Version: "v1.33.0"})
	if err != nil {
		t.Fatal(err)
	}
	var resources []metav1.APIResource
	var appsResources []metav1.APIResource
	for _, r := range served() {
		ar := metav1.APIResource{Name: r.Resource, Namespaced: r.Namespaced, Kind: r.GVK.Kind, Verbs: r.Verbs,
			SingularName: strings.ToLower(r.GVK.Kind)}
		if r.GVK.Group == "apps" {
			appsResources = append(appsResources, ar)
		} else {
			resources = append(resources, ar)
		}
	}
	writeJSON := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux := http.NewServeMux()
	mux.Handle("/openapi/", h)
	mux.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]string{"major": "1", "minor": "33", "gitVersion": "v1.33.0"})
	})
	mux.HandleFunc("/api", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"},
			ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host}}})
	})
	mux.HandleFunc("/api/v1", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: "v1", APIResources: resources})
	})
	mux.HandleFunc("/apis", func(w http.ResponseWriter, r *http.Request) {
		apps := metav1.GroupVersionForDiscovery{GroupVersion: "apps/v1", Version: "v1"}
		writeJSON(w, metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"},
			Groups: []metav1.APIGroup{{Name: "apps", Versions: []metav1.GroupVersionForDiscovery{apps}, PreferredVersion: apps}}})
	})
	mux.HandleFunc("/apis/apps/v1", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: "apps/v1", APIResources: appsResources})
	})
	// apply reads the object first to choose create or patch: there is none.
	mux.HandleFunc("GET /api/v1/namespaces/default/pods/typo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure,
			Reason: metav1.StatusReasonNotFound, Code: http.StatusNotFound, Message: `pods "typo" not found`})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("kubectl asked for %s %s, which this test does not serve", r.Method, r.URL)
		http.NotFound(w, r)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	cfg := "apiVersion: v1\nkind: Config\nclusters: [{name: t, cluster: {server: " + srv.URL + "}}]\n" +
		"users: [{name: t, user: {}}]\ncontexts: [{name: t, context: {cluster: t, user: t}}]\ncurrent-context: t\n"
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kc)
	t.Setenv("HOME", dir) // its discovery cache goes under the temp dir, not the user's
	return kubectl
}

func runKubectl(t *testing.T, kubectl string, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectl, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	t.Logf("kubectl %s:\n%s", strings.Join(args, " "), out.String())
	return out.String(), err
}

func TestKubectlExplain(t *testing.T) {
	kubectl := kubectlServer(t, false)
	out, err := runKubectl(t, kubectl, "", "explain", "pod.spec")
	if err != nil {
		t.Fatalf("kubectl explain pod.spec: %v\n%s", err, out)
	}
	for _, want := range []string{"KIND:       Pod", "FIELD: spec <PodSpec>", "containers\t<[]Container> -required-", "List of containers belonging to the pod"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl explain pod.spec lacks %q:\n%s", want, out)
		}
	}
	out, err = runKubectl(t, kubectl, "", "explain", "replicaset.spec.replicas")
	if err != nil || !strings.Contains(out, "GROUP:      apps") || !strings.Contains(out, "FIELD: replicas <integer>") {
		t.Errorf("kubectl explain replicaset.spec.replicas: %v\n%s", err, out)
	}
}

const typoPod = `apiVersion: v1
kind: Pod
metadata:
  name: typo
spec:
  containers:
  - name: c
    image: busybox
    imagePullPolicyy: Always
`

func TestKubectlValidatesAgainstV2WhenServerDoesNot(t *testing.T) {
	kubectl := kubectlServer(t, false)
	// --dry-run=client: the fixture has no pods to create; validation runs
	// first either way.
	out, err := runKubectl(t, kubectl, typoPod, "apply", "--validate=strict", "--dry-run=client", "-f", "-")
	if err == nil {
		t.Fatalf("kubectl apply of a typo'd field passed:\n%s", out)
	}
	if !strings.Contains(out, `unknown field "imagePullPolicyy"`) || !strings.Contains(out, "spec.containers[0]") {
		t.Errorf("kubectl apply: want an unknown-field error naming spec.containers[0].imagePullPolicyy, got:\n%s", out)
	}
	good := strings.Replace(typoPod, "imagePullPolicyy", "imagePullPolicy", 1)
	if out, err := runKubectl(t, kubectl, good, "apply", "--validate=strict", "--dry-run=client", "-f", "-"); err != nil || !strings.Contains(out, "pod/typo created (dry run)") {
		t.Errorf("kubectl apply of a valid pod: %v\n%s", err, out)
	}
}

// With fieldValidation advertised kubectl trusts the server (it sends
// ?fieldValidation=Strict with the write) and checks nothing itself: a
// client-side dry run of the typo passes. This is why Config.FieldValidation
// must stay false until the REST handler refuses unknown fields.
func TestKubectlLeavesValidationToServerWhenAdvertised(t *testing.T) {
	kubectl := kubectlServer(t, true)
	out, err := runKubectl(t, kubectl, typoPod, "apply", "--validate=strict", "--dry-run=client", "-f", "-")
	if err != nil || !strings.Contains(out, "pod/typo created (dry run)") {
		t.Errorf("kubectl apply with server-side field validation advertised: %v\n%s", err, out)
	}
}
