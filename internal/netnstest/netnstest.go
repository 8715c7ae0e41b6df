//go:build linux

// Package netnstest builds "hosts" for tests: network namespaces joined by
// a bridge on a private range (10.77.0.0/24), each able to run its own
// processes, with kill -9, restart and partition helpers. Everything it
// makes (namespaces, veths, the bridge, processes) is removed in
// t.Cleanup, also when the test fails; leftovers of a crashed earlier run
// (found by the name prefix) are removed when a test starts.
//
// The bridge's address in the test's own namespace is Gateway, so the
// test reaches every host; the hosts have no default route, so they reach
// only one another, the test and their own loopback.
package netnstest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// Prefix starts the name of every namespace and link made here.
	Prefix = "mkh"
	// Gateway is the bridge's address, in the test's namespace.
	Gateway = "10.77.0.1"
	subnet  = "10.77.0."
	bridge  = Prefix + "br0"
	// lockPath serialises test runs on one machine: the range and the
	// names are fixed, so two runs at once would tear down each other's
	// hosts. The kernel drops the lock when its holder dies.
	lockPath = "/run/miniku-netnstest.lock"
)

// Require skips the test unless it runs as root with iproute2's ip.
func Require(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("netns hosts need root (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		// CI installs it (.ci/run): there a missing ip is a failure,
		// not a reason to skip the multi-host tests.
		if os.Getenv("CI") != "" {
			tb.Fatal("netns hosts need iproute2's ip, and CI is set: .ci/run should have installed it")
		}
		tb.Skip("netns hosts need iproute2's ip (apt-get install iproute2)")
	}
}

// Net is a bridge and the hosts on it.
type Net struct {
	tb    testing.TB
	Hosts []*Host
}

// Host is one network namespace with one veth on the bridge.
type Host struct {
	net  *Net
	Name string // "h1"
	// NS is the namespace's name (ip netns), Veth the bridge side of its
	// link (down: partitioned).
	NS, Veth string
	// IP is the host's address on the bridge.
	IP string

	mu    sync.Mutex
	procs []*Proc
}

// New makes n hosts h1..hn at 10.77.0.11, .12, ... .
func New(tb testing.TB, n int) *Net {
	tb.Helper()
	Require(tb)
	if n < 1 || n > 50 {
		tb.Fatalf("netnstest: %d hosts, want 1..50", n)
	}
	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		tb.Fatalf("netnstest: %v", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		tb.Fatalf("netnstest: lock %s: %v", lockPath, err)
	}
	nt := &Net{tb: tb}
	// Registered first, so it runs last: after every host is gone.
	tb.Cleanup(func() { lock.Close() })
	RemoveLeftovers(tb)
	tb.Cleanup(func() { nt.teardown() })
	// The bridge does not pass frames to iptables: a host firewall's
	// FORWARD policy must not decide whether the hosts see one another.
	nt.ip("link", "add", bridge, "type", "bridge", "nf_call_iptables", "0", "nf_call_ip6tables", "0")
	nt.ip("addr", "add", Gateway+"/24", "dev", bridge)
	nt.ip("link", "set", bridge, "up")
	for i := 1; i <= n; i++ {
		h := &Host{net: nt, Name: fmt.Sprintf("h%d", i), IP: fmt.Sprintf("%s%d", subnet, 10+i)}
		h.NS = Prefix + "-" + h.Name
		h.Veth = Prefix + h.Name
		peer := h.Veth + "p"
		nt.Hosts = append(nt.Hosts, h)
		nt.ip("netns", "add", h.NS)
		nt.ip("link", "add", h.Veth, "type", "veth", "peer", "name", peer)
		nt.ip("link", "set", peer, "netns", h.NS)
		nt.ip("link", "set", h.Veth, "master", bridge)
		nt.ip("link", "set", h.Veth, "up")
		nt.ip("-n", h.NS, "link", "set", "lo", "up")
		nt.ip("-n", h.NS, "link", "set", peer, "name", "eth0")
		nt.ip("-n", h.NS, "addr", "add", h.IP+"/24", "dev", "eth0")
		nt.ip("-n", h.NS, "link", "set", "eth0", "up")
	}
	return nt
}

