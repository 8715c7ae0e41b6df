package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	mkrt "github.com/miniku/miniku/runtime"
	"github.com/miniku/miniku/schemas"
)

// Short crash-loop backoff for the tests: restarts after 0, 300ms, 600ms,
// 1.2s, 2.4s, then 5s.
const (
	testBackoff    = 300 * time.Millisecond
	testBackoffMax = 5 * time.Second
)

func (c *cluster) upLifecycle(t *testing.T) *proc {
	t.Helper()
	p := start(t, "miniku up", "up",
		"--data-dir", c.dataDir, "--api-addr", c.apiAddr, "--nats-addr", c.natsAddr,
		"--nodes", "2", "--registry-mirror", "http://"+c.registry,
		"--heartbeat-interval", "500ms", "--node-grace", "3s", "--eviction-timeout", "3s",
		"--restart-backoff", testBackoff.String(), "--restart-backoff-max", testBackoffMax.String())
	eventually(t, 30*time.Second, func() error {
		if code, body := c.api.do("GET", "/healthz", ""); code != 200 {
			return fmt.Errorf("healthz: %d %s", code, body)
		}
		return nil
	})
	return p
}

// getPod returns the pod, or ok=false on 404.
func (a api) getPod(name string) (p schemas.Pod, ok bool, err error) {
	code, body := a.do("GET", "/pods/"+name, "")
	switch code {
	case 404:
		return p, false, nil
	case 200:
		return p, true, json.Unmarshal(body, &p)
	}
	return p, false, fmt.Errorf("GET /pods/%s: %d %s", name, code, body)
}

func (a api) mustPost(path, body string) {
	a.t.Helper()
	if code, resp := a.do("POST", path, body); code != 201 {
		a.t.Fatalf("POST %s: %d %s", path, code, resp)
	}
}

// containersOf lists the pod's containers on all nodes, in any state.
func containersOf(t *testing.T, dataDir, pod string) []mkrt.Container {
	t.Helper()
	var out []mkrt.Container
	roots, _ := filepath.Glob(filepath.Join(dataDir, "nodes", "*", "containers"))
	for _, root := range roots {
		rt, err := mkrt.New(root, nil)
		if err != nil {
			t.Fatal(err)
		}
		list, err := rt.List()
		_ = rt.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range list {
			if c.Labels["miniku.pod"] == pod {
				out = append(out, c)
			}
		}
	}
	return out
}

func waitPhase(t *testing.T, a api, name string, phase schemas.PodPhase) schemas.Pod {
	t.Helper()
	var p schemas.Pod
	eventually(t, 60*time.Second, func() error {
		got, ok, err := a.getPod(name)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("pod %s not found", name)
		}
		if got.Status != phase {
			return fmt.Errorf("pod %s is %s (%s %s), want %s", name, got.Status, got.Reason, got.Message, phase)
		}
		p = got
		return nil
	})
	return p
}

// waitGone waits until the pod object and all its containers are gone.
func waitGone(t *testing.T, a api, dataDir, name string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, func() error {
		p, ok, err := a.getPod(name)
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("pod %s still there: %s deletionTimestamp %v", name, p.Status, p.DeletionTimestamp)
		}
		if n := len(containersOf(t, dataDir, name)); n != 0 {
			return fmt.Errorf("pod %s deleted but %d containers left", name, n)
		}
		return nil
	})
}

// deletePod sends DELETE and checks the reply carries deletionTimestamp.
func deletePod(t *testing.T, a api, path string) schemas.Pod {
	t.Helper()
	code, body := a.do("DELETE", path, "")
	if code != 200 {
		t.Fatalf("DELETE %s: %d %s", path, code, body)
	}
	var p schemas.Pod
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if p.DeletionTimestamp == nil || !strings.Contains(string(body), `"deletionTimestamp"`) {
		t.Fatalf("DELETE %s: reply without deletionTimestamp: %s", path, body)
	}
	return p
}

