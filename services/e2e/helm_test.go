package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// helmVersion is the Helm .ci/run and make deps install.
const helmVersion = "v4.3.2"

// helmBin finds helm: on PATH, else where `go install` puts it. Where it
// is missing the test skips, except under CI (CI set, as .ci/run does),
// where the Helm test must run.
func helmBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	var dirs []string
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) == 2 {
			if lines[0] != "" {
				dirs = append(dirs, lines[0])
			}
			dirs = append(dirs, filepath.Join(lines[1], "bin"))
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, "helm")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("helm is not installed (looked in PATH and %v): go install helm.sh/helm/v4/cmd/helm@%s (make deps does)", dirs, helmVersion)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// helm runs the machine's helm against a cluster, its cache, config and
// data in the test's directories.
type helm struct {
	bin, config, home string
}

func (h helm) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+h.config, "HOME="+h.home,
		"HELM_CACHE_HOME="+filepath.Join(h.home, "cache"), "HELM_CONFIG_HOME="+filepath.Join(h.home, "config"),
		"HELM_DATA_HOME="+filepath.Join(h.home, "data"))
	out, err := cmd.CombinedOutput()
	logged := string(out)
	if len(logged) > 2000 {
		logged = logged[:2000] + "\n[...]"
	}
	t.Logf("helm %s: err=%v\n%s", strings.Join(args, " "), err, logged)
	return string(out), err
}

func (h helm) must(t *testing.T, want string, args ...string) string {
	t.Helper()
	out, err := h.run(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if !regexp.MustCompile(want).MatchString(out) {
		t.Fatalf("helm %s: output does not match %q:\n%s", strings.Join(args, " "), want, out)
	}
	return out
}

// helmChart is written by the test: a ConfigMap, a Secret, a
// ServiceAccount and a ReplicaSet whose pods carry the ConfigMap's value
// and checksum, so changing a value rolls into the objects.
var helmChart = map[string]string{
	"Chart.yaml": `apiVersion: v2
name: hello
description: MiniKu's Helm test chart
version: 0.1.0
appVersion: "1.0"
`,
	"values.yaml": `replicas: 1
color: red
password: hunter2
image: alpine
`,
	"templates/configmap.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
  labels:
    app.kubernetes.io/instance: {{ .Release.Name }}
data:
  color: {{ .Values.color | quote }}
`,
	"templates/secret.yaml": `apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-secret
  labels:
    app.kubernetes.io/instance: {{ .Release.Name }}
type: Opaque
stringData:
  password: {{ .Values.password | quote }}
`,
	"templates/serviceaccount.yaml": `apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .Release.Name }}-sa
  labels:
    app.kubernetes.io/instance: {{ .Release.Name }}