func (nt *Net) ip(args ...string) {
	nt.tb.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		nt.tb.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// RemoveLeftovers deletes every namespace and link of this package's
// prefix, killing the processes left in those namespaces: what a test
// killed before its cleanup ran left behind. Call it only while holding
// the lock (New does).
func RemoveLeftovers(tb testing.TB) {
	tb.Helper()
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, Prefix+"-") {
			tb.Logf("netnstest: removing namespace %s left by an earlier run", name)
			removeNS(name)
		}
	}
	out, _ = exec.Command("ip", "-o", "link", "show").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.SplitN(line, ": ", 3)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(f[1], "@")
		if strings.HasPrefix(name, Prefix) {
			tb.Logf("netnstest: removing link %s left by an earlier run", name)
			_ = exec.Command("ip", "link", "del", name).Run()
		}
	}
}

// removeNS kills what runs in a namespace, then deletes it.
func removeNS(name string) {
	for range 3 {
		out, _ := exec.Command("ip", "netns", "pids", name).Output()
		pids := strings.Fields(string(out))
		if len(pids) == 0 {
			break
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = exec.Command("ip", "netns", "del", name).Run()
}

func (nt *Net) teardown() {
	for _, h := range nt.Hosts {
		h.mu.Lock()
		procs := h.procs
		h.mu.Unlock()
		for _, p := range procs {
			p.Kill()
		}
	}
	for _, h := range nt.Hosts {
		removeNS(h.NS)
		_ = exec.Command("ip", "link", "del", h.Veth).Run()
	}
	_ = exec.Command("ip", "link", "del", bridge).Run()
}

// Partition cuts the host off the bridge (its veth down): it sees only
// itself, and the others see a silent host, not a closed connection.
func (h *Host) Partition() { h.net.ip("link", "set", h.Veth, "down") }

// Heal undoes Partition.
func (h *Host) Heal() { h.net.ip("link", "set", h.Veth, "up") }

// Proc is a process running in a host's namespace; its output is kept
// and shown in the test log if the test fails.
type Proc struct {
	Host *Host
	Name string
	args []string
	env  []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	out  bytes.Buffer
	// lines get every output line as it comes (WaitFor).
	lines []func(string)
}

// Start runs bin with args in the host's namespace (ip netns exec, which
// execs it: the process is bin itself), with env added to the test's.
func (h *Host) Start(name string, env []string, bin string, args ...string) *Proc {
	h.net.tb.Helper()
	p := &Proc{Host: h, Name: name, args: append([]string{"netns", "exec", h.NS, bin}, args...), env: env}
	if err := p.start(); err != nil {
		h.net.tb.Fatalf("start %s on %s: %v", name, h.Name, err)
	}
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
	tb := h.net.tb
	tb.Cleanup(func() {
		p.Kill()
		if tb.Failed() {
			tb.Logf("--- output of %s on %s ---\n%s", name, h.Name, p.Output())
		}
	})
	return p
}

func (p *Proc) start() error {
	cmd := exec.Command("ip", p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	// Its own process group: our SIGKILL reaches it and only it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	fmt.Fprintf(&p.out, "=== started pid %d at %s\n", cmd.Process.Pid, time.Now().Format(time.TimeOnly))
	p.mu.Unlock()
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.out.WriteString(line + "\n")
			fs := append([]func(string){}, p.lines...)
			p.mu.Unlock()
			for _, f := range fs {
				f(line)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() { _ = cmd.Wait(); pw.Close(); <-scanned; close(done) }()
	return nil
}

// Output is everything the process (and its earlier runs) printed.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// OnLine calls f with every line printed from now on.
func (p *Proc) OnLine(f func(string)) {
	p.mu.Lock()
	p.lines = append(p.lines, f)
	p.mu.Unlock()
}

// Running reports whether the process has not exited.
func (p *Proc) Running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Kill is kill -9 of the process group, waiting until it is gone.
func (p *Proc) Kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	select {
	case <-done:
		return
	default:
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// Restart starts the process again with the same arguments (after Kill,
// or after it exited).
func (p *Proc) Restart() {
	p.Host.net.tb.Helper()
	p.Kill()
	if err := p.start(); err != nil {
		p.Host.net.tb.Fatalf("restart %s on %s: %v", p.Name, p.Host.Name, err)
	}
}

// Exec runs a short command in the host's namespace and returns its
// combined output.
func (h *Host) Exec(name string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...).CombinedOutput()
	return string(out), err
}
