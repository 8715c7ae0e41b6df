package apiserver_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
)

// BenchmarkKubeWatch measures the events a second delivered to N
// concurrent Kubernetes-API pod watchers while pods change, against the
// bus's own ceiling in the same run: N raw KV watches of the pods bucket,
// each on its own NATS connection (as each kube watcher has its own HTTP
// connection), seeing the same kind and number of writes. Run with
//
//	go test -run '^$' -bench KubeWatch -benchtime 1x ./services/apiserver/
func BenchmarkKubeWatch(b *testing.B) {
	const (
		// Each pod changes once a phase: a bucket keeps one version per
		// key, so a version overwritten before a watcher reads it is
		// skipped (by a raw KV watch as by the apiserver's cache), which
		// would make the phases deliver different counts.
		pods    = 1000
		changes = pods // per phase
		writers = 4
		rounds  = 5
	)
	ns := bustest.Server(b, "", "")
	conn := bustest.Conn(b, ns.ClientURL(), bustest.Logger(b))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	objs := make([]*schemas.Pod, pods)
	for i := range objs {
		objs[i] = &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: fmt.Sprintf("pod-%03d", i), UID: fmt.Sprintf("%032d", i),
			CreatedAt: time.Now().UTC(), Labels: map[string]string{"app": "bench", "gen": "0"}},
			PodSpec: schemas.PodSpec{Image: "busybox", Command: []string{"sleep", "3600"}}, NodeName: "node-1", Status: schemas.PodRunning}
		if err := conn.Pods.Create(ctx, objs[i]); err != nil {
			b.Fatal(err)
		}
	}
	e := startKubeOn(b, conn)
	gen := 0
	// change makes n pod updates from writers goroutines, each on its own
	// pods (CAS on the revision it wrote last).
	change := func(n int) {
		gen++
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += writers {
					p := objs[i%pods] // pods%writers == 0: each pod has one writer
					p.Labels["gen"] = fmt.Sprintf("%d-%d", gen, i)
					if err := conn.Pods.Update(ctx, p); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}

	// phase starts n watchers with start (each says when it is ready,
	// and reports what it read on done once it has seen revision target,
	// the phase's last write), makes the changes and times them from the
	// first write to the last event delivered.
	type read struct{ events, bytes int64 }
	phase := func(n int, start func(ctx context.Context, target uint64, ready chan<- error, done chan<- read)) result {
		wctx, wcancel := context.WithCancel(ctx)
		defer wcancel()
		rev, err := conn.Pods.Revision(ctx)
		if err != nil {
			b.Fatal(err)
		}
		target := rev + changes // nothing else writes the bucket
		ready, done := make(chan error, n), make(chan read, n)
		for range n {
			go start(wctx, target, ready, done)
		}
		for range n {
			if err := <-ready; err != nil {
				b.Fatal(err)
			}
		}
		t0 := time.Now()
		change(changes)
		writing := time.Since(t0)
		var total read
		for i := range n {
			select {
			case got := <-done:
				total.events += got.events
				total.bytes += got.bytes
			case <-time.After(2 * time.Minute):
				b.Fatalf("%d of %d watchers did not see revision %d in 2 min", n-i, n, target)
			}
		}
		return result{elapsed: time.Since(t0), writing: writing, events: total.events, bytes: total.bytes}
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}}
	kube := func(ctx context.Context, target uint64, ready chan<- error, done chan<- read) {
		// From the current revision: only what changes from now on.
		rv, err := currentRV(ctx, client, e.url)
		if err != nil {
			ready <- err
			return
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.url+"/api/v1/namespaces/default/pods?watch=true&resourceVersion="+rv, nil)
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			ready <- err
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			ready <- fmt.Errorf("watch: %d", resp.StatusCode)
			return
		}
		ready <- nil
		// A client frames each event (one JSON line) and reads its type;
		// the raw watcher below does as little.
		rd := bufio.NewReaderSize(resp.Body, 64<<10)
		var got read
		for last := uint64(0); last < target; {
			line, err := rd.ReadSlice('\n')
			if err == bufio.ErrBufferFull {
				rest, err2 := rd.ReadBytes('\n')
				line, err = append(append([]byte(nil), line...), rest...), err2
			}
			if err != nil {
				return
			}
			got.bytes += int64(len(line))
			if bytes.HasPrefix(line, []byte(`{"type":"MODIFIED"`)) {
				got.events++
				last = lineRev(line)
			}
		}
		done <- got
	}
	raw := func(ctx context.Context, target uint64, ready chan<- error, done chan<- read) {
		nc, err := nats.Connect(ns.ClientURL())
		if err != nil {
			ready <- err
			return
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			ready <- err
			return
		}
		kv, err := js.KeyValue(ctx, conn.Pods.Name())
		if err != nil {
			ready <- err
			return
		}
		w, err := kv.WatchAll(ctx, jetstream.UpdatesOnly())
		if err != nil {
			ready <- err
			return
		}
		defer func() { _ = w.Stop() }()
		ready <- nil
		var got read
		for last := uint64(0); last < target; {
			select {
			case en, ok := <-w.Updates():
				if !ok {
					return
				}
				if en != nil && en.Operation() == jetstream.KeyValuePut {
					got.bytes += int64(len(en.Key()) + len(en.Value()))
					got.events++
					last = en.Revision()
				}
			case <-ctx.Done():
				return
			}
		}
		done <- got
	}

	// Interleaved per N, so both see the same machine.
	b.Logf("%d pod changes from %d writers to N watchers; events/s delivered (events read by all watchers / first write to the last event read), median of %d rounds", changes, writers, rounds)
	b.Logf("%9s %12s %12s %7s %10s %10s %10s %10s %9s", "watchers", "kube ev/s", "bus ev/s", "ratio", "kube B/ev", "bus B/ev", "kube write", "bus write", "delivered")
	for _, n := range []int{1, 10, 100} {
		// Rounds interleaved, the median of each side: one phase is a
		// fraction of a second on a shared machine.
		var ks, rs []result
		for range rounds {
			ks = append(ks, phase(n, kube))
			rs = append(rs, phase(n, raw))
		}
		k, r := median(ks), median(rs)
		kr, rr := float64(k.events)/k.elapsed.Seconds(), float64(r.events)/r.elapsed.Seconds()
		want := int64(n * changes)
		b.Logf("%9d %12.0f %12.0f %6.2fx %10.0f %10.0f %10v %10v %4d%%/%d%%", n, kr, rr, kr/rr,
			float64(k.bytes)/float64(k.events), float64(r.bytes)/float64(r.events),
			k.writing.Round(time.Millisecond), r.writing.Round(time.Millisecond), 100*k.events/want, 100*r.events/want)
		b.ReportMetric(kr, fmt.Sprintf("kube-ev/s-%d", n))
		b.ReportMetric(rr, fmt.Sprintf("bus-ev/s-%d", n))
		b.ReportMetric(float64(k.bytes)/float64(k.events), fmt.Sprintf("kube-B/ev-%d", n))
	}
}

// currentRV is the pod list's resourceVersion.
func currentRV(ctx context.Context, client *http.Client, url string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/api/v1/namespaces/default/pods?limit=1", nil)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var l struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&l); err != nil || l.Metadata.ResourceVersion == "" {
		return "", fmt.Errorf("list resourceVersion: %v", err)
	}
	return l.Metadata.ResourceVersion, nil
}

type result struct {
	elapsed, writing time.Duration
	events, bytes    int64
}

// median is the round of median rate (events/elapsed).
func median(rs []result) result {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b result) int {
		return cmp.Compare(float64(a.events)/a.elapsed.Seconds(), float64(b.events)/b.elapsed.Seconds())
	})
	return rs[len(rs)/2]
}

// lineRev is the metadata.resourceVersion of a watch event's object (the
// first in the line: metadata comes first), 0 if none.
func lineRev(line []byte) uint64 {
	const key = `"resourceVersion":"`
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		return 0
	}
	var rev uint64
	for _, c := range line[i+len(key):] {
		if c < '0' || c > '9' {
			break
		}
		rev = rev*10 + uint64(c-'0')
	}
	return rev
}
