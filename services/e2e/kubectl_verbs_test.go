package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const kubectlLogPod = `apiVersion: v1
kind: Pod
metadata:
  name: klog
  labels: {app: klog}
spec:
  containers:
  - name: c
    image: alpine
    command: ["/bin/sh", "-c", "i=0; while true; do echo line$i; i=$((i+1)); sleep 1; done"]
`

// TestKubectlVerbs covers the kubectl commands the other kubectl tests
// leave out: annotate, edit (a scripted editor), json and
// strategic patches, get -o yaml, logs -f, events sorted, delete -l, and
// objects written through the seed API seen by kubectl and back.
func TestKubectlVerbs(t *testing.T) {
	k, dir, c := kubectlClusterSeed(t)
	// cluster-info is not here: it lists kube-system's Services, a kind
	// that comes with the network (issue 16).

	k.must(t, `configmap/kcm created`, "create", "configmap", "kcm", "--from-literal=color=red")
	k.must(t, `configmap/kcm annotated`, "annotate", "cm", "kcm", "owner=team-a")
	k.must(t, `^team-a$`, "get", "cm", "kcm", "-o", "jsonpath={.metadata.annotations.owner}")
	editor := filepath.Join(dir, "editor.sh")
	if err := os.WriteFile(editor, []byte("#!/bin/sh\nsed -i 's/color: red/color: blue/' \"$1\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ke := k
	ke.env = []string{"KUBE_EDITOR=" + editor}
	ke.must(t, `configmap/kcm edited`, "edit", "cm", "kcm")
	k.must(t, `^blue$`, "get", "cm", "kcm", "-o", "jsonpath={.data.color}")
	k.must(t, `configmap/kcm patched`, "patch", "cm", "kcm", "--type=json", "-p", `[{"op":"replace","path":"/data/color","value":"green"}]`)
	k.must(t, `(?m)^kind: ConfigMap\n(.*\n)*  name: kcm$`, "get", "cm", "kcm", "-o", "yaml")
	k.must(t, `^green$`, "get", "cm", "kcm", "-o", "jsonpath={.data.color}")

	// A strategic merge patch (kubectl's default) merges containers by
	// name: the command stays; a merge patch would have replaced the list.
	k.must(t, `replicaset.apps/kweb created`, "apply", "-f", writeTemp(t, dir, strings.Replace(kubectlRS, "replicas: 2", "replicas: 0", 1)))
	k.must(t, `replicaset.apps/kweb patched`, "patch", "rs", "kweb", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"alpine:3.20"}]}}}}`)
	k.must(t, `^alpine:3\.20 /bin/sh$`, "get", "rs", "kweb", "-o", "jsonpath={.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].command[0]}")

	// logs -f follows: lines written after kubectl started arrive.
	k.must(t, `pod/klog created`, "create", "-f", writeTemp(t, dir, kubectlLogPod))
	k.must(t, `pod/klog condition met`, "wait", "--for=condition=Ready", "pod/klog", "--timeout=60s")
	var follow syncBuffer
	fcmd := exec.Command(k.bin, "logs", "-f", "klog")
	fcmd.Env = k.environ()
	fcmd.Stdout, fcmd.Stderr = &follow, &follow
	if err := fcmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fcmd.Process.Kill(); _ = fcmd.Wait() })
	var first string
	eventually(t, 20*time.Second, func() error {
		m := regexp.MustCompile(`line(\d+)`).FindAllString(follow.String(), -1)
		if len(m) == 0 {
			return fmt.Errorf("logs -f shows %q", follow.String())
		}
		first = m[len(m)-1]
		return nil
	})
	eventually(t, 20*time.Second, func() error {
		m := regexp.MustCompile(`line(\d+)`).FindAllString(follow.String(), -1)
		if m[len(m)-1] == first {
			return fmt.Errorf("logs -f stopped at %s: %q", first, follow.String())
		}
		return nil
	})

	// Events sorted by time: the pod's scheduling before its start.
	k.must(t, `(?s)Scheduled\s+pod/klog.*Started\s+pod/klog`, "get", "events", "--sort-by=.metadata.creationTimestamp")

	// One object, two views: the seed API's replicaset in kubectl, and
	// kubectl's pod in the miniku CLI.
	c.mustCLI(t, "", "apply", "-f", "../../deployments/examples/web.yaml")
	k.must(t, `(?m)^web\s+3\s`, "get", "rs", "web")
	if out := c.mustCLI(t, "", "get", "pods"); !regexp.MustCompile(`(?m)^klog\s`).MatchString(out) {
		t.Errorf("miniku get pods does not show kubectl's pod:\n%s", out)
	}
	k.must(t, `replicaset.apps "web" deleted`, "delete", "rs", "web")
	if out := c.mustCLI(t, "", "get", "rs"); regexp.MustCompile(`(?m)^web\s`).MatchString(out) {
		t.Errorf("miniku get rs still shows web after kubectl deleted it:\n%s", out)
	}

	k.must(t, `pod "klog" deleted`, "delete", "pods", "-l", "app=klog", "--grace-period=1")
	k.must(t, `replicaset.apps "kweb" deleted`, "delete", "rs", "kweb")
	k.must(t, `configmap "kcm" deleted`, "delete", "cm", "kcm")
}
