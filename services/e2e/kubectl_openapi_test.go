package e2e

import (
	"strings"
	"testing"
)

const explainPod = `apiVersion: v1
kind: Pod
metadata:
  name: explained
spec:
  containers:
  - name: c
    image: alpine
    command: ["/bin/sh", "-c", "while true; do sleep 1; done"]
`

// TestKubectlExplainAndFieldValidation: the OpenAPI documents of a real
// `miniku up` are complete enough for kubectl: explain shows Kubernetes'
// own field descriptions, and apply --validate=strict refuses a typo'd
// field — on create and on the patch of an existing pod — naming it.
func TestKubectlExplainAndFieldValidation(t *testing.T) {
	k, _ := kubectlCluster(t)

	out, err := k.run(t, "", "explain", "pod.spec")
	if err != nil {
		t.Fatalf("kubectl explain pod.spec: %v\n%s", err, out)
	}
	for _, want := range []string{"KIND:       Pod", "FIELD: spec <PodSpec>", "containers\t<[]Container> -required-", "List of containers belonging to the pod"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl explain pod.spec lacks %q", want)
		}
	}
	if out, err := k.run(t, "", "explain", "rs.spec.replicas"); err != nil || !strings.Contains(out, "FIELD: replicas <integer>") {
		t.Errorf("kubectl explain rs.spec.replicas: %v", err)
	}

	typo := strings.Replace(explainPod, "command:", "commnd:", 1)
	out, err = k.run(t, typo, "apply", "--validate=strict", "-f", "-")
	if err == nil {
		t.Fatal("kubectl apply --validate=strict of a pod with a typo'd field succeeded")
	}
	if !strings.Contains(out, `unknown field "spec.containers[0].commnd"`) && !strings.Contains(out, `unknown field "commnd"`) {
		t.Errorf("kubectl apply of the typo: want an unknown-field error naming commnd, got:\n%s", out)
	}
	if out, err := k.run(t, "", "get", "pod", "explained"); err == nil || !strings.Contains(out, `pods "explained" not found`) {
		t.Fatalf("the refused pod exists: %v %s", err, out)
	}

	if out, err := k.run(t, explainPod, "apply", "--validate=strict", "-f", "-"); err != nil || !strings.Contains(out, "pod/explained created") {
		t.Fatalf("kubectl apply of the valid pod: %v\n%s", err, out)
	}
	// Now apply patches the existing pod (strategic merge, from the
	// documents' patch strategies): the typo is refused there too.
	typo2 := strings.Replace(explainPod, "metadata:\n", "metadata:\n  labelz: {a: b}\n", 1)
	out, err = k.run(t, typo2, "apply", "--validate=strict", "-f", "-")
	if err == nil || !strings.Contains(out, "labelz") {
		t.Errorf("kubectl apply of a typo onto the existing pod: want an error naming labelz, got %v:\n%s", err, out)
	}
	if _, err := k.run(t, "", "delete", "pod", "explained", "--wait=false"); err != nil {
		t.Errorf("kubectl delete pod: %v", err)
	}
}