`,
	"templates/replicaset.yaml": `apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: {{ .Release.Name }}-web
  labels:
    app.kubernetes.io/instance: {{ .Release.Name }}
    color: {{ .Values.color }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels:
      app.kubernetes.io/instance: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app.kubernetes.io/instance: {{ .Release.Name }}
        color: {{ .Values.color }}
      annotations:
        checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    spec:
      containers:
      - name: web
        image: {{ .Values.image }}
        command: ["/bin/sh", "-c", "while true; do sleep 1; done"]
`,
}

func writeChart(t *testing.T, dir string) string {
	t.Helper()
	root := filepath.Join(dir, "hello")
	for name, content := range helmChart {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestHelm drives Helm 4 (server-side apply by default, releases kept
// in Secrets) through a release's life against a real `miniku up`:
// install, list, status, upgrade (replicas and a value, seen on the
// objects), rollback, uninstall; then its rendered manifests through
// kubectl apply --server-side. It logs how long helm install takes
// beside kubectl apply of the same manifests.
func TestHelm(t *testing.T) {
	hb := helmBin(t)
	k, dir := kubectlCluster(t)
	h := helm{bin: hb, config: k.config, home: dir}
	chart := writeChart(t, dir)

	h.must(t, `(?s)NAME: hello\n.*NAMESPACE: default\n.*STATUS: deployed\n.*REVISION: 1\n`, "install", "hello", chart, "--namespace", "default")
	k.must(t, `^red$`, "get", "cm", "hello-config", "-o", "jsonpath={.data.color}")
	k.must(t, `^hunter2$`, "get", "secret", "hello-secret", "-o", "go-template={{.data.password | base64decode}}")
	k.must(t, `^hello-sa$`, "get", "sa", "hello-sa", "-o", "jsonpath={.metadata.name}")
	k.must(t, `^1 red$`, "get", "rs", "hello-web", "-o", "jsonpath={.spec.replicas} {.spec.template.metadata.labels.color}")
	sum1 := k.must(t, `^[0-9a-f]{64}$`, "get", "rs", "hello-web", "-o", `jsonpath={.spec.template.metadata.annotations.checksum/config}`)
	// Helm's own record: a Secret of type helm.sh/release.v1 labelled
	// owner=helm; the objects are applied by the manager "helm".
	k.must(t, `^sh\.helm\.release\.v1\.hello\.v1 helm\.sh/release\.v1 deployed$`, "get", "secret", "-l", "owner=helm,name=hello", "-o", `jsonpath={.items[*].metadata.name} {.items[*].type} {.items[*].metadata.labels.status}`)
	k.must(t, `(?s)manager: helm\n\s+operation: Apply`, "get", "cm", "hello-config", "-o", "yaml", "--show-managed-fields")

	h.must(t, `(?m)^hello\s+default\s+1\s+.*\s+deployed\s+hello-0\.1\.0\s+1\.0\s*$`, "list", "--namespace", "default")
	h.must(t, `(?s)NAME: hello\n.*STATUS: deployed\n.*REVISION: 1\n`, "status", "hello", "--namespace", "default")
	eventually(t, 90*time.Second, func() error {
		out, err := k.run(t, "", "get", "pods", "-l", "app.kubernetes.io/instance=hello", "--no-headers")
		if err != nil || len(regexp.MustCompile(`(?m)\s1/1\s+Running\s`).FindAllString(out, -1)) != 1 {
			return fmt.Errorf("pods: %v %q", err, out)
		}
		return nil
	})

	h.must(t, `(?s)Release "hello" has been upgraded.*REVISION: 2\n`, "upgrade", "hello", chart, "--namespace", "default", "--set", "replicas=2", "--set", "color=blue")
	k.must(t, `^blue$`, "get", "cm", "hello-config", "-o", "jsonpath={.data.color}")
	k.must(t, `^2 blue blue$`, "get", "rs", "hello-web", "-o", "jsonpath={.spec.replicas} {.metadata.labels.color} {.spec.template.metadata.labels.color}")
	if sum2 := k.must(t, `^[0-9a-f]{64}$`, "get", "rs", "hello-web", "-o", `jsonpath={.spec.template.metadata.annotations.checksum/config}`); sum2 == sum1 {
		t.Errorf("the config checksum did not change with the value: %s", sum2)
	}
	eventually(t, 90*time.Second, func() error {
		out, err := k.run(t, "", "get", "rs", "hello-web", "-o", "jsonpath={.status.replicas}")
		if err != nil || out != "2" {
			return fmt.Errorf("rs status.replicas %q %v", out, err)
		}
		return nil
	})
	h.must(t, `(?m)^1\s+.*\s+superseded\s+hello-0\.1\.0\s+1\.0\s+Install complete\s*\n2\s+.*\s+deployed\s+hello-0\.1\.0\s+1\.0\s+Upgrade complete`, "history", "hello", "--namespace", "default")

	h.must(t, `Rollback was a success`, "rollback", "hello", "1", "--namespace", "default")
	k.must(t, `^red$`, "get", "cm", "hello-config", "-o", "jsonpath={.data.color}")
	k.must(t, `^1 red$`, "get", "rs", "hello-web", "-o", "jsonpath={.spec.replicas} {.spec.template.metadata.labels.color}")
	h.must(t, `(?s)STATUS: deployed\n.*REVISION: 3\n`, "status", "hello", "--namespace", "default")

	h.must(t, `release "hello" uninstalled`, "uninstall", "hello", "--namespace", "default", "--wait")
	for _, obj := range []string{"cm/hello-config", "secret/hello-secret", "sa/hello-sa", "rs/hello-web"} {
		k.must(t, `^$`, "get", obj, "--ignore-not-found", "-o", "name")
	}
	k.must(t, `^$`, "get", "secret", "-l", "owner=helm", "-o", "name")
	h.must(t, `^NAME\s+NAMESPACE\s+REVISION\s+UPDATED\s+STATUS\s+CHART\s+APP VERSION\n$`, "list", "--namespace", "default")

	// The same manifests through kubectl, and the timing beside it.
	rendered := h.must(t, `kind: ReplicaSet`, "template", "tpl", chart, "--namespace", "default", "--set", "replicas=0")
	k.must(t, `(?s)configmap/tpl-config serverside-applied.*replicaset.apps/tpl-web serverside-applied`, "apply", "--server-side", "-f", writeTemp(t, dir, rendered))
	k.must(t, `^0$`, "get", "rs", "tpl-web", "-o", "jsonpath={.spec.replicas}")
	k.must(t, `deleted`, "delete", "-f", writeTemp(t, dir, rendered))
	helmVsKubectl(t, h, k, chart, dir)
}

// helmVsKubectl times helm install of the chart against kubectl apply -f
// of what helm template renders of it (replicas 0: the objects, not
// their pods), each a few times in the same run, and logs the medians and
// their ratio.
func helmVsKubectl(t *testing.T, h helm, k kubectl, chart, dir string) {
	const rounds = 3
	var helmT, kubectlT []time.Duration
	for i := range rounds {
		name := fmt.Sprintf("bench%d", i)
		start := time.Now()
		h.must(t, `STATUS: deployed`, "install", name, chart, "--namespace", "default", "--set", "replicas=0")
		helmT = append(helmT, time.Since(start))
		h.must(t, `uninstalled`, "uninstall", name, "--namespace", "default")

		tname := fmt.Sprintf("kbench%d", i)
		file := writeTemp(t, dir, h.must(t, `kind: ReplicaSet`, "template", tname, chart, "--namespace", "default", "--set", "replicas=0"))
		start = time.Now()
		k.must(t, `replicaset.apps/`+tname+`-web created`, "apply", "-f", file)
		kubectlT = append(kubectlT, time.Since(start))
		k.must(t, `deleted`, "delete", "-f", file)
	}
	median := func(d []time.Duration) time.Duration {
		s := append([]time.Duration(nil), d...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[len(s)/2]
	}
	hm, km := median(helmT), median(kubectlT)
	t.Logf("BENCH helm install %v vs kubectl apply -f (helm template) %v (medians of %d: %v, %v): ratio %.2f",
		hm.Round(time.Millisecond), km.Round(time.Millisecond), rounds, helmT, kubectlT, float64(hm)/float64(km))
}
