package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/miniku/miniku/runtime/image/imagetest"
	"github.com/miniku/miniku/schemas"
)

// upEvict starts `miniku up` with one node, fast eviction monitoring and a
// short pressure transition period, plus extra flags.
func (c *cluster) upEvict(t *testing.T, extra ...string) *proc {
	t.Helper()
	args := append([]string{"up",
		"--data-dir", c.dataDir, "--api-addr", c.apiAddr, "--nats-addr", c.natsAddr,
		"--nodes", "1", "--registry-mirror", "http://" + c.registry,
		"--heartbeat-interval", "500ms", "--node-grace", "3s", "--eviction-timeout", "3s",
		"--eviction-monitoring-interval", "300ms", "--eviction-pressure-transition-period", "2s"}, extra...)
	p := start(t, "miniku up", args...)
	eventually(t, 30*time.Second, func() error {
		if code, body := c.api.do("GET", "/healthz", ""); code != 200 {
			return fmt.Errorf("healthz: %d %s", code, body)
		}
		return nil
	})
	return p
}

// waitEvicted waits for pod name to be Failed with reason Evicted and an
// Evicted event, and returns it.
func waitEvicted(t *testing.T, a api, name string) schemas.Pod {
	t.Helper()
	p := waitPhase(t, a, name, schemas.PodFailed)
	if p.Reason != "Evicted" {
		t.Fatalf("pod %s is Failed with reason %q (%s), want Evicted", name, p.Reason, p.Message)
	}
	eventually(t, 10*time.Second, func() error {
		var evs []schemas.ObjectEvent
		if err := a.getJSON("/events", &evs); err != nil {
			return err
		}
		for _, e := range evs {
			if e.Kind == schemas.KindPod && e.Name == name && e.Reason == "Evicted" && e.Type == schemas.EventWarning {
				return nil
			}
		}
		return fmt.Errorf("no Evicted event for pod %s among %d events", name, len(evs))
	})
	return p
}

func nodeCondition(t *testing.T, a api, node, typ string) schemas.NodeCondition {
	t.Helper()
	var n schemas.Node
	if err := a.getJSON("/nodes/"+node, &n); err != nil {
		t.Fatal(err)
	}
	c, _ := n.Condition(typ)
	return c
}

func waitCondition(t *testing.T, a api, node, typ, status string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, func() error {
		var n schemas.Node
		if err := a.getJSON("/nodes/"+node, &n); err != nil {
			return err
		}
		if c, _ := n.Condition(typ); c.Status != status {
			return fmt.Errorf("node %s %s is %q (%s), want %s", node, typ, c.Status, c.Message, status)
		}
		return nil
	})
}

// TestEvictionEphemeralStorageLimit: a pod writing past its
// ephemeral-storage limit into its writable layer is evicted, with an
// event, and its container stopped; a pod within its limit is left alone.
func TestEvictionEphemeralStorageLimit(t *testing.T) {
	c := newCluster(t)
	c.upEvict(t)
	a := c.api
	a.mustPost("/pods", `{"name":"filler","image":"alpine","restartPolicy":"Never","resources":{"ephemeral-storage":"8Mi"},
		"command":["sh","-c","head -c 20971520 /dev/zero > /fill; echo filled; sleep 1000"]}`)
	a.mustPost("/pods", `{"name":"modest","image":"alpine","restartPolicy":"Never","resources":{"ephemeral-storage":"64Mi"},
		"command":["sh","-c","head -c 1048576 /dev/zero > /fill; sleep 1000"]}`)
	waitPhase(t, a, "modest", schemas.PodRunning)

	p := waitEvicted(t, a, "filler")
	if !strings.Contains(p.Message, "ephemeral local storage") || !strings.Contains(p.Message, "8Mi") {
		t.Errorf("message %q, want it to name the ephemeral-storage limit", p.Message)
	}
	eventually(t, 30*time.Second, func() error {
		for _, ctr := range containersOf(t, c.dataDir, "filler") {
			if ctr.Status == "running" {
				return fmt.Errorf("the evicted pod's container %s still runs", ctr.ID)
			}
		}
		return nil
	})
	if m, ok, err := a.getPod("modest"); err != nil || !ok || m.Status != schemas.PodRunning {
		t.Errorf("pod within its limit: %s %s (%v)", m.Status, m.Reason, err)
	}
	if cond := nodeCondition(t, a, "node-1", schemas.NodeDiskPressure); cond.Status != "False" {
		t.Errorf("a pod over its own limit is no node pressure, but DiskPressure is %+v", cond)
	}
}

