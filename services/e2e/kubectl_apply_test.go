package e2e

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

const ssaConfigMap = `apiVersion: v1
kind: ConfigMap
metadata:
  name: kssa
  labels: {app: kssa}
data:
  color: red
  size: big
`

const ssaReplicaSet = `apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: kssa
spec:
  replicas: 0
  selector: {matchLabels: {app: kssa}}
  template:
    metadata: {labels: {app: kssa}}
    spec:
      containers:
      - name: c
        image: alpine
        command: ["/bin/sh", "-c", "sleep 1000"]
`

// TestKubectlServerSideApply drives kubectl apply --server-side (create,
// unchanged re-apply, a conflict with another manager and
// --force-conflicts), kubectl diff (a dry-run server-side write: the
// object does not change) and get --show-managed-fields against a real
// `miniku up`.
func TestKubectlServerSideApply(t *testing.T) {
	k, dir := kubectlCluster(t)
	cm := writeTemp(t, dir, ssaConfigMap)
	k.must(t, `^configmap/kssa serverside-applied\n$`, "apply", "--server-side", "-f", cm)
	rv := k.must(t, `^\d+$`, "get", "cm", "kssa", "-o", "jsonpath={.metadata.resourceVersion}")
	k.must(t, `^configmap/kssa serverside-applied\n$`, "apply", "--server-side", "-f", cm)
	k.must(t, "^"+rv+"$", "get", "cm", "kssa", "-o", "jsonpath={.metadata.resourceVersion}")

	k.must(t, `(?s)managedFields:.*manager: kubectl\n\s+operation: Apply`, "get", "cm", "kssa", "-o", "yaml", "--show-managed-fields")
	if out := k.must(t, `name: kssa`, "get", "cm", "kssa", "-o", "yaml"); strings.Contains(out, "managedFields") {
		t.Errorf("get -o yaml shows managedFields without --show-managed-fields:\n%s", out)
	}

	// Another writer takes data.color; applying another color conflicts
	// with it until --force-conflicts.
	k.must(t, `configmap/kssa patched`, "patch", "cm", "kssa", "--type=merge", "-p", `{"data":{"color":"blue"}}`)
	green := writeTemp(t, dir, strings.Replace(ssaConfigMap, "color: red", "color: green", 1))
	out, err := k.run(t, "", "apply", "--server-side", "-f", green)
	if err == nil || !strings.Contains(out, `Apply failed with 1 conflict: conflict with "kubectl-patch" using v1: .data.color`) {
		t.Fatalf("apply --server-side over another manager's field: %v\n%s", err, out)
	}
	k.must(t, `^blue$`, "get", "cm", "kssa", "-o", "jsonpath={.data.color}")
	k.must(t, `^configmap/kssa serverside-applied\n$`, "apply", "--server-side", "--force-conflicts", "-f", green)
	k.must(t, `^green big$`, "get", "cm", "kssa", "-o", "jsonpath={.data.color} {.data.size}")
	// A field the manifest stops setting goes.
	k.must(t, `serverside-applied`, "apply", "--server-side", "-f", writeTemp(t, dir, strings.Replace(strings.Replace(ssaConfigMap, "color: red", "color: green", 1), "  size: big\n", "", 1)))
	k.must(t, `^green <>$`, "get", "cm", "kssa", "-o", "jsonpath={.data.color} <{.data.size}>")

	// diff: nothing against what is there; a change shown, not made.
	yellow := writeTemp(t, dir, strings.Replace(strings.Replace(ssaConfigMap, "color: red", "color: yellow", 1), "  size: big\n", "", 1))
	for _, args := range [][]string{{"diff", "-f", yellow}, {"diff", "--server-side", "-f", yellow}} {
		out, err = k.run(t, "", args...)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out, "-  color: green") || !strings.Contains(out, "+  color: yellow") {
			t.Errorf("kubectl %s: %v, want exit 1 and the color change:\n%s", strings.Join(args, " "), err, out)
		}
	}
	k.must(t, `^green$`, "get", "cm", "kssa", "-o", "jsonpath={.data.color}")
	k.must(t, `^$`, "diff", "--server-side", "-f", writeTemp(t, dir, strings.Replace(strings.Replace(ssaConfigMap, "color: red", "color: green", 1), "  size: big\n", "", 1)))

	// apps/v1 through the same path; a field MiniKu does not implement is
	// the 422 any write gets.
	rs := writeTemp(t, dir, ssaReplicaSet)
	k.must(t, `^replicaset.apps/kssa serverside-applied\n$`, "apply", "--server-side", "-f", rs)
	k.must(t, `^0 alpine$`, "get", "rs", "kssa", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image}")
	probe := strings.Replace(ssaReplicaSet, "        command:", "        livenessProbe: {exec: {command: [\"true\"]}}\n        command:", 1)
	out, err = k.run(t, "", "apply", "--server-side", "-f", writeTemp(t, dir, probe))
	if err == nil || !strings.Contains(out, "spec.template.spec.containers[0].livenessProbe") {
		t.Errorf("apply --server-side with a livenessProbe: %v, want the 422 naming it\n%s", err, out)
	}
	k.must(t, `replicaset.apps "kssa" deleted`, "delete", "-f", rs)
	k.must(t, `configmap "kssa" deleted`, "delete", "cm", "kssa")
}
