//go:build linux

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/pki"
	"github.com/miniku/miniku/internal/netnstest"
	"github.com/miniku/miniku/schemas"
)

const (
	// stallWindow is how long after a kill writes are watched: longer
	// than a JetStream election (≤ 9 s) and the 6 s a client takes to
	// leave a silent server.
	stallWindow = 12 * time.Second
	maxStall    = 10 * time.Second
	maxTakeover = 12 * time.Second
)

// clusterHost is one `miniku up` on a netns host.
type clusterHost struct {
	h       *netnstest.Host
	dataDir string
	proc    *netnstest.Proc
	// leads: when this host's log last said it became the JetStream
	// meta leader or took a lease, by what ("meta", "scheduler", ...).
	mu    sync.Mutex
	leads map[string]time.Time
}

var (
	metaLeaderLine = regexp.MustCompile(`Self is new JetStream cluster metadata leader`)
	leaseLine      = regexp.MustCompile(`msg="acquired lease".*component=(scheduler|controller)`)
)

func (ch *clusterHost) watch() {
	ch.proc.OnLine(func(line string) {
		what := ""
		if metaLeaderLine.MatchString(line) {
			what = "meta"
		} else if m := leaseLine.FindStringSubmatch(line); m != nil {
			what = m[1]
		}
		if what != "" {
			ch.mu.Lock()
			ch.leads[what] = time.Now()
			ch.mu.Unlock()
		}
	})
}

func (ch *clusterHost) ledAt(what string) time.Time {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.leads[what]
}

// hostsAPI is an HTTPS client of one host's API, trusting the cluster's CA
// and sending the cluster's token.
type hostsAPI struct {
	client *http.Client
	token  string
}

