package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestKubectlConfig drives ConfigMaps, Secrets and ServiceAccounts with
// the machine's kubectl on a real `miniku up`: create, get (table,
// jsonpath), label (a patch), a Secret of Kubernetes' full 1 MiB, the
// default ServiceAccount the controller makes, and delete.
func TestKubectlConfig(t *testing.T) {
	k, dir := kubectlCluster(t)

	k.must(t, `(?m)^configmaps\s+cm\s+v1\s+true\s+ConfigMap$`, "api-resources")
	k.must(t, `(?m)^secrets\s+v1\s+true\s+Secret$`, "api-resources")
	k.must(t, `(?m)^serviceaccounts\s+sa\s+v1\s+true\s+ServiceAccount$`, "api-resources")

	k.must(t, `^configmap/x created\n$`, "create", "configmap", "x", "--from-literal=a=b")
	k.must(t, `(?m)^x\s+1\s+\S+$`, "get", "cm")
	k.must(t, `^b$`, "get", "cm", "x", "-o", "jsonpath={.data.a}")
	k.must(t, `^configmap/x labeled\n$`, "label", "cm", "x", "tier=web")
	k.must(t, `^x\n$`, "get", "cm", "-l", "tier=web", "-o", "jsonpath={.items[*].metadata.name}{\"\\n\"}")
	if out, err := k.run(t, "", "create", "configmap", "x", "--from-literal=a=c"); err == nil || !strings.Contains(out, `configmaps "x" already exists`) {
		t.Errorf("create configmap x again: %v %q", err, out)
	}

	k.must(t, `^secret/s created\n$`, "create", "secret", "generic", "s", "--from-literal=p=q")
	k.must(t, `^cQ==$`, "get", "secret", "s", "-o", "jsonpath={.data.p}") // base64 of "q"
	k.must(t, `(?m)^s\s+Opaque\s+1\s+\S+$`, "get", "secrets")
	if out := k.must(t, `(?m)^type: Opaque$`, "get", "secret", "s", "-o", "yaml"); strings.Contains(out, "stringData") {
		t.Errorf("a Secret read back shows stringData:\n%s", out)
	}

	// Kubernetes' limit on a Secret's data is 1 MiB: ≈ 1.37 MiB of base64
	// in the request, under the API's 3 MiB body limit.
	blob := bytes.Repeat([]byte("0123456789abcdef"), (1<<20)/16)
	blobFile := filepath.Join(dir, "blob")
	if err := os.WriteFile(blobFile, blob, 0o600); err != nil {
		t.Fatal(err)
	}
	k.must(t, `^secret/big created\n$`, "create", "secret", "generic", "big", "--from-file=blob="+blobFile)
	k.must(t, `(?m)^big\s+Opaque\s+1\s+\S+$`, "get", "secret", "big")

	// The serviceaccounts controller makes the default one.
	eventually(t, 30*time.Second, func() error {
		out, err := k.run(t, "", "get", "sa")
		if err != nil || !regexp.MustCompile(`(?m)^default\s+0\s+\S+$`).MatchString(out) {
			return fmt.Errorf("get sa: %v %q", err, out)
		}
		return nil
	})
	k.must(t, `^serviceaccount/builder created\n$`, "create", "serviceaccount", "builder")
	k.must(t, `(?m)^builder\s+0\s+\S+$`, "get", "sa", "builder")

	k.must(t, `^configmap "x" deleted\n$`, "delete", "cm", "x")
	k.must(t, `^secret "s" deleted\n$`, "delete", "secret", "s")
	k.must(t, `^secret "big" deleted\n$`, "delete", "secret", "big")
	k.must(t, `^serviceaccount "builder" deleted\n$`, "delete", "sa", "builder")
	for _, r := range []string{"cm/x", "secret/s", "sa/builder"} {
		if out, err := k.run(t, "", "get", r); err == nil || !strings.Contains(out, "NotFound") && !strings.Contains(out, "not found") {
			t.Errorf("get %s after delete: %v %q", r, err, out)
		}
	}
}
