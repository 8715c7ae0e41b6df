package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/sys/unix"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/pki"
	"github.com/miniku/miniku/schemas"
)

// sniffer captures every packet on the loopback interface with a raw
// AF_PACKET socket, as a pod with the host's network and CAP_NET_RAW
// could, and records which of its needles it saw.
type sniffer struct {
	fd      int
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	needles map[string][]byte
	seen    map[string]bool
	packets int
}

func htons(v uint16) uint16 { return binary.BigEndian.Uint16([]byte{byte(v), byte(v >> 8)}) }

func sniff(t *testing.T) *sniffer {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("capturing loopback traffic needs root (CI runs as root)")
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		t.Fatalf("raw socket: %v", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: lo.Index}); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	// Other tests share loopback: a big buffer so that bursts are not lost.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 16<<20)
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100_000})
	s := &sniffer{fd: fd, stop: make(chan struct{}), done: make(chan struct{}), needles: map[string][]byte{}, seen: map[string]bool{}}
	go s.run()
	t.Cleanup(s.close)
	return s
}

func (s *sniffer) run() {
	defer close(s.done)
	buf := make([]byte, 1<<17)
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		n, _, err := unix.Recvfrom(s.fd, buf, 0)
		if err != nil {
			continue // timeout: look at stop again
		}
		s.mu.Lock()
		s.packets++
		for name, b := range s.needles {
			if bytes.Contains(buf[:n], b) {
				s.seen[name] = true
			}
		}
		s.mu.Unlock()
	}
}

// watch starts looking for needle, reported under name.
func (s *sniffer) watch(name, needle string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.needles[name] = []byte(needle)
}

func (s *sniffer) saw(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[name]
}

func (s *sniffer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.packets
}

func (s *sniffer) close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
		<-s.done
		unix.Close(s.fd)
	}
}

// httpsClient trusts only the CA file.
func httpsClient(t *testing.T, caFile string) *http.Client {
	t.Helper()
	pool, err := pki.Pool(caFile)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func getWithToken(c *http.Client, url, token string) (int, []byte, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// requireNATSTLS fails unless the NATS server at addr announces that it
// requires TLS before any credential is sent.
func requireNATSTLS(t *testing.T, addr string) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		info, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.Contains(info, `"tls_required":true`) {
			t.Fatalf("NATS at %s does not require TLS: %s", addr, info)
		}
		return nil
	})
}