// eventLog collects the Kubernetes-style events of pods.
type eventLog struct {
	mu  sync.Mutex
	evs []schemas.ObjectEvent
}

func watchEvents(t *testing.T, natsAddr, dataDir string) *eventLog {
	t.Helper()
	nc := viewerNATS(t, "nats://"+natsAddr, dataDir)
	l := &eventLog{}
	if _, err := nc.Subscribe("event.pod.>", func(m *nats.Msg) {
		// One message may hold several events about one pod.
		if evs, err := schemas.UnmarshalEvents(m.Data); err == nil {
			l.mu.Lock()
			l.evs = append(l.evs, evs...)
			l.mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *eventLog) has(pod, typ, reason, msg string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ev := range l.evs {
		if ev.Name == pod && ev.Type == typ && ev.Reason == reason && strings.Contains(ev.Message, msg) &&
			ev.Component == "kubelet" && strings.HasPrefix(ev.Node, "node-") {
			return nil
		}
	}
	return fmt.Errorf("no %s %s event %q for pod %s", typ, reason, msg, pod)
}

func TestPodLifecycle(t *testing.T) {
	c := newCluster(t)
	c.upLifecycle(t)
	events := watchEvents(t, c.natsAddr, c.dataDir)
	a := c.api

	t.Run("CrashLoopBackOff", func(t *testing.T) {
		a := api{t: t, base: a.base}
		a.mustPost("/pods", `{"name":"crash","image":"busybox","command":["sh","-c","exit 1"]}`)
		// startedAt of the container after each restart; the restart after
		// n crashes in a row waits Delay(n) after the previous exit.
		started := map[int]time.Time{}
		sawBackOff := false
		const restarts = 5
		eventually(t, 90*time.Second, func() error {
			p, ok, err := a.getPod("crash")
			if err != nil || !ok {
				return fmt.Errorf("pod crash: %v found=%v", err, ok)
			}
			if p.Status.Terminal() {
				t.Fatalf("restartPolicy Always but pod became %s (%s %s)", p.Status, p.Reason, p.Message)
			}
			if p.StartedAt != nil {
				if _, seen := started[p.RestartCount]; !seen {
					started[p.RestartCount] = *p.StartedAt
				}
			}
			if p.Reason == "CrashLoopBackOff" {
				if p.Status != schemas.PodRunning || !strings.HasPrefix(p.Message, "back-off ") ||
					!strings.HasSuffix(p.Message, " restarting failed container") || p.ExitCode == nil || *p.ExitCode != 1 {
					t.Fatalf("backing off pod: %s %q exitCode %v", p.Status, p.Message, p.ExitCode)
				}
				sawBackOff = true
			}
			if p.RestartCount < restarts {
				return fmt.Errorf("restartCount %d, want %d", p.RestartCount, restarts)
			}
			return nil
		})
		if !sawBackOff {
			t.Errorf("never saw reason CrashLoopBackOff")
		}
		// Lower bounds only: a busy machine makes the gaps longer, never
		// shorter. A hot loop (no backoff) fails here.
		want := testBackoff
		for r := 1; r < restarts; r++ {
			a, b := started[r], started[r+1]
			if a.IsZero() || b.IsZero() {
				continue // polled past it
			}
			gap := b.Sub(a)
			t.Logf("restart %d -> %d: %v (backoff %v)", r, r+1, gap.Round(time.Millisecond), want)
			if gap < want {
				t.Errorf("restart %d -> %d after %v, want at least the %v backoff", r, r+1, gap, want)
			}
			want *= 2
		}
		if len(started) < 3 {
			t.Errorf("observed too few restarts to check the backoff: %v", started)
		}
		// Restarts replace the container in place: never more than one.
		if n := len(containersOf(t, c.dataDir, "crash")); n > 1 {
			t.Errorf("%d containers for one crash-looping pod", n)
		}
		eventually(t, 10*time.Second, func() error {
			return events.has("crash", schemas.EventWarning, "BackOff", "Back-off restarting failed container")
		})
		for _, r := range []string{"Pulled", "Created", "Started"} {
			if err := events.has("crash", schemas.EventNormal, r, ""); err != nil {
				t.Error(err)
			}
		}
		deletePod(t, a, "/pods/crash")
		waitGone(t, a, c.dataDir, "crash", 30*time.Second)
	})

	t.Run("OnFailureExit0Succeeds", func(t *testing.T) {
		a := api{t: t, base: a.base}
		a.mustPost("/pods", `{"name":"ok","image":"busybox","command":["sh","-c","exit 0"],"restartPolicy":"OnFailure"}`)
		p := waitPhase(t, a, "ok", schemas.PodSucceeded)
		if p.ExitCode == nil || *p.ExitCode != 0 || p.RestartCount != 0 {
			t.Fatalf("pod ok: exitCode %v restartCount %d", p.ExitCode, p.RestartCount)
		}
	})

	t.Run("NeverExit3Fails", func(t *testing.T) {
		a := api{t: t, base: a.base}
		a.mustPost("/pods", `{"name":"bad","image":"busybox","command":["sh","-c","exit 3"],"restartPolicy":"Never"}`)
		p := waitPhase(t, a, "bad", schemas.PodFailed)
		if p.ExitCode == nil || *p.ExitCode != 3 || p.RestartCount != 0 || p.Reason != "Error" {
			t.Fatalf("pod bad: exitCode %v restartCount %d reason %s", p.ExitCode, p.RestartCount, p.Reason)
		}
		// A terminal pod's delete still goes through the kubelet, which
		// removes the exited container.
		deletePod(t, a, "/pods/bad")
		waitGone(t, a, c.dataDir, "bad", 30*time.Second)
	})

	t.Run("GracefulDeleteTrapsTERM", func(t *testing.T) {
		a := api{t: t, base: a.base}
		// A 10-minute grace: only SIGTERM can make this quick.
		a.mustPost("/pods", `{"name":"trap","image":"busybox","terminationGracePeriodSeconds":600,
			"command":["sh","-c","trap 'exit 0' TERM; echo trapped; sleep 1000 & wait"]}`)
		waitPhase(t, a, "trap", schemas.PodRunning)
		// A SIGTERM before the shell has set its trap would kill it
		// (143) instead of running the trap, so wait until it has.
		eventually(t, 30*time.Second, func() error {
			for _, ctr := range containersOf(t, c.dataDir, "trap") {
				if out, _ := os.ReadFile(ctr.LogPath); strings.Contains(string(out), "trapped") {
					return nil
				}
			}
			return fmt.Errorf("trap not set yet")
		})
		begin := time.Now()
		p := deletePod(t, a, "/pods/trap")
		if *p.DeletionGracePeriodSeconds != 600 {
			t.Errorf("deletionGracePeriodSeconds %d, want the pod's 600", *p.DeletionGracePeriodSeconds)
		}
		waitGone(t, a, c.dataDir, "trap", 60*time.Second)
		t.Logf("DELETE to gone, container exiting on SIGTERM: %v", time.Since(begin))
		if err := events.has("trap", schemas.EventNormal, "Killing", "Stopping container"); err != nil {
			t.Error(err)
		}
	})

	t.Run("GracefulDeleteIgnoresTERM", func(t *testing.T) {
		a := api{t: t, base: a.base}
		// SIGTERM reaches the shell (the container's init forwards it),
		// which ignores it.
		a.mustPost("/pods", `{"name":"stubborn","image":"busybox","terminationGracePeriodSeconds":2,
			"command":["sh","-c","trap '' TERM; echo ignoring; while true; do sleep 0.1; done"]}`)
		waitPhase(t, a, "stubborn", schemas.PodRunning)
		waitLogged(t, c.dataDir, "stubborn", "ignoring")
		begin := time.Now()
		deletePod(t, a, "/pods/stubborn")
		// Terminating: still there, still running, for the grace period.
		p, ok, err := a.getPod("stubborn")
		if err != nil {
			t.Fatal(err)
		}
		if ok && p.DeletionTimestamp == nil {
			t.Fatalf("pod not Terminating after DELETE: %+v", p)
		}
		waitGone(t, a, c.dataDir, "stubborn", 30*time.Second)
		took := time.Since(begin)
		t.Logf("DELETE to gone, container ignoring SIGTERM, grace 2s: %v", took)
		if took < 2*time.Second {
			t.Errorf("gone after %v, before its 2s grace", took)
		}
	})

	t.Run("SecondDeleteShortensGrace", func(t *testing.T) {
		a := api{t: t, base: a.base}
		a.mustPost("/pods", `{"name":"long","image":"busybox","terminationGracePeriodSeconds":600,
			"command":["sh","-c","trap '' TERM; echo ignoring; while true; do sleep 0.1; done"]}`)
		waitPhase(t, a, "long", schemas.PodRunning)
		waitLogged(t, c.dataDir, "long", "ignoring")
		deletePod(t, a, "/pods/long")
		p := deletePod(t, a, "/pods/long?gracePeriodSeconds=1")
		if *p.DeletionGracePeriodSeconds != 1 {
			t.Fatalf("deletionGracePeriodSeconds %d, want 1", *p.DeletionGracePeriodSeconds)
		}
		// The stop already waiting out 600 s is replaced by a 1 s one.
		waitGone(t, a, c.dataDir, "long", 60*time.Second)
	})

	t.Run("DeleteReplicaSet", func(t *testing.T) {
		a := api{t: t, base: a.base}
		a.mustPost("/replicasets", `{"name":"rs","desiredCount":2,"selector":{"app":"rs"},
			"template":{"image":"busybox","command":["sh","-c","trap '' TERM; while true; do sleep 0.1; done"],"terminationGracePeriodSeconds":2}}`)
		var pods []schemas.Pod
		eventually(t, 60*time.Second, func() (err error) { pods, err = running(a, "rs", 2); return err })
		if code, body := a.do("DELETE", "/replicasets/rs", ""); code != 200 {
			t.Fatalf("DELETE /replicasets/rs: %d %s", code, body)
		}
		// Both pods go Terminating (they take their 2 s grace)...
		eventually(t, 10*time.Second, func() error {
			for _, want := range pods {
				p, ok, err := a.getPod(want.Name)
				if err != nil {
					return err
				}
				if ok && p.DeletionTimestamp == nil {
					return fmt.Errorf("pod %s not Terminating", p.Name)
				}
			}
			return nil
		})
		// ...and then disappear with their containers; no replacements.
		for _, p := range pods {
			waitGone(t, a, c.dataDir, p.Name, 30*time.Second)
		}
		all, err := a.pods()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range all {
			if p.Owner == "rs" {
				t.Errorf("pod %s of the deleted replicaset is left", p.Name)
			}
		}
	})

	t.Run("ScaleDownIsGraceful", func(t *testing.T) {
		a := api{t: t, base: a.base}
		a.mustPost("/replicasets", `{"name":"sd","desiredCount":3,"selector":{"app":"sd"},
			"template":{"image":"busybox","command":["sh","-c","trap '' TERM; while true; do sleep 0.1; done"],"terminationGracePeriodSeconds":2}}`)
		eventually(t, 60*time.Second, func() error { _, err := running(a, "sd", 3); return err })
		rs, err := a.replicaSet("sd")
		if err != nil {
			t.Fatal(err)
		}
		rs.DesiredCount = 1
		body, _ := json.Marshal(rs)
		if code, resp := a.do("PUT", "/replicasets/sd", string(body)); code != 200 {
			t.Fatalf("PUT: %d %s", code, resp)
		}
		eventually(t, 30*time.Second, func() error {
			pods, err := a.pods()
			if err != nil {
				return err
			}
			n := 0
			for _, p := range pods {
				if p.Owner == "sd" {
					n++
				}
			}
			if n != 1 {
				return fmt.Errorf("%d pods of sd, want 1", n)
			}
			return nil
		})
		if code, body := a.do("DELETE", "/replicasets/sd", ""); code != 200 {
			t.Fatalf("DELETE: %d %s", code, body)
		}
		eventually(t, 30*time.Second, func() error {
			if n := len(liveContainers(t, c.dataDir)); n != 0 {
				return fmt.Errorf("%d containers still running", n)
			}
			return nil
		})
	})
}

// kill -9 of everything while a pod is Terminating and another is backing
// off: the restarted kubelets finish the delete and continue the backoff
// where it was instead of restarting the crashing container at once.
func TestLifecycleSurvivesRestart(t *testing.T) {
	c := newCluster(t)
	up := c.upLifecycle(t)
	a := c.api
	a.mustPost("/pods", `{"name":"crash","image":"busybox","command":["sh","-c","exit 1"]}`)
	a.mustPost("/pods", `{"name":"slow","image":"busybox","terminationGracePeriodSeconds":5,
		"command":["sh","-c","trap '' TERM; echo ignoring; while true; do sleep 0.1; done"]}`)
	slow := waitPhase(t, a, "slow", schemas.PodRunning)
	waitLogged(t, c.dataDir, "slow", "ignoring")

	// After 5 restarts the next one waits 4.8 s (300ms doubling, 5 s cap),
	// longer than the restart of miniku takes.
	const restarts = 5
	var before schemas.Pod
	eventually(t, 60*time.Second, func() error {
		p, ok, err := a.getPod("crash")
		if err != nil || !ok {
			return fmt.Errorf("pod crash: %v found=%v", err, ok)
		}
		if p.RestartCount != restarts || p.Reason != "CrashLoopBackOff" || p.FinishedAt == nil {
			return fmt.Errorf("restartCount %d reason %q, want %d and CrashLoopBackOff", p.RestartCount, p.Reason, restarts)
		}
		before = p
		return nil
	})
	deletePod(t, a, "/pods/slow")
	up.kill()
	if _, ok := liveContainers(t, c.dataDir)[slow.ContainerID]; !ok {
		t.Fatalf("container %s of the Terminating pod should survive kill -9 (5 s grace)", slow.ContainerID)
	}
	c.upLifecycle(t)
	got, ok, err := a.getPod("slow")
	if err != nil {
		t.Fatal(err)
	}
	if ok && got.DeletionTimestamp == nil {
		t.Fatalf("pod lost its deletionTimestamp over the restart: %+v", got)
	}
	waitGone(t, a, c.dataDir, "slow", 30*time.Second)

	var after schemas.Pod
	eventually(t, 60*time.Second, func() error {
		p, ok, err := a.getPod("crash")
		if err != nil || !ok {
			return fmt.Errorf("pod crash: %v found=%v", err, ok)
		}
		if p.RestartCount <= restarts {
			return fmt.Errorf("restartCount %d, want > %d", p.RestartCount, restarts)
		}
		after = p
		return nil
	})
	if after.RestartCount != restarts+1 {
		t.Errorf("restartCount jumped from %d to %d over a kubelet restart", restarts, after.RestartCount)
	}
	gap := after.StartedAt.Sub(*before.FinishedAt)
	t.Logf("exit to restart across a kill -9 of miniku up: %v (backoff 4.8s)", gap.Round(time.Millisecond))
	if gap < 4800*time.Millisecond {
		t.Errorf("restarted %v after the exit, want at least the 4.8 s backoff", gap)
	}
}
