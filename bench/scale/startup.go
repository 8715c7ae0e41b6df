package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	goruntime "runtime"
)

const busyboxPath = "/bin/busybox"

// localRegistry serves a busybox image as library/busybox:latest on
// loopback, so the benchmark pulls nothing from the internet.
func localRegistry() (addr string, stop func(), err error) {
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		return "", nil, fmt.Errorf("needs %s (apt-get install busybox-static): %w", busyboxPath, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body []byte) {
		h.Size = int64(len(body))
		_ = tw.WriteHeader(h)
		_, _ = tw.Write(body)
	}
	for _, d := range []string{"bin", "proc", "dev", "sys", "tmp", "etc", "root"} {
		add(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	}
	add(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755}, bin)
	for _, a := range []string{"sh", "sleep"} {
		add(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}, nil)
	}
	if err := tw.Close(); err != nil {
		return "", nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		return "", nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return "", nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", goruntime.GOARCH
	cf.Config = v1.Config{Cmd: []string{"sh"}, Env: []string{"PATH=/bin"}}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	go func() { _ = srv.Serve(l) }()
	addr = l.Addr().String()
	tag, err := name.NewTag(addr+"/library/busybox:latest", name.Insecure)
	if err == nil {
		err = remote.Write(tag, img)
	}
	if err != nil {
		srv.Close()
		return "", nil, fmt.Errorf("push busybox: %w", err)
	}
	return addr, func() { srv.Close() }, nil
}

// benchStartup is benchmark 4: pods of a local busybox image on one real
// node, POST to Running, posted at 10/s. The image is pulled once before
// (a warm node, as the reference measures).
func benchStartup(ctx context.Context, cfg config) ([]row, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("real containers need root")
	}
	reg, stopReg, err := localRegistry()
	if err != nil {
		return nil, err
	}
	defer stopReg()
	dir, err := workDir(cfg, "startup")
	if err != nil {
		return nil, err
	}
	cl, err := startCluster(cfg, dir, "--nodes", "1", "--registry-mirror", "http://"+reg)
	if err != nil {
		return nil, err
	}
	defer cl.stop()
	if err := cl.waitNodes(1, time.Minute); err != nil {
		return nil, err
	}
	w, err := cl.c.watchPods()
	if err != nil {
		return nil, err
	}
	defer w.stop()
	pod := func(name string) string {
		return fmt.Sprintf(`{"name":%q,"image":"busybox","command":["sleep","3600"],"terminationGracePeriodSeconds":1}`, name)
	}
	var names []string
	// Whatever happens, the containers go: delete every pod and wait until
	// they are gone (the kubelet stops and removes their containers).
	defer func() {
		for _, n := range names {
			_, _, _ = cl.c.do("DELETE", "/pods/"+n, "")
		}
		_ = poll(2*time.Minute, func() error {
			var pods []struct{ Name string }
			if err := cl.c.getJSON("/pods", &pods); err != nil {
				return err
			}
			if len(pods) > 0 {
				return fmt.Errorf("%d pods left", len(pods))
			}
			return nil
		})
	}()
	names = append(names, "warm")
	if err := cl.c.post("/pods", pod("warm")); err != nil {
		return nil, err
	}
	if err := w.waitRunning(1, 2*time.Minute); err != nil {
		return nil, fmt.Errorf("warm-up pod: %w", err)
	}
	posted := map[string]time.Time{}
	for i := range cfg.startupPods {
		n := fmt.Sprintf("start-%d", i)
		names = append(names, n)
		posted[n] = time.Now()
		if err := cl.c.post("/pods", pod(n)); err != nil {
			return nil, err
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := w.waitRunning(cfg.startupPods+1, 3*time.Minute); err != nil {
		return nil, err
	}
	w.mu.Lock()
	var lats []time.Duration
	for n, at := range posted {
		lats = append(lats, w.runAt[n].Sub(at))
	}
	w.mu.Unlock()
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	p99 := percentile(lats, 0.99)
	return []row{{fmt.Sprintf("4. Pod startup, real containers: %d pods, one node, 10/s", cfg.startupPods),
		fmt.Sprintf("p50 %s, p99 %s", ms(percentile(lats, 0.5)), ms(p99)), "p99 ≤ 250 ms",
		"Kubernetes SLO: p99 ≤ 5 s; podman run ≈ 0.8-1.6 s", met(p99 <= 250*time.Millisecond)}}, nil
}
