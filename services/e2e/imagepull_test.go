package e2e

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miniku/miniku/schemas"
)

// The typo: a 2-replica replicaset of "ngnix" (not in the
// registry). Its pods used to go Failed with ErrImagePull and be replaced
// at once, hundreds a second. As in Kubernetes they stay: the same 2 pods,
// Pending, ErrImagePull then ImagePullBackOff, the pull retried after
// 200ms, 400ms, 800ms... (--image-pull-backoff 200ms), one Failed event
// per attempt.
func TestImagePullBackOffKeepsPods(t *testing.T) {
	c := newCluster(t)
	const base = 200 * time.Millisecond
	start(t, "miniku up", "up",
		"--data-dir", c.dataDir, "--api-addr", c.apiAddr, "--nats-addr", c.natsAddr,
		"--nodes", "2", "--registry-mirror", "http://"+c.registry,
		"--image-pull-backoff", base.String(), "--image-pull-backoff-max", "5s")
	eventually(t, 30*time.Second, func() error {
		if code, body := c.api.do("GET", "/healthz", ""); code != 200 {
			return fmt.Errorf("healthz: %d %s", code, body)
		}
		return nil
	})
	events := watchEvents(t, c.natsAddr, c.dataDir)
	a := c.api
	a.mustPost("/replicasets", `{"name":"typo","desiredCount":2,"selector":{"app":"typo"},"template":{"image":"ngnix","command":["sleep","1d"]}}`)

	names := map[string]bool{}
	reasons := map[string]bool{}
	const attempts = 5
	var pulls map[string][]time.Time
	eventually(t, 60*time.Second, func() error {
		pods, err := a.pods()
		if err != nil {
			return err
		}
		for _, p := range pods {
			if p.Owner != "typo" {
				continue
			}
			names[p.Name] = true
			if p.Status != schemas.PodPending {
				t.Fatalf("pod %s is %s (%s %s), want Pending", p.Name, p.Status, p.Reason, p.Message)
			}
			reasons[p.Reason] = true
			if strings.Contains(p.Message, "ErrImagePull") {
				t.Fatalf("pod %s: message repeats the reason: %q", p.Name, p.Message)
			}
		}
		if len(names) > 2 {
			t.Fatalf("the replicaset made %d pods, want its 2 kept: %v", len(names), names)
		}
		pulls = failedPulls(events)
		for name := range names {
			if n := len(pulls[name]); n < attempts {
				return fmt.Errorf("pod %s: %d failed pulls, want %d", name, n, attempts)
			}
		}
		if len(names) < 2 {
			return fmt.Errorf("%d pods", len(names))
		}
		return nil
	})
	if !reasons["ImagePullBackOff"] {
		t.Errorf("pod reasons seen %v, want ImagePullBackOff", reasons)
	}
	// Lower bounds only: a busy machine makes the gaps longer.
	for name, times := range pulls {
		want := base
		for i := 1; i < attempts; i++ {
			gap := times[i].Sub(times[i-1])
			t.Logf("pod %s: pull %d -> %d after %v (backoff %v)", name, i, i+1, gap.Round(time.Millisecond), want)
			if gap < want {
				t.Errorf("pod %s: pull %d -> %d after %v, want at least %v", name, i, i+1, gap, want)
			}
			want *= 2
		}
	}
	if err := events.has(firstKey(names), schemas.EventNormal, "BackOff", `pulling image "ngnix"`); err != nil {
		t.Error(err)
	}
	rs, err := a.replicaSet("typo")
	if err != nil {
		t.Fatal(err)
	}
	if rs.CurrentCount != 2 || rs.ReadyCount != 0 {
		t.Errorf("replicaset currentCount %d readyCount %d, want 2 and 0", rs.CurrentCount, rs.ReadyCount)
	}
}

// failedPulls is, per pod, the times of its Failed (pull) events.
func failedPulls(l *eventLog) map[string][]time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]time.Time{}
	for _, ev := range l.evs {
		if ev.Type == schemas.EventWarning && ev.Reason == "Failed" && strings.HasPrefix(ev.Message, `Failed to pull image "ngnix": `) {
			out[ev.Name] = append(out[ev.Name], ev.Time)
		}
	}
	for _, ts := range out {
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	}
	return out
}

func firstKey(m map[string]bool) string {
	for k := range m {
		return k
	}
	return ""
}
