package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestKubectlEventsUncordon: describe shows a pod's events (the list
// kubectl sends with an involvedObject field selector), get events
// lists them, uncordon undoes cordon, set image changes a replicaset's
// template from an untagged image.
func TestKubectlEventsUncordon(t *testing.T) {
	k, dir := kubectlCluster(t)
	podFile := writeTemp(t, dir, kubectlPod)
	k.must(t, `pod/kpod created`, "create", "-f", podFile)
	k.must(t, `pod/kpod condition met`, "wait", "--for=condition=Ready", "pod/kpod", "--timeout=60s")
	eventually(t, 20*time.Second, func() error {
		out, err := k.run(t, "", "describe", "pod", "kpod")
		if err != nil || !regexp.MustCompile(`(?s)Events:.*Normal\s+Scheduled\s+\S+\s+\S*scheduler\s+.*Started`).MatchString(out) {
			return fmt.Errorf("describe pod: %v\n%s", err, out)
		}
		return nil
	})
	k.must(t, `(?m)^\S+\s+Normal\s+Scheduled\s+pod/kpod\s`, "get", "events")
	k.must(t, `(?m)^default\s+\S+\s+Normal\s+Started\s+pod/kpod\s`, "get", "events", "-A", "--field-selector", "involvedObject.name=kpod")

	k.must(t, `node/node-2 cordoned`, "cordon", "node-2")
	k.must(t, `(?m)^node-2\s+Ready,SchedulingDisabled\s`, "get", "nodes")
	k.must(t, `node/node-2 uncordoned`, "uncordon", "node-2")
	k.must(t, `(?m)^node-2\s+Ready\s`, "get", "nodes")

	k.must(t, `replicaset.apps/kweb created`, "apply", "-f", writeTemp(t, t.TempDir(), strings.Replace(kubectlRS, "replicas: 2", "replicas: 0", 1)))
	k.must(t, `replicaset.apps/kweb image updated`, "set", "image", "rs/kweb", "c=alpine:3.20")
	k.must(t, `^alpine:3\.20$`, "get", "rs", "kweb", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
	k.must(t, `replicaset.apps "kweb" deleted`, "delete", "rs", "kweb")
	k.must(t, `pod "kpod" deleted`, "delete", "pod", "kpod", "--grace-period=1")
}
