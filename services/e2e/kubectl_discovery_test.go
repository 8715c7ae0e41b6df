package e2e

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// legacyDiscovery matches a request for a per-group/version discovery
// document (/api/v1, /apis/apps/v1), which kubectl sends only when the
// server did not give it the aggregated one.
var legacyDiscovery = regexp.MustCompile(`/(api/v1|apis/[^/?\s"]+/[^/?\s"]+)\?timeout=`)

// TestKubectlAggregatedDiscovery: kubectl 1.33 (aggregated discovery v2)
// and 1.27 (v2beta1) learn every resource from /api and /apis alone and
// never ask the legacy per-group documents.
func TestKubectlAggregatedDiscovery(t *testing.T) {
	k, _ := kubectlCluster(t)
	for _, tc := range []struct{ bin, version string }{
		{"/usr/lib/google-cloud-sdk/bin/kubectl.1.33", "v2"},
		{"/usr/lib/google-cloud-sdk/bin/kubectl.1.27", "v2beta1"},
	} {
		if _, err := os.Stat(tc.bin); err != nil {
			t.Logf("%s is absent: skipping it", tc.bin)
			continue
		}
		kv := k
		kv.bin, kv.home = tc.bin, t.TempDir() // an empty discovery cache
		for _, args := range [][]string{{"get", "pods"}, {"api-resources"}} {
			out := kv.must(t, ``, append([]string{"-v=8"}, args...)...)
			ct := regexp.MustCompile(`Content-Type: application/json;g=apidiscovery\.k8s\.io;v=` + tc.version + `;as=APIGroupDiscoveryList`)
			if n := len(ct.FindAllString(out, -1)); n < 2 {
				t.Errorf("%s %v: %d aggregated %s responses in its log, want /api and /apis", tc.bin, args, n, tc.version)
			}
			if m := legacyDiscovery.FindAllString(out, -1); len(m) > 0 {
				t.Errorf("%s %v asked the legacy discovery documents %v", tc.bin, args, m)
			}
			kv.home = t.TempDir()
			if args[0] == "api-resources" {
				for _, want := range []string{`(?m)^pods\s+po\s+v1\s+true\s+Pod$`, `(?m)^replicasets\s+rs\s+apps/v1\s+true\s+ReplicaSet$`,
					`(?m)^namespaces\s+ns\s+v1\s+false\s+Namespace$`} {
					if !regexp.MustCompile(want).MatchString(stripKlog(out)) {
						t.Errorf("%s api-resources lacks %s", tc.bin, want)
					}
				}
			}
		}
	}
}

// stripKlog drops kubectl's -v log lines (I1207 12:00:00.000000 ...).
func stripKlog(out string) string {
	var keep []string
	klog := regexp.MustCompile(`^[IWE]\d{4} `)
	inHeaders := false
	for _, l := range strings.Split(out, "\n") {
		switch {
		case klog.MatchString(l):
			inHeaders = strings.Contains(l, "headers=<")
		case inHeaders && strings.HasPrefix(l, "\t"), inHeaders && strings.TrimSpace(l) == ">":
			if strings.TrimSpace(l) == ">" {
				inHeaders = false
			}
		default:
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