// loopFS mounts a fresh ext4 filesystem of size bytes at a new directory and
// returns it; it is unmounted and its loop device detached at cleanup, after
// the cleanups registered later (the cluster's processes and containers).
func loopFS(t *testing.T, size int64) string {
	t.Helper()
	for _, tool := range []string{"mkfs.ext4", "losetup", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "fs.img")
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 0); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	if err != nil {
		t.Skipf("losetup (no loop devices here?): %v\n%s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v\n%s", dev, err, out)
		}
	})
	if out, err := exec.Command("mount", dev, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount %s: %v\n%s", dev, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", mnt, err, out)
			_ = exec.Command("umount", "-l", mnt).Run()
		}
	})
	return mnt
}

// TestEvictionNodeDiskPressure: with the data dir on a small filesystem, a
// pod without limits filling it past nodefs.available<10% turns the node's
// DiskPressure True; unused images are collected first (never the one the
// pod runs), then the pod is evicted; once its container is gone the
// condition clears.
func TestEvictionNodeDiskPressure(t *testing.T) {
	requireRoot(t)
	mnt := loopFS(t, 160<<20)
	c := newCluster(t)
	c.dataDir = mnt

	// An image no container uses, there to be collected.
	unused := imagetest.NewImage(t, v1.Config{}, imagetest.Layer(t, imagetest.TarBytes(t,
		imagetest.TarEntry{Name: "data", Body: strings.Repeat("u", 1<<20)})))
	out, err := exec.Command(miniku(t), "images", "import", "--data-dir", mnt,
		imagetest.DockerArchive(t, "unused:1", unused)).CombinedOutput()
	if err != nil {
		t.Fatalf("images import: %v\n%s", err, out)
	}
	c.upEvict(t, "--image-minimum-gc-age", "1ms")
	a := c.api
	waitCondition(t, a, "node-1", schemas.NodeDiskPressure, "False", 30*time.Second)

	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	capacity, avail := int64(st.Blocks)*st.Bsize, int64(st.Bavail)*st.Bsize
	fill := avail - capacity/20 // leave 5 %: below the 10 % threshold
	t.Logf("filesystem %d MiB, %d MiB free; the pod writes %d MiB", capacity>>20, avail>>20, fill>>20)
	a.mustPost("/pods", fmt.Sprintf(`{"name":"hog","image":"alpine","restartPolicy":"Never",
		"command":["sh","-c","head -c %d /dev/zero > /fill; echo filled; sleep 1000"]}`, fill))

	waitCondition(t, a, "node-1", schemas.NodeDiskPressure, "True", 60*time.Second)
	p := waitEvicted(t, a, "hog")
	if p.Message != "The node was low on resource: ephemeral-storage." {
		t.Errorf("message %q, want Kubernetes' disk pressure message", p.Message)
	}
	ls, err := exec.Command(miniku(t), "images", "ls", "--data-dir", mnt).CombinedOutput()
	if err != nil {
		t.Fatalf("images ls: %v\n%s", err, ls)
	}
	if strings.Contains(string(ls), "unused:1") {
		t.Errorf("the unused image survived disk pressure:\n%s", ls)
	}
	if !strings.Contains(string(ls), "library/alpine:latest") {
		t.Errorf("image GC removed the image the pod runs:\n%s", ls)
	}

	// The evicted pod's writable layer goes with its container.
	deletePod(t, a, "/pods/hog")
	waitGone(t, a, c.dataDir, "hog", 60*time.Second)
	waitCondition(t, a, "node-1", schemas.NodeDiskPressure, "False", 30*time.Second)
}