// `miniku up` with no TLS flag at all: NATS is TLS only and the API is
// served over HTTPS too, both with certificates from a CA it made in the
// data dir. A sniffer on loopback sees neither a NATS password nor the API
// token (while it does see the token sent over the plain-HTTP port, so it
// would have seen them).
func TestUpTLSByDefault(t *testing.T) {
	sn := sniff(t)
	dataDir := t.TempDir()
	apiAddr, httpsAddr, natsAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	start(t, "miniku up", "up", "--data-dir", dataDir, "--api-addr", apiAddr, "--https-addr", httpsAddr,
		"--nats-addr", natsAddr, "--nodes", "0")
	caFile := pki.CAPath(dataDir)
	eventually(t, 30*time.Second, func() error {
		_, err := os.Stat(caFile)
		return err
	})
	if fi, err := os.Stat(filepath.Join(pki.Dir(dataDir), "ca.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key: %v %v, want mode 0600", fi, err)
	}
	hc := httpsClient(t, caFile)
	eventually(t, 30*time.Second, func() error {
		code, body, err := getWithToken(hc, "https://"+httpsAddr+"/healthz", "")
		if err == nil && code != 200 {
			err = fmt.Errorf("healthz over HTTPS: %d %s", code, body)
		}
		return err
	})
	tokData, err := os.ReadFile(filepath.Join(dataDir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tokData))
	readCreds := func(user string) bus.Credentials {
		c, err := bus.ReadCredentials(bus.CredentialsPath(filepath.Join(dataDir, "nats", "auth"), user))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	hollow, viewer := readCreds(bus.UserHollow), readCreds(bus.UserViewer)
	sn.watch("token", token)
	sn.watch("hollow password", hollow.Password)
	sn.watch("viewer password", viewer.Password)
	// INFO is the one plain-text NATS message: proof the capture sees
	// this server's traffic at all.
	_, natsPort, _ := net.SplitHostPort(natsAddr)
	sn.watch("nats INFO", `"port":`+natsPort+`,`)

	// HTTPS: the same API and token; a wrong token is a 401.
	if code, body, err := getWithToken(hc, "https://"+httpsAddr+"/pods", token); err != nil || code != 200 {
		t.Fatalf("GET /pods over HTTPS: %d %s %v", code, body, err)
	}
	if code, _, err := getWithToken(hc, "https://"+httpsAddr+"/pods", "wrong"); err != nil || code != 401 {
		t.Fatalf("GET /pods over HTTPS with a wrong token: %d %v, want 401", code, err)
	}
	// curl with the CA, as the README shows.
	if curl, err := exec.LookPath("curl"); err == nil {
		out, err := exec.Command(curl, "-sS", "--fail", "--cacert", caFile, "https://"+httpsAddr+"/healthz").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "ok") {
			t.Fatalf("curl --cacert %s https://%s/healthz: %v %s", caFile, httpsAddr, err, out)
		}
	} else {
		t.Log("no curl here; HTTPS checked with Go's client only")
	}
	// The CLI reaches HTTPS trusting the data dir's CA without --ca.
	cl := &cluster{dataDir: dataDir, apiAddr: "https://" + httpsAddr}
	if out, errOut, code := cl.cli(t, "", "get", "nodes"); code != 0 {
		t.Fatalf("miniku get nodes over HTTPS: exit %d\n%s%s", code, out, errOut)
	}

	// NATS requires TLS: the server says so before any credential is
	// sent, and a client that logs in in plain text anyway is not let in.
	conn, err := net.DialTimeout("tcp", natsAddr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	info, err := r.ReadString('\n')
	if err != nil || !strings.Contains(info, `"tls_required":true`) {
		t.Fatalf("INFO %q (%v): want tls_required", info, err)
	}
	// (Not a real password: the capture must not see a real one.)
	connect, _ := json.Marshal(map[string]any{"user": "viewer", "pass": "not-the-password", "verbose": false, "pedantic": false})
	fmt.Fprintf(conn, "CONNECT %s\r\nPING\r\n", connect)
	rest, _ := io.ReadAll(r)
	conn.Close()
	if strings.Contains(string(rest), "PONG") {
		t.Fatalf("plain-text NATS client answered: %q", rest)
	}
	if nc, err := nats.Connect("nats://"+natsAddr, nats.UserInfo(viewer.User, viewer.Password), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("NATS client without the CA connected")
	}
	nc, err := nats.Connect("nats://"+natsAddr, nats.UserInfo(viewer.User, viewer.Password), nats.RootCAs(caFile))
	if err != nil {
		t.Fatalf("NATS with the CA: %v", err)
	}
	if !nc.TLSRequired() {
		t.Fatal("NATS connection without TLS")
	}
	nc.Close()

	// A separate process (hollow kubelets) finds the CA in the data dir
	// and logs in over TLS.
	start(t, "miniku kubelet --hollow", "kubelet", "--hollow", "--count", "1", "--name-prefix", "tls-",
		"--data-dir", dataDir, "--nats", "nats://"+natsAddr, "--heartbeat-interval", "500ms")
	eventually(t, 60*time.Second, func() error {
		code, body, err := getWithToken(hc, "https://"+httpsAddr+"/nodes/tls-1", token)
		if err != nil {
			return err
		}
		var n schemas.Node
		if code != 200 || json.Unmarshal(body, &n) != nil || n.Status != schemas.NodeReady {
			return fmt.Errorf("node tls-1: %d %s", code, body)
		}
		return nil
	})
	for _, secret := range []string{"token", "hollow password", "viewer password"} {
		if sn.saw(secret) {
			t.Fatalf("the loopback capture saw the %s in clear", secret)
		}
	}
	if !sn.saw("nats INFO") {
		t.Fatal("the capture never saw this NATS server's INFO: it captured nothing useful")
	}
	// Control: the plain-HTTP port (for curl on loopback) does carry the
	// token in clear, and the capture sees it.
	if code, body, err := getWithToken(http.DefaultClient, "http://"+apiAddr+"/pods", token); err != nil || code != 200 {
		t.Fatalf("GET /pods over plain HTTP: %d %s %v", code, body, err)
	}
	eventually(t, 10*time.Second, func() error {
		if !sn.saw("token") {
			return fmt.Errorf("token sent over plain HTTP not captured (%d packets)", sn.count())
		}
		return nil
	})
}

// Pod Security "baseline" is `up`'s default: `miniku apply` of a pod or a
// replicaset with hostNetwork is refused with Kubernetes' message naming
// the field; --pod-security privileged allows them.
func TestApplyHostNetworkNeedsPrivileged(t *testing.T) {
	hostNetPod := `apiVersion: v1
kind: Pod
metadata: {name: sniffer}
spec:
  hostNetwork: true
  containers: [{name: c, image: busybox, command: ["sleep", "1000"]}]
`
	hostNetRS := `apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: sniffers}
spec:
  replicas: 1
  selector: {matchLabels: {app: s}}
  template:
    metadata: {labels: {app: s}}
    spec:
      hostNetwork: true
      containers: [{name: c, image: busybox, command: ["sleep", "1000"]}]
`
	upCluster := func(extra ...string) *cluster {
		c := &cluster{dataDir: t.TempDir(), apiAddr: freeAddr(t), natsAddr: freeAddr(t)}
		c.api = api{t: t, base: "http://" + c.apiAddr}
		start(t, "miniku up", append([]string{"up", "--data-dir", c.dataDir, "--api-addr", c.apiAddr,
			"--nats-addr", c.natsAddr, "--nodes", "0"}, extra...)...)
		eventually(t, 30*time.Second, func() error {
			if code, body := c.api.do("GET", "/healthz", ""); code != 200 {
				return fmt.Errorf("healthz: %d %s", code, body)
			}
			return nil
		})
		return c
	}

	c := upCluster()
	for _, tc := range []struct{ manifest, want string }{
		{hostNetPod, `pod "sniffer" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)`},
		{hostNetRS, `replicaset "sniffers" is forbidden: violates PodSecurity "baseline:latest": host namespaces (template.hostNetwork=true)`},
	} {
		out, errOut, code := c.cli(t, tc.manifest, "apply", "-f", "-")
		if code == 0 || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "403") {
			t.Fatalf("apply: exit %d, stdout %q, stderr %q; want a failure with %q (HTTP 403)", code, out, errOut, tc.want)
		}
	}
	if pods, err := c.api.pods(); err != nil || len(pods) != 0 {
		t.Fatalf("pods after refused applies: %v %v", pods, err)
	}

	priv := upCluster("--pod-security", "privileged")
	priv.mustCLI(t, hostNetPod, "apply", "-f", "-")
	priv.mustCLI(t, hostNetRS, "apply", "-f", "-")
	var p schemas.Pod
	if err := priv.api.getJSON("/pods/sniffer", &p); err != nil || !p.HostNetwork {
		t.Fatalf("pod under --pod-security privileged: %+v %v", p, err)
	}
	// A bad level is refused at start, by name.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, miniku(t), "up", "--data-dir", t.TempDir(), "--api-addr", freeAddr(t),
		"--https-addr", freeAddr(t), "--nats-addr", freeAddr(t), "--nodes", "0", "--pod-security", "restricted")
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+configHome(t))
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "--pod-security") {
		t.Fatalf("up --pod-security restricted: %v\n%s", err, out)
	}
}
