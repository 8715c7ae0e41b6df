package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miniku/miniku/schemas"
)

const loggerPod = `{"name":"logger","image":"alpine","command":["sh","-c","i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done"]}`

var logLineRE = regexp.MustCompile(`^line (\d+)$`)

// lineNumbers parses "line N" lines and checks they are consecutive.
func lineNumbers(body string) ([]int, error) {
	var out []int
	for l := range strings.Lines(body) {
		m := logLineRE.FindStringSubmatch(strings.TrimSuffix(l, "\n"))
		if m == nil || !strings.HasSuffix(l, "\n") {
			return nil, fmt.Errorf("unexpected log line %q in %q", l, body)
		}
		n, _ := strconv.Atoi(m[1])
		if len(out) > 0 && n != out[len(out)-1]+1 {
			return nil, fmt.Errorf("line %d follows line %d", n, out[len(out)-1])
		}
		out = append(out, n)
	}
	return out, nil
}

// TestLogsAndWatch: the logs of a real container through the apiserver and
// its kubelet, and the pod's progress through a watch.
func TestLogsAndWatch(t *testing.T) {
	c := newCluster(t)
	// As c.up, with debug logs to see the log streams end.
	up := start(t, "miniku up", "up",
		"--data-dir", c.dataDir, "--api-addr", c.apiAddr, "--nats-addr", c.natsAddr,
		"--nodes", "2", "--registry-mirror", "http://"+c.registry, "--log-level", "debug")
	a := c.api
	eventually(t, 30*time.Second, func() error {
		if code, body := a.do("GET", "/healthz", ""); code != 200 {
			return fmt.Errorf("healthz: %d %s", code, body)
		}
		return nil
	})

	// Watch from the start: the pod is ADDED Pending, then MODIFIED until Running.
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	wreq, _ := http.NewRequestWithContext(wctx, "GET", a.base+"/pods?watch=true&labelSelector=", nil)
	a.authorize(wreq)
	wresp, err := http.DefaultClient.Do(wreq)
	if err != nil {
		t.Fatal(err)
	}
	defer wresp.Body.Close()
	if code, body := a.do("POST", "/pods", loggerPod); code != 201 {
		t.Fatalf("POST /pods: %d %s", code, body)
	}
	sc := bufio.NewScanner(wresp.Body)
	var seen []string
	for sc.Scan() {
		var ev struct {
			Type   string      `json:"type"`
			Object schemas.Pod `json:"object"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("watch line %q: %v", sc.Text(), err)
		}
		seen = append(seen, ev.Type+" "+string(ev.Object.Status))
		if ev.Object.Name == "logger" && ev.Object.Status == schemas.PodRunning {
			break
		}
	}
	if len(seen) < 2 || seen[0] != "ADDED Pending" || seen[len(seen)-1] != "MODIFIED Running" {
		t.Fatalf("watch saw %v", seen)
	}
	wcancel()

	// All lines so far, consecutive from line 0.
	eventually(t, 30*time.Second, func() error {
		code, body := a.do("GET", "/pods/logger/logs", "")
		if code != 200 {
			return fmt.Errorf("GET logs: %d %s", code, body)
		}
		nums, err := lineNumbers(string(body))
		if err != nil {
			return err
		}
		if len(nums) < 3 || nums[0] != 0 {
			return fmt.Errorf("logs %q", body)
		}
		return nil
	})
	code, body := a.do("GET", "/pods/logger/logs?tail=2", "")
	nums, err := lineNumbers(string(body))
	if code != 200 || err != nil || len(nums) != 2 || nums[1] < 2 {
		t.Fatalf("tail=2: %d %q %v", code, body, err)
	}

	// Follow: new lines arrive on the open connection as they are written.
	for i := range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", a.base+"/pods/logger/logs?follow=true&tail=1", nil)
		a.authorize(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Fatalf("follow: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		rd := bufio.NewReader(resp.Body)
		var got strings.Builder
		start := time.Now()
		for n := 0; n < 6; n++ {
			l, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("follow %d: after %q: %v", i, got.String(), err)
			}
			got.WriteString(l)
		}
		took := time.Since(start)
		if nums, err := lineNumbers(got.String()); err != nil || nums[0] < 2 {
			t.Fatalf("follow %d: %q %v", i, got.String(), err)
		}
		t.Logf("follow %d: 6 lines in %v (written every 0.2 s)", i, took)
		// The client cancels: the request ends at once.
		cancel()
		if _, err := io.Copy(io.Discard, resp.Body); err == nil {
			t.Errorf("follow %d: body ended without error after cancel", i)
		}
		resp.Body.Close()
	}
	// Every stream the kubelets started has ended on their side too.
	eventually(t, 30*time.Second, func() error {
		out := up.output()
		started, ended := strings.Count(out, `msg="log stream started"`), strings.Count(out, `msg="log stream ended"`)
		if started < 5 || ended != started {
			return fmt.Errorf("kubelets started %d log streams and ended %d", started, ended)
		}
		return nil
	})

	// A pod that is not scheduled yet has no logs; an unknown one is 404.
	if code, body := a.do("GET", "/pods/nope/logs", ""); code != 404 {
		t.Errorf("unknown pod: %d %s", code, body)
	}
	if code, body := a.do("DELETE", "/pods/logger", ""); code != 200 {
		t.Fatalf("DELETE: %d %s", code, body)
	}
}
