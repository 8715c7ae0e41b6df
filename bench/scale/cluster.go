package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miniku/miniku/schemas"
)

// proc is a miniku process the benchmark started, in its own process group.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

func startProc(bin, logPath, name string, args ...string) (*proc, error) {
	out, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Dir(logPath))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); out.Close(); close(p.done) }()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop ends the process gracefully, then by force.
func (p *proc) stop() {
	_ = syscall.Kill(p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.kill()
	}
}

func (p *proc) kill() {
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	<-p.done
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// cluster is one `miniku up` plus optional hollow kubelet processes.
type cluster struct {
	bin, dir          string
	apiAddr, natsAddr string
	up                *proc
	kubelets          []*proc
	c                 *client
	// pprofAddrs are the --metrics-addr of the processes started with
	// --pprof (cfg.profileDir set), by process name.
	pprofAddrs map[string]string
	profile    bool
}

func startCluster(cfg config, dir string, upArgs ...string) (*cluster, error) {
	bin := cfg.bin
	cl := &cluster{bin: bin, dir: dir, apiAddr: freeAddr(), natsAddr: freeAddr(),
		pprofAddrs: map[string]string{}, profile: cfg.profileDir != ""}
	// The default --https-addr is one port for the whole host.
	args := []string{"up", "--data-dir", filepath.Join(dir, "data"), "--api-addr", cl.apiAddr,
		"--https-addr", freeAddr(), "--nats-addr", cl.natsAddr, "--nats-context", "", "--log-level", "warn"}
	args = append(args, cl.pprofArgs("up")...)
	if cfg.natsSync != "" {
		args = append(args, "--nats-sync", cfg.natsSync)
	}
	args = append(args, cfg.upArgs...)
	args = append(args, upArgs...)
	var err error
	if cl.up, err = startProc(bin, filepath.Join(dir, "up.log"), "up", args...); err != nil {
		return nil, err
	}
	cl.c = &client{base: "http://" + cl.apiAddr, hc: &http.Client{Timeout: 60 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}
	tokenPath := filepath.Join(dir, "data", "token")
	err = poll(60*time.Second, func() error {
		tok, err := os.ReadFile(tokenPath)
		if err != nil {
			return err
		}
		cl.c.token = strings.TrimSpace(string(tok))
		code, body, err := cl.c.do("GET", "/nodes", "")
		if err != nil {
			return err
		}
		if code != 200 {
			return fmt.Errorf("GET /nodes: %d %s", code, body)
		}
		return nil
	})
	if err != nil {
		cl.stop()
		return nil, fmt.Errorf("miniku up did not come up: %w (log %s)", err, filepath.Join(dir, "up.log"))
	}
	return cl, nil
}

// addHollow starts `miniku kubelet --hollow` with count nodes.
func (cl *cluster) addHollow(count int, prefix string) (*proc, error) {
	args := []string{"kubelet", "--hollow", "--count", strconv.Itoa(count), "--name-prefix", prefix,
		"--data-dir", filepath.Join(cl.dir, "data"), "--nats", "nats://" + cl.natsAddr, "--log-level", "warn"}
	p, err := startProc(cl.bin, filepath.Join(cl.dir, "hollow-"+prefix+".log"), "hollow "+prefix,
		append(args, cl.pprofArgs("hollow-"+prefix)...)...)
	if err != nil {
		return nil, err
	}
	cl.kubelets = append(cl.kubelets, p)
	return p, nil
}

// cpu returns the CPU time used so far by up and by all hollow kubelet
// processes together.
func (cl *cluster) cpu() [2]time.Duration {
	var out [2]time.Duration
	_, _, out[0], _ = procStats(cl.up.pid())
	for _, k := range cl.kubelets {
		_, _, c, _ := procStats(k.pid())
		out[1] += c
	}
	return out
}

// pprofArgs gives the flags serving pprof for the process name when the
// cluster is profiled.
func (cl *cluster) pprofArgs(name string) []string {
	if !cl.profile {
		return nil
	}
	addr := freeAddr()
	cl.pprofAddrs[name] = addr
	return []string{"--metrics-addr", addr, "--pprof"}
}

// startProfiles takes a CPU profile of length d of every profiled process
// into dir/<name>.cpu.pprof; wait returns when all are written.
func (cl *cluster) startProfiles(dir string, d time.Duration) (wait func() error) {
	if !cl.profile {
		return func() error { return nil }
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(cl.pprofAddrs))
	for name, addr := range cl.pprofAddrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- fetchProfile(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())),
				filepath.Join(dir, name+".cpu.pprof"), d+30*time.Second)
		}()
	}
	return func() error {
		wg.Wait()
		close(errs)
		var all []error
		for err := range errs {
			all = append(all, err)
		}
		return errors.Join(all...)
	}
}

func fetchProfile(url, path string, timeout time.Duration) error {
	resp, err := (&http.Client{Timeout: timeout}).Get(url)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("profile %s: %w", url, err)
	}
	return f.Close()
}

func (cl *cluster) stop() {
	for _, k := range cl.kubelets {
		k.stop()
	}
	cl.up.stop()
}

