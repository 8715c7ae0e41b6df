package apiserver_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas"
)

// BenchmarkKubeVsSeed measures the Kubernetes API against the seed API
// on the same store in one run: GET of one pod (p99) and a list of
// 10,000 pods as JSON and as a Table. Run with
//
//	go test -run '^$' -bench KubeVsSeed -benchtime 1x ./services/apiserver/
func BenchmarkKubeVsSeed(b *testing.B) {
	const pods = 10000
	e := startKubeAfterTB(b, func(c *bus.Conn) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for i := range pods {
			p := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: fmt.Sprintf("pod-%05d", i), UID: fmt.Sprintf("%032d", i),
				CreatedAt: time.Now().UTC(), Labels: map[string]string{"app": "bench"}},
				PodSpec: schemas.PodSpec{Image: "busybox", Command: []string{"sleep", "3600"}}, NodeName: "node-1", Status: schemas.PodRunning}
			if err := c.Pods.Create(ctx, p); err != nil {
				b.Fatal(err)
			}
		}
	})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	sizes := map[string]int64{}
	get := func(path, accept string) time.Duration {
		req, _ := http.NewRequest(http.MethodGet, e.url+path, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n == 0 {
			b.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		sizes[path+" "+accept] = n
		return time.Since(start)
	}
	pct := func(d []time.Duration, p float64) time.Duration {
		slices.Sort(d)
		return d[int(float64(len(d)-1)*p)]
	}
	// Interleaved, so both see the same machine load.
	const gets = 2000
	var seed, kube []time.Duration
	for i := range gets {
		name := fmt.Sprintf("pod-%05d", i*7%pods)
		seed = append(seed, get("/pods/"+name, ""))
		kube = append(kube, get("/api/v1/namespaces/default/pods/"+name, "application/json"))
	}
	sp99, kp99 := pct(seed, 0.99), pct(kube, 0.99)
	b.Logf("GET one pod p99: seed %v, kube %v (%.2fx); p50 seed %v, kube %v", sp99, kp99, float64(kp99)/float64(sp99), pct(seed, 0.5), pct(kube, 0.5))
	b.ReportMetric(float64(sp99.Microseconds()), "seed-get-p99-µs")
	b.ReportMetric(float64(kp99.Microseconds()), "kube-get-p99-µs")

	const lists = 8
	var sl, kl, kt []time.Duration
	get("/pods", "") // warm both JSON caches
	get("/api/v1/pods", "application/json")
	for range lists {
		sl = append(sl, get("/pods", ""))
		kl = append(kl, get("/api/v1/namespaces/default/pods", "application/json"))
		kt = append(kt, get("/api/v1/namespaces/default/pods", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"))
	}
	sm, km, tm := pct(sl, 0.5), pct(kl, 0.5), pct(kt, 0.5)
	b.Logf("list of %d pods, median: seed %v, kube JSON %v (%.2fx), kube Table %v (%.2fx)", pods, sm, km, float64(km)/float64(sm), tm, float64(tm)/float64(sm))
	b.Logf("list bytes: seed %d, kube JSON %d, kube Table %d", sizes["/pods "], sizes["/api/v1/namespaces/default/pods application/json"],
		sizes["/api/v1/namespaces/default/pods application/json;as=Table;v=v1;g=meta.k8s.io,application/json"])
	b.ReportMetric(float64(sm.Milliseconds()), "seed-list-ms")
	b.ReportMetric(float64(km.Milliseconds()), "kube-list-ms")
	b.ReportMetric(float64(tm.Milliseconds()), "kube-table-ms")
}
