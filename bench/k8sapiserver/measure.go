package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// measure starts `miniku up` and this program's generic server one after
// the other, each on its own, and reports for each: the binary's size, the
// process's RSS after it idled, and the latency of n sequential GETs of
// one pod over HTTPS with a bearer token (keep-alive, after a warm-up).
func measure(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("measure", flag.ExitOnError)
	miniku := fs.String("miniku", "", "the miniku binary (go build -o ... . in the repo root)")
	self := fs.String("self", "", "this program's binary (default: the running one)")
	idle := fs.Duration("idle", 30*time.Second, "how long each server idles before its RSS is read")
	n := fs.Int("n", 1000, "GETs timed per server")
	_ = fs.Parse(args)
	if *miniku == "" {
		return errors.New("measure needs --miniku")
	}
	if *self == "" {
		p, err := os.Executable()
		if err != nil {
			return err
		}
		*self = p
	}
	mk, err := runMiniku(ctx, *miniku, *idle, *n)
	if err != nil {
		return fmt.Errorf("miniku up: %w", err)
	}
	ks, err := runGeneric(ctx, *self, *idle, *n)
	if err != nil {
		return fmt.Errorf("k8s.io/apiserver: %w", err)
	}
	fmt.Printf("\n%-44s %12s %12s %10s %10s %10s\n", "server", "binary MiB", "idle RSS MiB", "GET p50", "GET p99", "GET max")
	for _, r := range append(mk, ks) {
		fmt.Printf("%-44s %12.1f %12.1f %10s %10s %10s\n", r.name, mib(r.binary), mib(r.rss), r.p50, r.p99, r.max)
	}
	m := mk[0]
	fmt.Printf("\nratio k8s.io/apiserver / miniku up: binary %.2f×, idle RSS %.2f×, GET p99 %.2f× (vs %s)\n",
		float64(ks.binary)/float64(m.binary), float64(ks.rss)/float64(m.rss), float64(ks.p99)/float64(mk[len(mk)-1].p99), mk[len(mk)-1].name)
	fmt.Println("note: the k8s.io/apiserver process holds only the API (and its NATS); miniku up also runs the scheduler, controller and an idle kubelet supervisor (--nodes 0)")
	return nil
}

type result struct {
	name          string
	binary, rss   int64
	p50, p99, max time.Duration
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// start runs bin with args, its output in dir/log, killed (the whole
// process group) by the returned stop.
func start(bin, dir string, args ...string) (*exec.Cmd, func(), error) {
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, nil, err
	}
	return cmd, func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logf.Close()
	}, nil
}

// The servers' certificates differ (MiniKu's CA, the generic server's
// self-signed one); verification costs the same for both and is not what
// is measured, so the bench skips it.
var hc = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
	TLSClientConfig:     &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a benchmark on loopback
	MaxIdleConnsPerHost: 1,
}}

func do(method, url, token, body string) (int, string, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data), err
}

func waitFor(ctx context.Context, d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func rssOf(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmRSS")
}

func timeGets(url, token string, n int) (p50, p99, max time.Duration, err error) {
	for range 100 { // warm-up: connection, caches
		if code, body, err := do("GET", url, token, ""); err != nil || code != 200 {
			return 0, 0, 0, fmt.Errorf("GET %s: %d %s %v", url, code, body, err)
		}
	}
	lat := make([]time.Duration, n)
	for i := range lat {
		t0 := time.Now()
		code, body, err := do("GET", url, token, "")
		lat[i] = time.Since(t0)
		if err != nil || code != 200 {
			return 0, 0, 0, fmt.Errorf("GET %s: %d %s %v", url, code, body, err)
		}
	}
	slices.Sort(lat)
	return lat[n/2], lat[n*99/100], lat[n-1], nil
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func binarySize(p string) (int64, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func runMiniku(ctx context.Context, bin string, idle time.Duration, n int) ([]result, error) {
	size, err := binarySize(bin)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bench-miniku-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	api, _ := freeAddr()
	https, _ := freeAddr()
	natsAddr, _ := freeAddr()
	cmd, stop, err := start(bin, dir, "up", "--data-dir", filepath.Join(dir, "data"), "--api-addr", api, "--https-addr", https,
		"--nats-addr", natsAddr, "--nodes", "0", "--nats-context", "")
	if err != nil {
		return nil, err
	}
	defer stop()
	var token string
	if err := waitFor(ctx, 60*time.Second, func() error {
		data, err := os.ReadFile(filepath.Join(dir, "data", "token"))
		if err != nil {
			return err
		}
		token = strings.TrimSpace(string(data))
		if code, body, err := do("GET", "https://"+https+"/readyz", token, ""); err != nil || code != 200 {
			return fmt.Errorf("readyz: %d %s %v", code, body, err)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("%w (log in %s)", err, filepath.Join(dir, "log"))
	}
	pod := `{"name":"bench","image":"busybox","command":["/bin/sh","-c","while true; do sleep 1; done"],"labels":{"app":"bench"}}`
	if code, body, err := do("POST", "https://"+https+"/pods", token, pod); err != nil || code >= 300 {
		return nil, fmt.Errorf("POST /pods: %d %s %v", code, body, err)
	}
	time.Sleep(idle)
	rss, err := rssOf(cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	var out []result
	r := result{name: "miniku up, seed API GET /pods/bench", binary: size, rss: rss}
	if r.p50, r.p99, r.max, err = timeGets("https://"+https+"/pods/bench", token, n); err != nil {
		return nil, err
	}
	out = append(out, r)
	// The Kubernetes API, once services/apiserver/kube serves it.
	kube := "https://" + https + "/api/v1/namespaces/default/pods/bench"
	if code, _, err := do("GET", kube, token, ""); err == nil && code == 200 {
		r := result{name: "miniku up, GET /api/v1/.../pods/bench", binary: size, rss: rss}
		if r.p50, r.p99, r.max, err = timeGets(kube, token, n); err != nil {
			return nil, err
		}
		out = append(out, r)
	} else {
		fmt.Fprintf(os.Stderr, "miniku up serves no %s yet (%d %v): the seed API's GET stands for it\n", kube, code, err)
	}
	return out, nil
}

func runGeneric(ctx context.Context, self string, idle time.Duration, n int) (result, error) {
	r := result{name: "k8s.io/apiserver, GET /api/v1/.../pods/bench"}
	var err error
	if r.binary, err = binarySize(self); err != nil {
		return r, err
	}
	dir, err := os.MkdirTemp("", "bench-k8sapiserver-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	addr, _ := freeAddr()
	token := randomToken()
	cmd, stop, err := start(self, dir, "serve", "--addr", addr, "--dir", dir, "--token", token)
	if err != nil {
		return r, err
	}
	defer stop()
	if err := waitFor(ctx, 60*time.Second, func() error {
		if code, body, err := do("GET", "https://"+addr+"/readyz", token, ""); err != nil || code != 200 {
			return fmt.Errorf("readyz: %d %s %v", code, body, err)
		}
		return nil
	}); err != nil {
		return r, fmt.Errorf("%w (log in %s)", err, filepath.Join(dir, "log"))
	}
	time.Sleep(idle)
	if r.rss, err = rssOf(cmd.Process.Pid); err != nil {
		return r, err
	}
	r.p50, r.p99, r.max, err = timeGets("https://"+addr+"/api/v1/namespaces/default/pods/bench", token, n)
	return r, err
}