func newHostsAPI(t *testing.T, dataDir string) hostsAPI {
	t.Helper()
	caPEM, err := os.ReadFile(pki.CAPath(dataDir))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tok, err := os.ReadFile(filepath.Join(dataDir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	return hostsAPI{client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
		token: strings.TrimSpace(string(tok))}
}

func (a hostsAPI) do(ip, method, path, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, "https://"+ip+":6443"+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// writer makes numbered changes (ConfigMaps w-N) through the API of the
// first host of targets that answers, and records each acknowledged one
// with its time.
type writer struct {
	api hostsAPI
	mu  sync.Mutex
	// targets are the hosts' IPs to write through, in order of preference.
	targets []string
	acked   []time.Time
	names   []string
	failed  int
}

func (w *writer) setTargets(ips ...string) {
	w.mu.Lock()
	w.targets = ips
	w.mu.Unlock()
}

func (w *writer) run(ctx context.Context) {
	for n := 0; ctx.Err() == nil; n++ {
		name := fmt.Sprintf("w-%05d", n)
		body := fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":%q},"data":{"n":"%d"}}`, name, n)
		for ctx.Err() == nil {
			w.mu.Lock()
			targets := slices.Clone(w.targets)
			w.mu.Unlock()
			ok := false
			for _, ip := range targets {
				code, _, err := w.api.do(ip, "POST", "/api/v1/namespaces/default/configmaps", body)
				if err == nil && code == 201 {
					ok = true
					break
				}
				if code == 409 { // created by an earlier try whose answer was lost
					ok = true
					break
				}
			}
			if ok {
				w.mu.Lock()
				w.acked = append(w.acked, time.Now())
				w.names = append(w.names, name)
				w.mu.Unlock()
				break
			}
			w.mu.Lock()
			w.failed++
			w.mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stallAfter is how long after t no write was acknowledged: the longest
// gap between acknowledgements (t itself counting as one) in the window.
func (w *writer) stallAfter(t time.Time, window time.Duration) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	prev, worst := t, time.Duration(0)
	for _, a := range w.acked {
		if a.Before(t) || a.After(t.Add(window)) {
			continue
		}
		worst = max(worst, a.Sub(prev))
		prev = a
	}
	if prev == t {
		return window
	}
	return worst
}

func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.names)
}

// Three servers on three network-namespace hosts: the first `up
// --cluster-init`, the others `up --join --token`. Checks the issue's
// tests 1, 2, 4 and 6 (buckets at R3; killing the JetStream meta leader,
// a follower, and the scheduler's and controller's leader) with a writer
// making numbered changes throughout, none of them lost.
func TestThreeHosts(t *testing.T) {
	netnstest.Require(t)
	bin := miniku(t)
	nt := netnstest.New(t, 3)
	hosts := make([]*clusterHost, 3)
	first := nt.Hosts[0]
	upArgs := func(h *netnstest.Host, dataDir string, extra ...string) []string {
		return append([]string{"up", "--data-dir", dataDir, "--node-name", h.Name,
			"--nats-addr", h.IP + ":4222", "--api-addr", "127.0.0.1:8080", "--https-addr", h.IP + ":6443",
			"--nodes", "0", "--hollow-nodes", "2", "--nats-context", "", "--lease-ttl", "5s",
			"--heartbeat-interval", "1s", "--node-grace", "3s"}, extra...)
	}
	startHost := func(i int, extra ...string) {
		h := nt.Hosts[i]
		ch := &clusterHost{h: h, dataDir: filepath.Join(t.TempDir(), h.Name), leads: map[string]time.Time{}}
		ch.proc = h.Start("miniku up", nil, bin, upArgs(h, ch.dataDir, extra...)...)
		ch.watch()
		hosts[i] = ch
	}
	begin := time.Now()
	startHost(0, "--cluster-init")
	tokenFile := filepath.Join(hosts[0].dataDir, "join-token")
	var token string
	eventually(t, 20*time.Second, func() error {
		b, err := os.ReadFile(tokenFile)
		token = strings.TrimSpace(string(b))
		return err
	})
	joinURL := "https://" + first.IP + ":9345"

	// A wrong secret, and a token pinning another CA: refused, saying
	// why, and nothing written.
	for _, c := range []struct{ token, want string }{
		{token[:strings.LastIndex(token, ":")+1] + "wrong", "wrong join token"},
		{"K10" + strings.Repeat("0", 64) + token[3+64:], "refusing the server"},
	} {
		dir := filepath.Join(t.TempDir(), "refused")
		p := nt.Hosts[1].Start("miniku up (bad token)", nil, bin, upArgs(nt.Hosts[1], dir, "--join", joinURL, "--token", c.token)...)
		eventually(t, 20*time.Second, func() error {
			if p.Running() {
				return fmt.Errorf("up with a bad token still running")
			}
			return nil
		})
		if !strings.Contains(p.Output(), c.want) {
			t.Fatalf("up with token %q: want %q in its output, got:\n%s", c.token, c.want, p.Output())
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("a refused join wrote its data dir %s (%v)", dir, err)
		}
	}

	startHost(1, "--join", joinURL, "--token", token)
	startHost(2, "--join", joinURL, "--token", token)
	// Every server has the cluster's CA, fetched by the join.
	caOf := func(i int) string {
		b, _ := os.ReadFile(pki.CAPath(hosts[i].dataDir))
		return string(b)
	}
	eventually(t, 20*time.Second, func() error {
		for i := 1; i < 3; i++ {
			if caOf(i) == "" || caOf(i) != caOf(0) {
				return fmt.Errorf("%s's CA is not %s's", hosts[i].h.Name, hosts[0].h.Name)
			}
		}
		return nil
	})
	api := newHostsAPI(t, hosts[0].dataDir)
	ips := []string{nt.Hosts[0].IP, nt.Hosts[1].IP, nt.Hosts[2].IP}
	ready := func(ip string) error {
		code, body, err := api.do(ip, "GET", "/readyz", "")
		if err != nil || code != 200 {
			return fmt.Errorf("%s /readyz: %d %s %v", ip, code, body, err)
		}
		return nil
	}
	eventually(t, 60*time.Second, func() error {
		for _, ip := range ips {
			if err := ready(ip); err != nil {
				return err
			}
		}
		return nil
	})
	eventually(t, 60*time.Second, func() error {
		for _, ch := range hosts {
			if !strings.Contains(ch.proc.Output(), `msg="miniku is up"`) {
				return fmt.Errorf("%s not up yet", ch.h.Name)
			}
		}
		return nil
	})
	t.Logf("three servers ready %v after the first started", time.Since(begin).Round(time.Millisecond))

	// (6) Every bucket and stream at 3 replicas, placed on all three.
	conn := busConnAs(t, "nats://"+strings.Join(ips, ":4222,nats://")+":4222", hosts[0].dataDir, bus.UserAPIServer)
	eventually(t, 30*time.Second, func() error {
		got, err := conn.StreamReplicas(context.Background())
		if err != nil {
			return err
		}
		if len(got) < 5 {
			return fmt.Errorf("streams %v", got)
		}
		for name, r := range got {
			if r != 3 {
				return fmt.Errorf("stream %s at R%d, want R3", name, r)
			}
		}
		return nil
	})
	t.Logf("every bucket at R3 %v after the first server started", time.Since(begin).Round(time.Millisecond))
	// miniku cluster status shows the same, from any server's data dir.
	eventually(t, 20*time.Second, func() error {
		out, err := exec.Command(bin, "cluster", "status", "--data-dir", hosts[1].dataDir).CombinedOutput()
		if err != nil {
			return fmt.Errorf("cluster status: %v\n%s", err, out)
		}
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^h1\s+(current|online)`), regexp.MustCompile(`(?m)^h2\s+(current|online)`), regexp.MustCompile(`(?m)^h3\s+(current|online)`),
			regexp.MustCompile(`meta leader`), regexp.MustCompile(`(?m)^KV_pods\s+R3\s+h\d\s+h\d \(0\), h\d \(0\)`),
		} {
			if !want.Match(out) {
				return fmt.Errorf("cluster status: no %s in\n%s", want, out)
			}
		}
		t.Logf("miniku cluster status:\n%s", out)
		return nil
	})

	// A replicaset over the six hollow nodes, two a host.
	nodesReady := func(want int) error {
		code, body, err := api.do(ips[0], "GET", "/nodes", "")
		if err != nil || code != 200 {
			return fmt.Errorf("/nodes: %d %v", code, err)
		}
		var nodes []schemas.Node
		if err := json.Unmarshal(body, &nodes); err != nil {
			return err
		}
		n := 0
		for _, nd := range nodes {
			if nd.Status == schemas.NodeReady {
				n++
			}
		}
		if n < want {
			return fmt.Errorf("%d nodes Ready, want %d", n, want)
		}
		return nil
	}
	eventually(t, 30*time.Second, func() error { return nodesReady(6) })
	rsRunning := func(ip, rs string, want int) error {
		code, body, err := api.do(ip, "GET", "/pods", "")
		if err != nil || code != 200 {
			return fmt.Errorf("/pods: %d %v", code, err)
		}
		var pods []schemas.Pod
		if err := json.Unmarshal(body, &pods); err != nil {
			return err
		}
		n := 0
		for _, p := range pods {
			// Bound is enough for the replicasets made with a host down:
			// the scheduler may pick its nodes before they go NotReady.
			if p.Owner == rs && p.DeletionTimestamp == nil && (p.Status == schemas.PodRunning || rs != "spread" && p.NodeName != "") {
				n++
			}
		}
		if n != want {
			return fmt.Errorf("%d pods of %s Running (or bound), want %d", n, rs, want)
		}
		return nil
	}
	if code, body, err := api.do(ips[0], "POST", "/replicasets", `{"name":"spread","desiredCount":6,"selector":{"app":"spread"},"template":{"image":"busybox","command":["sleep","1d"]}}`); err != nil || code != 201 {
		t.Fatalf("create replicaset: %d %s %v", code, body, err)
	}
	eventually(t, 30*time.Second, func() error { return rsRunning(ips[1], "spread", 6) })

	ctx, stopWriter := context.WithCancel(context.Background())
	w := &writer{api: api, targets: ips}
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); w.run(ctx) }()
	defer func() { stopWriter(); <-writerDone }()
	eventually(t, 10*time.Second, func() error {
		if w.count() < 20 {
			return fmt.Errorf("%d writes acknowledged", w.count())
		}
		return nil
	})

	leader := func(what string) int {
		best, at := -1, time.Time{}
		for i, ch := range hosts {
			if ch.proc.Running() && ch.ledAt(what).After(at) {
				best, at = i, ch.ledAt(what)
			}
		}
		return best
	}
	others := func(i int) []string {
		var out []string
		for j, ip := range ips {
			if j != i {
				out = append(out, ip)
			}
		}
		return out
	}
	js, err := jetstream.New(conn.NATS())
	if err != nil {
		t.Fatal(err)
	}
	// whole: every stream has a leader and two current followers, so
	// the next kill leaves a quorum of caught-up servers.
	whole := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got, err := conn.StreamReplicas(ctx)
		if err != nil {
			return err
		}
		for name := range got {
			s, err := js.Stream(ctx, name)
			if err != nil {
				return err
			}
			info, err := s.Info(ctx)
			if err != nil {
				return err
			}
			if info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
				return fmt.Errorf("stream %s: %+v", name, info.Cluster)
			}
			for _, r := range info.Cluster.Replicas {
				if !r.Current || r.Offline || r.Lag > 0 {
					return fmt.Errorf("stream %s: replica %s current %v offline %v lag %d", name, r.Name, r.Current, r.Offline, r.Lag)
				}
			}
		}
		return nil
	}
	restart := func(i int) time.Duration {
		t.Helper()
		hosts[i].mu.Lock()
		clear(hosts[i].leads)
		hosts[i].mu.Unlock()
		began := time.Now()
		ups := strings.Count(hosts[i].proc.Output(), `msg="miniku is up"`)
		hosts[i].proc.Restart()
		eventually(t, 60*time.Second, func() error { return ready(ips[i]) })
		// Every component started (the lease connections come after
		// the API serves).
		eventually(t, 60*time.Second, func() error {
			if !hosts[i].proc.Running() {
				t.Fatalf("%s exited after its restart:\n%s", hosts[i].h.Name, tail(hosts[i].proc.Output(), 4000))
			}
			if strings.Count(hosts[i].proc.Output(), `msg="miniku is up"`) == ups {
				return fmt.Errorf("%s not up yet", hosts[i].h.Name)
			}
			return nil
		})
		eventually(t, 60*time.Second, whole)
		w.setTargets(ips...)
		return time.Since(began)
	}
	eventually(t, 30*time.Second, whole)

	// (1) kill -9 the host of the JetStream meta leader. The writes
	// stall while JetStream elects new leaders for the groups that host
	// led: nats-server's raft waits a random 4-9 s (fixed in the server,
	// not configurable) before it campaigns, so the 6 s is met
	// only when the dead host led no stream the writer uses. Bound: 10 s.
	m := leader("meta")
	if m < 0 {
		t.Fatal("no host logged that it became the JetStream meta leader")
	}
	w.setTargets(others(m)...)
	killed := time.Now()
	hosts[m].proc.Kill()
	time.Sleep(stallWindow)
	stall := w.stallAfter(killed, stallWindow)
	t.Logf("(1) killed %s (JetStream meta leader): writes through the others stalled %v", hosts[m].h.Name, stall.Round(time.Millisecond))
	if stall > maxStall {
		t.Errorf("(1) writes stalled %v after the meta leader died, want ≤ %v", stall, maxStall)
	}
	restart(m)

	// (2) kill -9 a follower, keep writing, restart it: it catches up.
	f := (leader("meta") + 1) % 3
	w.setTargets(others(f)...)
	killed = time.Now()
	hosts[f].proc.Kill()
	time.Sleep(stallWindow)
	stall = w.stallAfter(killed, stallWindow)
	t.Logf("(2) killed %s (not the meta leader): writes stalled %v", hosts[f].h.Name, stall.Round(time.Millisecond))
	if stall > maxStall {
		t.Errorf("(2) writes stalled %v after a follower died, want ≤ %v", stall, maxStall)
	}
	took := restart(f)
	t.Logf("(2) %s restarted and every stream current on it (lag 0) %v after the restart", hosts[f].h.Name, took.Round(time.Millisecond))

	// (4) kill -9 the host whose scheduler leads (and its controller if
	// it leads there too): another host takes each lease over within
	// the TTL.
	for _, what := range []string{"scheduler", "controller"} {
		l := leader(what)
		if l < 0 {
			t.Fatalf("no host logged that its %s took the lease", what)
		}
		w.setTargets(others(l)...)
		killed = time.Now()
		hosts[l].proc.Kill()
		eventually(t, 20*time.Second, func() error {
			n := leader(what)
			if n < 0 || n == l || hosts[n].ledAt(what).Before(killed) {
				return fmt.Errorf("no other host's %s took the lease yet", what)
			}
			took = hosts[n].ledAt(what).Sub(killed)
			return nil
		})
		t.Logf("(4) killed %s (%s leader): %s's %s took over after %v (lease TTL 5s)", hosts[l].h.Name, what, hosts[leader(what)].h.Name, what, took.Round(time.Millisecond))
		// The TTL, or the leases stream's new leader election when the
		// dead host led it too (4-9 s, then the expired lease goes).
		if took > maxTakeover {
			t.Errorf("(4) the %s lease taken over after %v, want ≤ %v", what, took, maxTakeover)
		}
		// The new leaders work: a new replicaset's pods are made
		// (controller) and bound (scheduler) with this host down.
		rs := "after-" + what
		// Retried: right after the kill the store may answer 503 while
		// JetStream elects the leaders the dead host held.
		eventually(t, 20*time.Second, func() error {
			code, body, err := api.do(others(l)[0], "POST", "/replicasets", `{"name":"`+rs+`","desiredCount":2,"selector":{"app":"`+rs+`"},"template":{"image":"busybox","command":["sleep","1d"]}}`)
			if err != nil || code != 201 && code != 409 {
				return fmt.Errorf("create replicaset %s: %d %s %v", rs, code, body, err)
			}
			return nil
		})
		eventually(t, 30*time.Second, func() error { return rsRunning(others(l)[0], rs, 2) })
		restart(l)
	}

	stopWriter()
	<-writerDone
	// Nothing acknowledged is lost, read through every server.
	for _, ip := range ips {
		code, body, err := api.do(ip, "GET", "/api/v1/namespaces/default/configmaps", "")
		if err != nil || code != 200 {
			t.Fatalf("list configmaps on %s: %d %v", ip, code, err)
		}
		var list struct {
			Items []struct {
				Metadata struct{ Name string } `json:"metadata"`
			} `json:"items"`
		}
		if err := json.Unmarshal(body, &list); err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, it := range list.Items {
			have[it.Metadata.Name] = true
		}
		var lost []string
		for _, n := range w.names {
			if !have[n] {
				lost = append(lost, n)
			}
		}
		if len(lost) > 0 {
			t.Errorf("%s: %d of %d acknowledged writes lost: %v", ip, len(lost), len(w.names), lost[:min(len(lost), 10)])
		}
	}
	t.Logf("%d numbered writes acknowledged, %d attempts failed, none lost; total %v", w.count(), w.failed, time.Since(begin).Round(time.Second))
}
