package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/miniku/miniku/schemas"
)

func TestK8sReplicaSet(t *testing.T) {
	objs, err := readManifests("../../deployments/examples/k8s-replicaset.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].RS == nil {
		t.Fatalf("want one replicaset, got %+v", objs)
	}
	rs := objs[0].RS
	grace := int64(5)
	want := &schemas.ReplicaSet{
		ObjectMeta:   schemas.ObjectMeta{Name: "frontend", Labels: map[string]string{"tier": "frontend"}},
		DesiredCount: 2,
		Selector:     map[string]string{"app": "frontend"},
		Template: schemas.PodTemplate{Name: "shell", Labels: map[string]string{"app": "frontend"}, PodSpec: schemas.PodSpec{
			Image:                         "busybox",
			Command:                       []string{"sh", "-c", "echo frontend $GREETING; while true; do sleep 1; done"},
			Env:                           []schemas.EnvVar{{Name: "GREETING", Value: "hi"}},
			Resources:                     schemas.ResourceList{CPU: "200m", Memory: "64Mi"},
			RestartPolicy:                 schemas.RestartAlways,
			TerminationGracePeriodSeconds: &grace,
		}},
	}
	if !reflect.DeepEqual(rs, want) {
		t.Fatalf("got  %+v\nwant %+v", rs, want)
	}
}

func TestK8sPodRequestsAndDefaults(t *testing.T) {
	objs, err := parseManifests("t", []byte(`
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: default, annotations: {a: b}}
spec:
  nodeName: node-1
  nodeSelector: {disk: ssd}
  containers:
  - name: c
    image: alpine
    imagePullPolicy: IfNotPresent
    resources: {requests: {cpu: 250m, memory: 16Mi}, limits: {memory: 32Mi}}
`))
	if err != nil {
		t.Fatal(err)
	}
	p := objs[0].Pod
	if p == nil || p.Name != "p" || p.NodeName != "node-1" || p.ContainerName != "c" || p.Command != nil ||
		p.Resources.CPU != "250m" || p.Resources.Memory != "32Mi" || p.NodeSelector["disk"] != "ssd" {
		t.Fatalf("pod: %+v", p)
	}
}

func TestOwnShapes(t *testing.T) {
	// JSON and YAML, with and without kind, several documents and a list.
	data := `{"kind":"Pod","name":"a","image":"alpine"}
---
kind: ReplicaSet
name: b
desiredCount: 2
selector: {app: b}
template: {image: alpine}
---
[{"name":"c","image":"alpine"},{"name":"d","desiredCount":1,"selector":{"app":"d"},"template":{"image":"alpine"}}]
`
	objs, err := parseManifests("t", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, o := range objs {
		refs = append(refs, o.ref())
	}
	if got := strings.Join(refs, " "); got != "pod/a replicaset/b pod/c replicaset/d" {
		t.Fatalf("got %s", got)
	}
	if objs[1].RS.DesiredCount != 2 || objs[1].RS.Selector["app"] != "b" {
		t.Fatalf("rs b: %+v", objs[1].RS)
	}
}

func TestExamplesParse(t *testing.T) {
	objs, err := readManifests("../../deployments/examples", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 5 {
		t.Fatalf("want 5 objects in the examples, got %d", len(objs))
	}
}

func TestManifestErrors(t *testing.T) {
	rs := func(spec string) string {
		return "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: r}\nspec:\n  selector: {matchLabels: {app: r}}\n  template:\n    metadata: {labels: {app: r}}\n" + spec
	}
	for _, tc := range []struct{ name, doc, want string }{
		{"volumes", rs("    spec:\n      volumes: []\n      containers: [{name: c, image: alpine}]\n"), "spec.template.spec.volumes: not supported"},
		{"ports", rs("    spec:\n      containers: [{name: c, image: alpine, ports: [{containerPort: 80}]}]\n"), "spec.template.spec.containers[0].ports: not supported"},
		{"two containers", rs("    spec:\n      containers: [{name: c, image: alpine}, {name: d, image: alpine}]\n"), "exactly one container, this has 2"},
		{"args only", rs("    spec:\n      containers: [{name: c, image: alpine, args: [x]}]\n"), "args without command"},
		{"valueFrom", rs("    spec:\n      containers: [{name: c, image: alpine, env: [{name: A, valueFrom: {}}]}]\n"), "env[0].valueFrom: not supported"},
		{"matchExpressions", "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: r}\nspec:\n  selector: {matchExpressions: []}\n", "spec.selector.matchExpressions: not supported"},
		{"deployment", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: r}\n", "Deployment is not supported"},
		{"namespace", "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: kube-system}\nspec: {containers: [{name: c, image: alpine}]}\n", "no namespaces"},
		{"wrong apiVersion", "apiVersion: v1\nkind: ReplicaSet\nmetadata: {name: r}\n", `apiVersion "v1" of a ReplicaSet`},
		{"own unknown field", `{"kind":"Pod","name":"a","image":"alpine","replicas":3}`, `unknown field "replicas"`},
		{"own invalid", `{"kind":"Pod","name":"A_b","image":"alpine"}`, "name"},
		{"own kind", `{"kind":"Service","name":"a"}`, `kind "Service"`},
		{"bad yaml", "name: [", "t:"},
		{"empty", "# nothing\n", "no objects"},
		{"labels mismatch", "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: r}\nspec:\n  selector: {matchLabels: {app: r}}\n  template:\n    metadata: {labels: {app: x}}\n    spec: {containers: [{name: c, image: alpine}]}\n", "must match spec.selector"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseManifests("t", []byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestReadManifestsDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "b.json"), []byte(`{"name":"b","image":"alpine"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.yml"), []byte("name: a\nimage: alpine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a manifest"), 0o644); err != nil {
		t.Fatal(err)
	}
	objs, err := readManifests(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[0].Pod.Name != "a" || objs[1].Pod.Name != "b" {
		t.Fatalf("got %+v", objs)
	}
	objs, err = readManifests("-", strings.NewReader("name: s\nimage: alpine\n"))
	if err != nil || len(objs) != 1 || objs[0].Pod.Name != "s" {
		t.Fatalf("stdin: %v %+v", err, objs)
	}
}
