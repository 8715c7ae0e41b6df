package e2e

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/miniku/miniku/schemas"
)

// finished waits until pod name reaches a terminal phase and returns it.
func (c *cluster) finished(t *testing.T, name string) schemas.Pod {
	t.Helper()
	var p schemas.Pod
	eventually(t, 60*time.Second, func() error {
		if err := c.api.getJSON("/pods/"+name, &p); err != nil {
			return err
		}
		if p.Status != schemas.PodFailed && p.Status != schemas.PodSucceeded {
			return fmt.Errorf("pod %s is %s", name, p.Status)
		}
		return nil
	})
	return p
}

// TestRuntimeOOMKilled: a pod over its memory limit is killed by the
// kernel and reported as such.
func TestRuntimeOOMKilled(t *testing.T) {
	c := newCluster(t)
	c.up(t)
	pod := `{"name":"hog","image":"alpine","restartPolicy":"Never","resources":{"memory":"16Mi"},
		"command":["sh","-c","x=a; while true; do x=$x$x; done"]}`
	if code, body := c.api.do("POST", "/pods", pod); code != 201 {
		t.Fatalf("POST /pods: %d %s", code, body)
	}
	p := c.finished(t, "hog")
	if p.Status != schemas.PodFailed || p.Reason != "OOMKilled" || p.ExitCode == nil || *p.ExitCode != 137 {
		t.Errorf("memory hog: status %s reason %q exit %v, want Failed, OOMKilled, 137", p.Status, p.Reason, p.ExitCode)
	}
}

// TestRuntimeExitWhileKubeletDown: a container that exits while its kubelet
// is killed gets its real exit code reported after the kubelet restarts.
func TestRuntimeExitWhileKubeletDown(t *testing.T) {
	c := newCluster(t)
	up := c.up(t)
	pod := `{"name":"orphan","image":"alpine","restartPolicy":"Never",
		"command":["sh","-c","trap 'exit 7' USR1; echo trapped; while true; do sleep 0.1; done"]}`
	if code, body := c.api.do("POST", "/pods", pod); code != 201 {
		t.Fatalf("POST /pods: %d %s", code, body)
	}
	var p schemas.Pod
	eventually(t, 60*time.Second, func() error {
		if err := c.api.getJSON("/pods/orphan", &p); err != nil {
			return err
		}
		if p.Status != schemas.PodRunning {
			return fmt.Errorf("pod is %s", p.Status)
		}
		return nil
	})
	// A USR1 before the trap is set would kill the shell (138).
	waitLogged(t, c.dataDir, "orphan", "trapped")
	up.kill()
	ctr, ok := liveContainers(t, c.dataDir)[p.ContainerID]
	if !ok {
		t.Fatalf("container %s not running after kill -9", p.ContainerID)
	}
	if err := syscall.Kill(ctr.Pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		if _, ok := liveContainers(t, c.dataDir)[p.ContainerID]; ok {
			return fmt.Errorf("container still running")
		}
		return nil
	})
	c.up(t)
	p = c.finished(t, "orphan")
	if p.Status != schemas.PodFailed || p.ExitCode == nil || *p.ExitCode != 7 || p.Reason != "Error" || p.FinishedAt == nil {
		t.Errorf("after the kubelet restarted: status %s reason %q exit %v finished %v, want Failed, Error, 7",
			p.Status, p.Reason, p.ExitCode, p.FinishedAt)
	}
}