// waitNodes waits until n nodes are Ready.
func (cl *cluster) waitNodes(n int, timeout time.Duration) error {
	return poll(timeout, func() error {
		var nodes []schemas.Node
		if err := cl.c.getJSON("/nodes", &nodes); err != nil {
			return err
		}
		ready := 0
		for _, nd := range nodes {
			if nd.Status == schemas.NodeReady {
				ready++
			}
		}
		if ready != n {
			return fmt.Errorf("%d of %d nodes Ready", ready, n)
		}
		return nil
	})
}

type client struct {
	base, token string
	hc          *http.Client
}

func (c *client) req(ctx context.Context, method, path, body string) (*http.Request, error) {
	r, err := http.NewRequestWithContext(ctx, method, c.base+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	r.Header.Set("Authorization", "Bearer "+c.token)
	return r, nil
}

func (c *client) do(method, path, body string) (int, []byte, error) {
	r, err := c.req(context.Background(), method, path, body)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.hc.Do(r)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

func (c *client) getJSON(path string, v any) error {
	code, body, err := c.do("GET", path, "")
	if err != nil {
		return err
	}
	if code != 200 {
		return fmt.Errorf("GET %s: %d %s", path, code, body)
	}
	return json.Unmarshal(body, v)
}

func (c *client) post(path, body string) error {
	code, resp, err := c.do("POST", path, body)
	if err != nil {
		return err
	}
	if code != 201 {
		return fmt.Errorf("POST %s: %d %s", path, code, resp)
	}
	return nil
}

func poll(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// podWatch follows GET /pods?watch=true and counts pods bound and Running
// (not terminating), recording when each count changed.
type podWatch struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	pods    map[string]schemas.Pod
	bound   int
	running int
	series  []sample // running count over time
	boundAt []time.Time
	addAt   []time.Time
	runAt   map[string]time.Time
	// started holds the pods' own startedAt (the kubelet's clock, same
	// host): when they were Running, however late the watch delivered it.
	started []time.Time
	err     error
}

type sample struct {
	at      time.Time
	running int
}

func (c *client) watchPods() (*podWatch, error) {
	ctx, cancel := context.WithCancel(context.Background())
	r, err := c.req(ctx, "GET", "/pods?watch=true", "")
	if err != nil {
		cancel()
		return nil, err
	}
	hc := &http.Client{} // no timeout: a watch is long
	resp, err := hc.Do(r)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("watch pods: %d", resp.StatusCode)
	}
	w := &podWatch{cancel: cancel, done: make(chan struct{}), pods: map[string]schemas.Pod{}, runAt: map[string]time.Time{}}
	go func() {
		defer close(w.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var ev struct {
				Type   string      `json:"type"`
				Object schemas.Pod `json:"object"`
			}
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.Object.Name == "" {
				continue
			}
			w.apply(ev.Type, ev.Object, time.Now())
		}
		if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
		}
	}()
	return w, nil
}

func isRunning(p schemas.Pod) bool {
	return p.Status == schemas.PodRunning && p.DeletionTimestamp == nil
}

func (w *podWatch) apply(typ string, p schemas.Pod, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	old, had := w.pods[p.Name]
	if !had && typ != "DELETED" {
		w.addAt = append(w.addAt, now)
	}
	if had {
		if old.NodeName != "" {
			w.bound--
		}
		if isRunning(old) {
			w.running--
		}
	}
	if typ == "DELETED" {
		delete(w.pods, p.Name)
	} else {
		w.pods[p.Name] = p
		if p.NodeName != "" {
			w.bound++
			if !had || old.NodeName == "" {
				w.boundAt = append(w.boundAt, now)
			}
		}
		if isRunning(p) {
			w.running++
			if _, ok := w.runAt[p.Name]; !ok {
				w.runAt[p.Name] = now
				if p.StartedAt != nil {
					w.started = append(w.started, *p.StartedAt)
				}
			}
		}
	}
	if n := len(w.series); n == 0 || w.series[n-1].running != w.running {
		w.series = append(w.series, sample{at: now, running: w.running})
	}
}

func (w *podWatch) counts() (bound, running int, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bound, w.running, w.err
}

// waitRunning waits until exactly n pods are Running.
func (w *podWatch) waitRunning(n int, timeout time.Duration) error {
	return poll(timeout, func() error {
		_, r, err := w.counts()
		if err != nil {
			return err
		}
		if r != n {
			return fmt.Errorf("%d of %d pods Running", r, n)
		}
		return nil
	})
}

func (w *podWatch) stop() { w.cancel(); <-w.done }

// procStats reads a process's RSS, peak RSS (bytes) and CPU time.
func procStats(pid int) (rss, peak int64, cpu time.Duration, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			peak = kb << 10
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	// Fields after the command (which may hold spaces) start at ") ".
	rest := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	ut, _ := strconv.ParseInt(rest[11], 10, 64)
	st, _ := strconv.ParseInt(rest[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	cpu = time.Duration(ut+st) * time.Second / ticks
	return rss, peak, cpu, nil
}

// cpuShare measures pid's CPU use over d as a fraction of one core.
func cpuShare(pid int, d time.Duration) (float64, error) {
	_, _, c0, err := procStats(pid)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	time.Sleep(d)
	_, _, c1, err := procStats(pid)
	if err != nil {
		return 0, err
	}
	return float64(c1-c0) / float64(time.Since(t0)), nil
}
