package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/pki"
	mkrt "github.com/miniku/miniku/runtime"
	"github.com/miniku/miniku/runtime/image/imagetest"
	"github.com/miniku/miniku/schemas"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// miniku builds the binary once per test run.
func miniku(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "miniku-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "miniku")
		args := []string{"build", "-o", binPath}
		if os.Getenv("MINIKU_E2E_RACE") != "" { // the processes too run with the race detector
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "github.com/miniku/miniku")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("end-to-end tests run real containers and need root (CI runs them as root)")
	}
	imagetest.RequireBusybox(t)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is one miniku process whose output goes to the test log.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	out  bytes.Buffer
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	args = withHTTPSAddr(t, args)
	cmd := exec.Command(miniku(t), args...)
	// The nats CLI context `up` writes goes to a temp dir, not ~/.config.
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+configHome(t))
	recordTokenFile(args)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	// Own process group: a kill of the test must not leave it behind, and
	// our SIGKILL hits only this process (containers have their own
	// sessions and must survive it).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	go func() { _ = cmd.Wait(); pw.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- output of %s ---\n%s", name, p.output())
		}
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// cleanupContainers stops and removes every container under dataDir, so no
// container outlives the test even when it fails half-way.
func cleanupContainers(t *testing.T, dataDir string) {
	nodes, _ := filepath.Glob(filepath.Join(dataDir, "nodes", "*", "containers"))
	for _, root := range nodes {
		rt, err := mkrt.New(root, nil)
		if err != nil {
			t.Errorf("cleanup %s: %v", root, err)
			continue
		}
		// Every process is dead by now, so a directory without state is an
		// interrupted start, not one in progress.
		if _, err := rt.SweepInterrupted(); err != nil {
			t.Errorf("cleanup %s: %v", root, err)
		}
		list, _ := rt.List()
		for _, c := range list {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := rt.Stop(ctx, c.ID, 0); err != nil {
				t.Errorf("cleanup: stop %s: %v", c.ID, err)
			}
			cancel()
			if err := rt.Remove(c.ID); err != nil {
				t.Errorf("cleanup: remove %s: %v", c.ID, err)
			}
		}
		_ = rt.Close()
	}
}

// liveContainers lists running containers on all nodes of dataDir.
func liveContainers(t *testing.T, dataDir string) map[string]mkrt.Container {
	t.Helper()
	out := map[string]mkrt.Container{}
	nodes, _ := filepath.Glob(filepath.Join(dataDir, "nodes", "*", "containers"))
	for _, root := range nodes {
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
			if c.Status == mkrt.StatusRunning {
				out[c.ID] = c
			}
		}
	}
	return out
}

// api is a tiny client for the HTTP API.
type api struct {
	t    *testing.T
	base string
}

func (a api) do(method, path, body string) (int, []byte) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.base+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	a.authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

func (a api) pods() ([]schemas.Pod, error) {
	code, body := a.do("GET", "/pods", "")
	if code != 200 {
		return nil, fmt.Errorf("GET /pods: %d %s", code, body)
	}
	var pods []schemas.Pod
	return pods, json.Unmarshal(body, &pods)
}

func (a api) replicaSet(name string) (schemas.ReplicaSet, error) {
	var rs schemas.ReplicaSet
	code, body := a.do("GET", "/replicasets/"+name, "")
	if code != 200 {
		return rs, fmt.Errorf("GET /replicasets/%s: %d %s", name, code, body)
	}
	return rs, json.Unmarshal(body, &rs)
}

func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %v: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// running checks that rs has exactly n pods, all Running with a container.
// Terminating pods (deletionTimestamp set) are on their way out and not
// counted, as the replicaset controller does not count them.
func running(a api, rs string, n int) ([]schemas.Pod, error) {
	pods, err := a.pods()
	if err != nil {
		return nil, err
	}
	var mine []schemas.Pod
	for _, p := range pods {
		if p.Owner == rs && p.DeletionTimestamp == nil {
			mine = append(mine, p)
		}
	}
	if len(mine) != n {
		return nil, fmt.Errorf("replicaset %s has %d pods, want %d", rs, len(mine), n)
	}
	for _, p := range mine {
		if p.Status != schemas.PodRunning || p.ContainerID == "" || p.NodeName == "" {
			return nil, fmt.Errorf("pod %s: status %s container %q node %q (%s %s)", p.Name, p.Status, p.ContainerID, p.NodeName, p.Reason, p.Message)
		}
	}
	return mine, nil
}

