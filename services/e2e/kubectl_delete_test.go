package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// deleteRS is a replicaset whose pods ignore SIGTERM, so that each one
// takes its whole (short) grace to go: long enough to see its owner wait.
func deleteRS(name string) string {
	return strings.NewReplacer("NAME", name).Replace(`apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: NAME
spec:
  replicas: 2
  selector: {matchLabels: {app: NAME}}
  template:
    metadata: {labels: {app: NAME}}
    spec:
      terminationGracePeriodSeconds: 3
      containers:
      - name: c
        image: alpine
        command: ["/bin/sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
`)
}

// runningPods waits for the replicaset's pods to run and returns them.
func runningPods(t *testing.T, k kubectl, app string, want int) []string {
	t.Helper()
	var names []string
	eventually(t, 90*time.Second, func() error {
		out, err := k.run(t, "", "get", "pods", "-l", "app="+app, "--field-selector", "status.phase=Running",
			"-o", `jsonpath={range .items[*]}{.metadata.name}{"\n"}{end}`)
		names = strings.Fields(out)
		if err != nil || len(names) != want {
			return fmt.Errorf("running pods of %s: %v %q", app, err, out)
		}
		return nil
	})
	return names
}

// exists says whether kubectl get finds the object (false on NotFound).
func exists(t *testing.T, k kubectl, args ...string) bool {
	t.Helper()
	out, err := k.run(t, "", append([]string{"get"}, args...)...)
	if err != nil {
		if strings.Contains(out, "NotFound") || strings.Contains(out, "not found") {
			return false
		}
		t.Fatalf("kubectl get %v: %v %s", args, err, out)
	}
	return true
}

// TestKubectlDeleteCascade drives kubectl delete's three cascades and a
// pod's --grace-period against a real `miniku up`, as Kubernetes' garbage
// collector and graceful deletion behave.
func TestKubectlDeleteCascade(t *testing.T) {
	k, dir := kubectlCluster(t)
	apply := func(name string) {
		f := filepath.Join(dir, name+".yaml")
		writeFile(t, f, deleteRS(name))
		k.must(t, `replicaset.apps/`+name+` created`, "apply", "-f", f)
	}
	for _, n := range []string{"fg", "or", "bg"} {
		apply(n)
	}

	t.Run("foreground", func(t *testing.T) {
		pods := runningPods(t, k, "fg", 2)
		k.must(t, `replicaset.apps "fg" deleted`, "delete", "rs", "fg", "--cascade=foreground", "--wait=false")
		// The replicaset stays, marked and held by foregroundDeletion,
		// while its pods are deleted.
		k.must(t, `^\d{4}-\d\d-\d\dT\S+Z \["foregroundDeletion"\]$`, "get", "rs", "fg",
			"-o", `jsonpath={.metadata.deletionTimestamp} {.metadata.finalizers}`)
		eventually(t, 30*time.Second, func() error {
			out, _ := k.run(t, "", "get", "pods", "-l", "app=fg", "-o", `jsonpath={range .items[*]}{.metadata.name}={.metadata.deletionTimestamp}{"\n"}{end}`)
			for _, p := range pods {
				if !regexp.MustCompile(`(?m)^`+p+`=\S+$`).MatchString(out) && strings.Contains(out, p) {
					return fmt.Errorf("pod %s not marked for deletion: %q", p, out)
				}
			}
			return nil
		})
		// It goes only after the last of them is gone.
		deadline := time.Now().Add(60 * time.Second)
		for {
			rs := exists(t, k, "rs", "fg")
			left := 0
			for _, p := range pods {
				if exists(t, k, "pod", p) {
					left++
				}
			}
			if !rs {
				if left > 0 {
					t.Fatalf("replicaset fg gone while %d of its pods remain", left)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replicaset fg still there after 60 s (%d pods left)", left)
			}
			time.Sleep(300 * time.Millisecond)
		}
	})

	t.Run("orphan", func(t *testing.T) {
		pods := runningPods(t, k, "or", 2)
		// kubectl waits until the replicaset is gone.
		k.must(t, `replicaset.apps "or" deleted`, "delete", "rs", "or", "--cascade=orphan", "--timeout=60s")
		if exists(t, k, "rs", "or") {
			t.Fatal("replicaset or still there after kubectl delete returned")
		}
		// Its pods stay, running, with no ownerReferences — and no
		// collector or controller takes them later.
		time.Sleep(3 * time.Second)
		out := k.must(t, ``, "get", "pods", "-l", "app=or",
			"-o", `jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.metadata.deletionTimestamp}{.metadata.ownerReferences}{"\n"}{end}`)
		for _, p := range pods {
			if !regexp.MustCompile(`(?m)^` + p + ` Running $`).MatchString(out) {
				t.Errorf("orphaned pod %s not running and unowned: %q", p, out)
			}
		}
		k.must(t, ``, "delete", "pods", "-l", "app=or", "--grace-period=0", "--force")
	})

	t.Run("background", func(t *testing.T) {
		pods := runningPods(t, k, "bg", 2)
		k.must(t, `replicaset.apps "bg" deleted`, "delete", "rs", "bg", "--timeout=60s")
		if exists(t, k, "rs", "bg") {
			t.Fatal("replicaset bg still there after kubectl delete returned")
		}
		eventually(t, 60*time.Second, func() error {
			for _, p := range pods {
				if exists(t, k, "pod", p) {
					return fmt.Errorf("pod %s of the deleted replicaset bg still there", p)
				}
			}
			return nil
		})
	})

	t.Run("pod grace period", func(t *testing.T) {
		f := filepath.Join(dir, "gp.yaml")
		writeFile(t, f, `apiVersion: v1
kind: Pod
metadata: {name: gp}
spec:
  containers:
  - name: c
    image: alpine
    command: ["/bin/sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
`)
		k.must(t, `pod/gp created`, "apply", "-f", f)
		k.must(t, `pod/gp condition met`, "wait", "--for=condition=Ready", "pod/gp", "--timeout=60s")
		start := time.Now()
		k.must(t, `pod "gp" deleted`, "delete", "pod", "gp", "--grace-period=6", "--wait=false")
		k.must(t, `^\S+Z 6$`, "get", "pod", "gp", "-o", `jsonpath={.metadata.deletionTimestamp} {.metadata.deletionGracePeriodSeconds}`)
		k.must(t, `(?m)^gp\s+1/1\s+Terminating\s`, "get", "pod", "gp")
		// A second delete may shorten the grace, never lengthen it.
		k.must(t, `pod "gp" deleted`, "delete", "pod", "gp", "--grace-period=20", "--wait=false")
		k.must(t, `^\S+Z 6$`, "get", "pod", "gp", "-o", `jsonpath={.metadata.deletionTimestamp} {.metadata.deletionGracePeriodSeconds}`)
		// The container ignores SIGTERM: the pod stays until its grace
		// is over, then is killed and goes.
		k.must(t, ``, "wait", "--for=delete", "pod/gp", "--timeout=60s")
		took := time.Since(start)
		if took < 4*time.Second {
			t.Errorf("pod gp went %v after a delete with --grace-period=6 (its container ignores SIGTERM)", took)
		}
		if exists(t, k, "pod", "gp") {
			t.Error("pod gp still there after kubectl delete returned")
		}
	})
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
