//go:build linux

package e2e

import (
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

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas"
)

// smallDisk mounts a fresh ext4 filesystem of size bytes on a loop device
// and returns its mount point; cleanup unmounts it and detaches the device.
// No blocks are reserved for root, so the test (root) fills it as any
// writer would.
func smallDisk(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a loop device needs root (CI runs the tests as root)")
	}
	for _, tool := range []string{"mkfs.ext4", "losetup", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: %v", tool, err)
		}
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skipf("no loop devices: %v", err)
	}
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "disk.img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
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
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("mkfs.ext4", "-q", "-F", "-m", "0", img)
	dev := run("losetup", "--find", "--show", img)
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v\n%s", dev, err, out)
		}
	})
	run("mount", dev, mnt)
	// Registered after the detach, so it runs before it; and after every
	// process the test starts later is killed.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", mnt, err, out)
		}
	})
	return mnt
}

// fill writes path until the filesystem has no room left.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for len(buf) > 0 {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", path, err)
			}
			buf = buf[:len(buf)/2] // the last blocks
		}
	}
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("fill %s: %v", path, err)
	}
}

// TestStoreDiskFull: `miniku up` with its data dir on a small disk that
// fills up refuses users' writes with 507 (not a 500, nothing half
// written), /readyz names the failing store check while /healthz stays ok,
// and once space is freed writes succeed again and /readyz is 200 without
// a restart: the JetStream file store's sticky write error is recovered.
func TestStoreDiskFull(t *testing.T) {
	mnt := smallDisk(t, 160<<20) // above the 64 MiB reserve with room to spare
	dataDir := filepath.Join(mnt, "data")
	apiAddr, natsAddr, metricsAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	start(t, "miniku up", "up", "--data-dir", dataDir, "--api-addr", apiAddr, "--nats-addr", natsAddr,
		"--metrics-addr", metricsAddr, "--nodes", "0")
	a := api{t: t, base: "http://" + apiAddr}
	ready := func() error {
		if code, body := a.do("GET", "/readyz", ""); code != 200 {
			return fmt.Errorf("readyz: %d %s", code, body)
		}
		return nil
	}
	eventually(t, 30*time.Second, ready)
	pod := func(name string) string { return `{"name":"` + name + `","image":"busybox","command":["sleep","1"]}` }
	if code, body := a.do("POST", "/pods", pod("before")); code != 201 {
		t.Fatalf("POST /pods before the disk fills: %d %s", code, body)
	}

	// Connected before the disk fills: connecting makes sure of the buckets.
	sys := busConnAs(t, "nats://"+natsAddr, dataDir, bus.UserController)
	filler := filepath.Join(mnt, "filler")
	fill(t, filler)
	// Users' writes are refused before they reach the store.
	var last string
	eventually(t, 10*time.Second, func() error {
		code, body := a.do("POST", "/pods", pod("full"))
		last = string(body)
		if code != 507 {
			return fmt.Errorf("POST /pods on a full disk: %d %s, want 507", code, body)
		}
		return nil
	})
	if !strings.Contains(last, "insufficient storage") {
		t.Errorf("507 body does not say why: %s", last)
	}
	if code, body := a.do("GET", "/pods/full", ""); code != 404 {
		t.Errorf("GET /pods/full after its refused create: %d %s, want 404", code, body)
	}
	// A writer the reserve does not stop (the components write through
	// NATS, not the apiserver) meets the full disk: JetStream's file
	// store for the pods fails and keeps failing until it is reopened.
	// Pods bigger than a block, so that one needs a block the disk has
	// not got (a small one may fit in the last block's slack).
	arg := strings.Repeat("x", 16<<10)
	var sysErr error
	for i := 0; i < 8 && sysErr == nil; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		sysErr = sys.Pods.Create(ctx, &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: fmt.Sprintf("wedge-%d", i)},
			PodSpec: schemas.PodSpec{Image: "busybox", Command: []string{"echo", arg}}})
		cancel()
	}
	t.Logf("a controller's create on the full disk: %v", sysErr)
	eventually(t, 20*time.Second, func() error {
		code, body := a.do("GET", "/readyz", "")
		if code != 503 || !strings.Contains(string(body), "[-]store-disk failed") || !strings.Contains(string(body), "[-]store-write failed") {
			return fmt.Errorf("readyz on a full disk: %d %s, want 503 naming store-disk and store-write", code, body)
		}
		return nil
	})
	if code, body := a.do("GET", "/healthz", ""); code != 200 {
		t.Errorf("healthz on a full disk: %d %s, want 200 (liveness is not storage)", code, body)
	}
	if code, body := a.do("GET", "/pods/before", ""); code != 200 {
		t.Errorf("GET /pods/before on a full disk: %d %s, want 200", code, body)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	eventually(t, 15*time.Second, func() error {
		code, body := a.do("POST", "/pods", pod("after"))
		switch code {
		case 201:
			return nil
		case 503, 507: // the guard has not looked yet, or is reopening
		default:
			t.Errorf("POST /pods after freeing the disk: %d %s, want 201, 503 or 507", code, body)
		}
		return fmt.Errorf("POST /pods after freeing the disk: %d %s", code, body)
	})
	t.Logf("writes succeed %v after the filler was removed", time.Since(freed).Round(time.Millisecond))
	eventually(t, 10*time.Second, ready)
	t.Logf("ready %v after the filler was removed", time.Since(freed).Round(time.Millisecond))
	for _, name := range []string{"before", "after"} {
		if code, body := a.do("GET", "/pods/"+name, ""); code != 200 {
			t.Errorf("GET /pods/%s after recovery: %d %s", name, code, body)
		}
	}

	code, body := (api{t: t, base: "http://" + metricsAddr}).do("GET", "/metrics", "")
	if code != 200 {
		t.Fatalf("GET /metrics: %d", code)
	}
	for _, m := range []string{"miniku_store_disk_free_bytes ", `miniku_store_messages{stream="KV_`, "miniku_store_recoveries_total "} {
		if !strings.Contains(string(body), m) {
			t.Errorf("/metrics has no %q", m)
		}
	}
	if strings.Contains(string(body), "miniku_store_recoveries_total 0\n") {
		t.Errorf("/metrics counts no recovery")
	}
}