func (a api) getJSON(path string, v any) error {
	code, body := a.do("GET", path, "")
	if code != 200 {
		return fmt.Errorf("GET %s: %d %s", path, code, body)
	}
	return json.Unmarshal(body, v)
}

// authorize adds the bearer token of the apiserver at a.base: every test
// runs with authentication on. Use it for requests not made with do. The
// file is read at each call, as the apiserver creates it at start.
func (a api) authorize(req *http.Request) {
	if f, ok := tokenFiles.Load(strings.TrimPrefix(a.base, "http://")); ok {
		if tok, err := os.ReadFile(f.(string)); err == nil {
			req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		}
	}
}

// withHTTPSAddr gives an `up` or `apiserver` without --https-addr a free
// one: the default, 127.0.0.1:6443, is one port for every test on the host.
func withHTTPSAddr(t *testing.T, args []string) []string {
	if len(args) == 0 || (args[0] != "up" && args[0] != "apiserver") {
		return args
	}
	for _, a := range args {
		if a == "--https-addr" || strings.HasPrefix(a, "--https-addr=") {
			return args
		}
	}
	return append(slices.Clone(args), "--https-addr", freeAddr(t))
}

// natsCA is the CA of the NATS server whose data dir is dataDir: it uses
// TLS, as `up` and `nats` always do.
func natsCA(dataDir string) nats.Option { return nats.RootCAs(pki.CAPath(dataDir)) }

// tokenFiles maps an apiserver address to its token file, recorded from the
// arguments of every `up` and `apiserver` a test starts.
var tokenFiles sync.Map

func recordTokenFile(args []string) {
	if len(args) == 0 || (args[0] != "up" && args[0] != "apiserver") {
		return
	}
	flagValue := func(name, def string) string {
		for i, a := range args {
			if a == name && i+1 < len(args) {
				return args[i+1]
			}
			if v, ok := strings.CutPrefix(a, name+"="); ok {
				return v
			}
		}
		return def
	}
	file := flagValue("--token-file", filepath.Join(flagValue("--data-dir", "/var/lib/miniku"), "token"))
	tokenFiles.Store(flagValue("--api-addr", "127.0.0.1:8080"), file)
}

// configHomes holds each test's XDG_CONFIG_HOME, a temp dir shared by the
// processes it starts.
var configHomes sync.Map

func configHome(t *testing.T) string {
	if d, ok := configHomes.Load(t); ok {
		return d.(string)
	}
	d := t.TempDir()
	configHomes.Store(t, d)
	return d
}

// viewerNATS connects to url as the read-only viewer of the NATS server
// whose data dir is dataDir (`up --data-dir`, `nats --data-dir`): NATS has
// no anonymous user. Closed at cleanup.
func viewerNATS(t *testing.T, url, dataDir string) *nats.Conn {
	t.Helper()
	creds, err := bus.ReadCredentials(bus.CredentialsPath(filepath.Join(dataDir, "nats", "auth"), bus.UserViewer))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, nats.UserInfo(creds.User, creds.Password), natsCA(dataDir), nats.CustomInboxPrefix(bus.InboxPrefix(bus.UserViewer)))
	if err != nil {
		t.Fatalf("connect to nats as viewer: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// busConnAs connects a bus.Conn to url as user (bus.UserController for a
// test's own writes of any object), with the credentials of the NATS server
// whose data dir is dataDir. Closed at cleanup.
func busConnAs(t *testing.T, url, dataDir, user string) *bus.Conn {
	t.Helper()
	creds, err := bus.ReadCredentials(bus.CredentialsPath(filepath.Join(dataDir, "nats", "auth"), user))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := bus.Connect(ctx, bus.Options{URL: url, Name: t.Name(), User: creds.User, Password: creds.Password,
		TLSCA: pki.CAPath(dataDir), Bind: strings.HasPrefix(user, "kubelet-")})
	if err != nil {
		t.Fatalf("connect to nats as %s: %v", user, err)
	}
	t.Cleanup(c.Close)
	return c
}
