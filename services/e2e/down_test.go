package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const downRS = `{"name":"downtest","desiredCount":2,"selector":{"app":"downtest"},"template":{"image":"alpine","command":["/bin/sh","-c","while true; do sleep 1; done"]}}`

// runMiniku runs one short miniku command and returns its output and
// exit error.
func runMiniku(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, miniku(t), args...)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+configHome(t))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// cgroupsOf lists the cgroup directories process pid is in.
func cgroupsOf(t *testing.T, pid int) []string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var dirs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controllers:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 || parts[2] == "/" {
			continue
		}
		base := "/sys/fs/cgroup"
		if parts[1] != "" { // v1: one hierarchy per controller list
			base = filepath.Join(base, strings.TrimPrefix(strings.Split(parts[1], ",")[0], "name="))
		}
		dirs = append(dirs, filepath.Join(base, parts[2]))
	}
	return dirs
}

func alive(pid int) bool { return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }

// mountsUnder lists the mount points under dir in this mount namespace.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir) {
			out = append(out, f[4])
		}
	}
	return out
}

// TestDown: containers outlive a stopped `up`; `miniku down` refuses while
// a kubelet of the data dir runs, then stops every container (no process,
// no cgroup, no mount left) and keeps the data; `down --purge` removes the
// data dir.
func TestDown(t *testing.T) {
	c := newCluster(t)
	up := c.up(t)
	if code, body := c.api.do("POST", "/replicasets", downRS); code != 201 {
		t.Fatalf("POST /replicasets: %d %s", code, body)
	}
	eventually(t, 60*time.Second, func() error { _, err := running(c.api, "downtest", 2); return err })
	live := liveContainers(t, c.dataDir)
	if len(live) != 2 {
		t.Fatalf("%d live containers, want 2: %v", len(live), live)
	}
	pids := map[int][]string{}
	for _, ct := range live {
		pids[ct.Pid] = cgroupsOf(t, ct.Pid)
		if len(pids[ct.Pid]) == 0 {
			t.Fatalf("container %s (pid %d) is in no cgroup of its own", ct.ID, ct.Pid)
		}
		for _, cg := range pids[ct.Pid] {
			if _, err := os.Stat(filepath.Dir(cg)); err != nil {
				t.Fatalf("the node cgroup of container %s: %v", ct.ID, err)
			}
		}
	}

	// While up's kubelets run, down would race them: it refuses.
	out, err := runMiniku(t, "down", "--data-dir", c.dataDir)
	if err == nil || !strings.Contains(out, "run by a kubelet") {
		t.Fatalf("down while up runs: err %v, output:\n%s", err, out)
	}
	for pid := range pids {
		if !alive(pid) {
			t.Fatalf("a refused down killed container pid %d", pid)
		}
	}

	// Ctrl-C: up stops, says what keeps running and how to stop it.
	if err := up.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-up.done:
	case <-time.After(30 * time.Second):
		t.Fatal("up did not stop on SIGINT")
	}
	if o := up.output(); !strings.Contains(o, "miniku down") || !strings.Contains(o, "containers=2") {
		t.Errorf("up's last words do not say that 2 containers keep running and 'miniku down' stops them:\n%s", o)
	}
	for pid := range pids {
		if !alive(pid) {
			t.Fatalf("container pid %d did not outlive up", pid)
		}
	}

	out, err = runMiniku(t, "down", "--data-dir", c.dataDir, "--grace", "1s")
	if err != nil {
		t.Fatalf("down: %v\n%s", err, out)
	}
	t.Logf("down: %s", out)
	for pid, cgs := range pids {
		if alive(pid) {
			t.Errorf("container pid %d still runs after down", pid)
		}
		// The container's cgroup and its node's (its parent, one per
		// node directory) go.
		for _, cg := range cgs {
			cg := filepath.Dir(cg)
			if _, err := os.Stat(cg); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("cgroup %s of pid %d left after down (%v)", cg, pid, err)
			}
		}
	}
	if m := mountsUnder(t, c.dataDir); len(m) > 0 {
		t.Errorf("mounts left under the data dir: %v", m)
	}
	dirs, _ := filepath.Glob(filepath.Join(c.dataDir, "nodes", "*", "containers", "*"))
	if len(dirs) > 0 {
		t.Errorf("container directories left: %v", dirs)
	}
	// The data stays: the store, and the token.
	for _, keep := range []string{"nats", "token"} {
		if _, err := os.Stat(filepath.Join(c.dataDir, keep)); err != nil {
			t.Errorf("down removed data: %v", err)
		}
	}

	out, err = runMiniku(t, "down", "--data-dir", c.dataDir, "--purge")
	if err != nil {
		t.Fatalf("down --purge: %v\n%s", err, out)
	}
	if _, err := os.Stat(c.dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("down --purge left the data dir: %v", err)
	}
}

// TestUpFewerNodesStopsStaleNode: `up --nodes 1` after a run with 2 nodes
// stops node-2's containers, which no kubelet would ever stop, logs it,
// and adopts node-1's.
func TestUpFewerNodesStopsStaleNode(t *testing.T) {
	c := newCluster(t)
	up := c.up(t)
	rs := strings.ReplaceAll(strings.Replace(downRS, `"desiredCount":2`, `"desiredCount":4`, 1), "downtest", "stale")
	if code, body := c.api.do("POST", "/replicasets", rs); code != 201 {
		t.Fatalf("POST /replicasets: %d %s", code, body)
	}
	eventually(t, 60*time.Second, func() error { _, err := running(c.api, "stale", 4); return err })
	byNode := liveContainersByNode(t, c.dataDir)
	if len(byNode["node-1"]) == 0 || len(byNode["node-2"]) == 0 {
		t.Fatalf("want containers on both nodes, got %v", byNode)
	}
	if err := up.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-up.done:
	case <-time.After(30 * time.Second):
		t.Fatal("up did not stop on SIGINT")
	}
	up1 := start(t, "miniku up --nodes 1", "up",
		"--data-dir", c.dataDir, "--api-addr", c.apiAddr, "--nats-addr", c.natsAddr,
		"--nodes", "1", "--registry-mirror", "http://"+c.registry,
		"--heartbeat-interval", "500ms", "--node-grace", "3s", "--eviction-timeout", "3s")
	eventually(t, 30*time.Second, func() error {
		for _, ct := range byNode["node-2"] {
			if alive(ct.Pid) {
				return fmt.Errorf("node-2's container %s (pid %d) still runs", ct.ID, ct.Pid)
			}
		}
		if o := up1.output(); !strings.Contains(o, "no longer runs") || !strings.Contains(o, "node=node-2") {
			return errors.New("up --nodes 1 did not log that it stopped node-2's containers")
		}
		return nil
	})
	for _, ct := range byNode["node-1"] {
		if !alive(ct.Pid) {
			t.Errorf("node-1's container %s (pid %d) was stopped; up --nodes 1 should adopt it", ct.ID, ct.Pid)
		}
	}
	if left := liveContainersByNode(t, c.dataDir)["node-2"]; len(left) > 0 {
		t.Errorf("node-2 still lists running containers: %v", left)
	}
}
