package bus_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
)

// rawAs is a plain nats.go connection as user, with its permission errors
// sent to the returned channel.
func rawAs(t *testing.T, url, authDir, user string) (*nats.Conn, <-chan error) {
	t.Helper()
	creds, err := bus.ReadCredentials(bus.CredentialsPath(authDir, user))
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 100)
	nc, err := nats.Connect(url, nats.UserInfo(creds.User, creds.Password),
		nats.CustomInboxPrefix(bus.InboxPrefix(user)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc, errs
}

// wantViolation waits for the server's permission error naming subject.
func wantViolation(t *testing.T, errs <-chan error, subject string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case err := <-errs:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), subject) {
				return
			}
			t.Logf("other async error: %v", err)
		case <-timeout:
			t.Fatalf("no permissions violation for %s", subject)
		}
	}
}

func TestNATSRequiresCredentials(t *testing.T) {
	ns, authDir := bustest.SecureServer(t, "node-1")
	if _, err := nats.Connect(ns.ClientURL()); err == nil {
		t.Fatal("anonymous connection accepted")
	}
	if _, err := nats.Connect(ns.ClientURL(), nats.UserInfo(bus.UserViewer, "wrong")); err == nil {
		t.Fatal("wrong password accepted")
	}
	for _, u := range []string{"apiserver", "scheduler", "controller", "viewer", "kubelet-node-1"} {
		fi, err := os.Stat(filepath.Join(authDir, u+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s credentials have mode %v, want 0600", u, fi.Mode().Perm())
		}
	}
	// A group-readable credentials file is refused, like an ssh key.
	p := filepath.Join(authDir, "viewer.json")
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.ReadCredentials(p); err == nil {
		t.Fatal("group-readable credentials accepted")
	}
}

func TestKubeletLeastPrivilege(t *testing.T) {
	ns, authDir := bustest.SecureServer(t, "node-1", "node-2")
	url := ns.ClientURL()
	ctx := context.Background()
	// The control plane creates the buckets; the kubelet binds to them.
	admin := bustest.ConnAs(t, url, authDir, bus.UserAPIServer, false)
	serveNodeAPI(t, admin)
	kubelet := bustest.ConnAs(t, url, authDir, bus.KubeletUser("node-1"), true)

	// Its own node and pods (through the node API): allowed.
	if err := kubelet.Nodes.Create(ctx, &schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: "node-1"}, Status: schemas.NodeReady}); err != nil {
		t.Fatalf("kubelet-node-1 writes its own node: %v", err)
	}
	if err := admin.Pods.Create(ctx, &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "p"}, PodSpec: schemas.PodSpec{Image: "busybox", Command: []string{"true"}}, NodeName: "node-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := kubelet.MutatePodStatus(ctx, "node-1", nil, "p", func(p *schemas.Pod) error { p.Status = schemas.PodRunning; return nil }); err != nil {
		t.Fatalf("kubelet-node-1 updates its pod: %v", err)
	}
	if kubelet.Pods != nil {
		t.Fatal("a kubelet's connection has the pods bucket")
	}
	if _, err := kubelet.GetNodePod(ctx, "node-1", "p"); err != nil {
		t.Fatalf("kubelet reads its pod: %v", err)
	}

	// Another node's key: refused, nothing written.
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := kubelet.Nodes.Create(wctx, &schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: "node-2"}}); err == nil {
		t.Fatal("kubelet-node-1 wrote node-2's key")
	}
	if _, err := admin.Nodes.Get(ctx, "node-2"); !errors.Is(err, bus.ErrNotFound) {
		t.Fatalf("node-2 after a refused write: %v, want ErrNotFound", err)
	}

	nc, errs := rawAs(t, url, authDir, bus.KubeletUser("node-1"))
	// Another node's heartbeat: refused. The controller sees node-1's
	// heartbeat, published after node-2's on the same connection, so
	// node-2's would have arrived first.
	ctrl, _ := rawAs(t, url, authDir, bus.UserController)
	sub, err := ctrl.SubscribeSync("node.heartbeat.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := ctrl.Flush(); err != nil {
		t.Fatal(err)
	}
	_ = nc.Publish("node.heartbeat.node-2", []byte("forged"))
	_ = nc.Publish("node.heartbeat.node-1", []byte("ok"))
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	wantViolation(t, errs, "node.heartbeat.node-2")
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "node.heartbeat.node-1" {
		t.Fatalf("controller received %s from kubelet-node-1", msg.Subject)
	}

	_ = nc.Publish("$KV.nodes.node-2", []byte("x"))
	wantViolation(t, errs, "$KV.nodes.node-2")

	// No stream creation or deletion.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	if _, err := js.CreateStream(sctx, jetstream.StreamConfig{Name: "EVIL", Subjects: []string{"evil.>"}}); err == nil {
		t.Fatal("kubelet created a stream")
	}
	wantViolation(t, errs, "$JS.API.STREAM.CREATE.EVIL")
	_ = nc.Publish("$JS.API.STREAM.DELETE.KV_pods", nil)
	wantViolation(t, errs, "$JS.API.STREAM.DELETE.KV_pods")
	// Nor reading another component's replies.
	if _, err := nc.SubscribeSync("_INBOX.apiserver.>"); err != nil {
		t.Fatal(err)
	}
	wantViolation(t, errs, "_INBOX.apiserver.>")
}

func TestViewerReadOnly(t *testing.T) {
	ns, authDir := bustest.SecureServer(t)
	url := ns.ClientURL()
	ctx := context.Background()
	admin := bustest.ConnAs(t, url, authDir, bus.UserAPIServer, false)
	if err := admin.ReplicaSets.Create(ctx, &schemas.ReplicaSet{ObjectMeta: schemas.ObjectMeta{Name: "web"}, DesiredCount: 1}); err != nil {
		t.Fatal(err)
	}

	nc, errs := rawAs(t, url, authDir, bus.UserViewer)
	sub, err := nc.SubscribeSync("pod.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Publish(bus.SubjPodCreated, schemas.Event{Kind: "Pod", Name: "x"}); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 10*time.Second, func() error {
		m, err := sub.NextMsg(time.Second)
		if err != nil {
			return err
		}
		if m.Subject != bus.SubjPodCreated {
			return errors.New("got " + m.Subject)
		}
		return nil
	})

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, bus.BucketReplicaSets)
	if err != nil {
		t.Fatalf("viewer binds to the replicasets bucket: %v", err)
	}
	if _, err := kv.Get(ctx, "web"); err != nil {
		t.Fatalf("viewer reads a replicaset: %v", err)
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		t.Fatalf("viewer watches: %v", err)
	}
	select {
	case e := <-w.Updates():
		if e == nil || e.Key() != "web" {
			t.Fatalf("watch: %v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no watch entry")
	}
	_ = w.Stop()

	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := kv.Put(pctx, "web", []byte("x")); err == nil {
		t.Fatal("viewer wrote a replicaset")
	}
	wantViolation(t, errs, "$KV.replicasets.web")
	_ = nc.Publish("pod.created", nil)
	wantViolation(t, errs, "pod.created")
	if _, err := js.CreateStream(pctx, jetstream.StreamConfig{Name: "EVIL", Subjects: []string{"evil.>"}}); err == nil {
		t.Fatal("viewer created a stream")
	}
	_ = nc.Publish("$JS.API.STREAM.PURGE.KV_replicasets", nil)
	wantViolation(t, errs, "$JS.API.STREAM.PURGE.KV_replicasets")
	if rs, err := admin.ReplicaSets.Get(ctx, "web"); err != nil || rs.DesiredCount != 1 {
		t.Fatalf("replicaset after the viewer's attempts: %+v %v", rs, err)
	}
}

// Every component works with its own user: buckets, watches, events.
func TestComponentUsersConnect(t *testing.T) {
	ns, authDir := bustest.SecureServer(t, "node-1")
	url := ns.ClientURL()
	for _, u := range []string{bus.UserAPIServer, bus.UserScheduler, bus.UserController} {
		c := bustest.ConnAs(t, url, authDir, u, false)
		if u == bus.UserAPIServer {
			serveNodeAPI(t, c) // records the kubelet's events
		}
		c.Emit(schemas.ObjectEvent{Kind: "Pod", Name: "x", Reason: "Test"})
	}
	k := bustest.ConnAs(t, url, authDir, bus.KubeletUser("node-1"), true)
	k.Emit(schemas.ObjectEvent{Kind: "Pod", Name: "x", Reason: "Test"})
	bustest.Eventually(t, 10*time.Second, func() error {
		info, err := k.EventsStream().Info(context.Background())
		if err != nil {
			return err
		}
		if info.State.Msgs != 4 {
			return errors.New("events stream does not have 4 messages yet")
		}
		return nil
	})
}

func TestNATSNonLoopbackWithoutAuthRefused(t *testing.T) {
	_, err := bus.StartServer(bus.ServerConfig{Addr: "0.0.0.0:0", StoreDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "without authentication") {
		t.Fatalf("got %v, want a refusal", err)
	}
}

func TestNATSTLSRefusesPlainText(t *testing.T) {
	cert, key := bustest.SelfSignedCert(t)
	dir := t.TempDir()
	authDir := filepath.Join(dir, "auth")
	ns, err := bus.StartServer(bus.ServerConfig{Addr: "127.0.0.1:0", StoreDir: filepath.Join(dir, "store"),
		AuthDir: authDir, TLSCert: cert, TLSKey: key, Logger: bustest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	addr := ns.Addr().String()
	creds, err := bus.ReadCredentials(bus.CredentialsPath(authDir, bus.UserViewer))
	if err != nil {
		t.Fatal(err)
	}

	// A plain-text client speaking the protocol with valid credentials
	// gets no PONG: the server wants a TLS handshake.
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	info, err := r.ReadString('\n')
	if err != nil || !strings.Contains(info, `"tls_required":true`) {
		t.Fatalf("INFO %q: %v", info, err)
	}
	connect, _ := json.Marshal(map[string]any{"user": creds.User, "pass": creds.Password, "verbose": false, "pedantic": false})
	fmt.Fprintf(conn, "CONNECT %s\r\nPING\r\n", connect)
	var got strings.Builder
	for {
		line, err := r.ReadString('\n')
		got.WriteString(line)
		if err != nil {
			break
		}
	}
	if strings.Contains(got.String(), "PONG") {
		t.Fatalf("plain-text client was answered: %q", got.String())
	}

	// With the CA, components connect over TLS.
	api, err := bus.ReadCredentials(bus.CredentialsPath(authDir, bus.UserAPIServer))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := bus.Connect(ctx, bus.Options{URL: "tls://" + addr, User: api.User, Password: api.Password,
		TLSCA: cert, Logger: bustest.Logger(t)})
	if err != nil {
		t.Fatalf("component over TLS: %v", err)
	}
	c.Close()
	nc, err := nats.Connect("tls://"+addr, nats.UserInfo(creds.User, creds.Password), nats.RootCAs(cert))
	if err != nil {
		t.Fatalf("TLS client with the CA: %v", err)
	}
	if !nc.TLSRequired() {
		t.Fatal("connection not using TLS")
	}
	nc.Close()
}

// A kubelet whose credentials appear while the server runs is admitted
// without a restart, and components already connected stay connected.
func TestWatchUsersAdmitsNewKubelet(t *testing.T) {
	dir := t.TempDir()
	cfg := bus.ServerConfig{Addr: "127.0.0.1:0", StoreDir: filepath.Join(dir, "store"),
		AuthDir: filepath.Join(dir, "auth"), Logger: bustest.Logger(t)}
	ns, err := bus.StartServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bus.WatchUsers(ctx, ns, cfg, 50*time.Millisecond) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	admin := bustest.ConnAs(t, ns.ClientURL(), cfg.AuthDir, bus.UserAPIServer, false)

	if _, err := bus.EnsureCredentials(cfg.AuthDir, bus.KubeletUser("node-9")); err != nil {
		t.Fatal(err)
	}
	k := bustest.ConnAs(t, ns.ClientURL(), cfg.AuthDir, bus.KubeletUser("node-9"), true)
	if err := k.Nodes.Create(ctx, &schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: "node-9"}}); err != nil {
		t.Fatalf("new kubelet writes its node: %v", err)
	}
	if _, err := admin.Nodes.Get(ctx, "node-9"); err != nil {
		t.Fatalf("apiserver connection after the reload: %v", err)
	}
}

// The apiserver asks a kubelet for logs on kubelet.<node>.logs and the
// kubelet streams many replies back, acked on <reply>.ctl; no other kubelet
// may take the request, and a kubelet may publish only to replies it got.
func TestLogStreamPermissions(t *testing.T) {
	ns, authDir := bustest.SecureServer(t, "node-1", "node-2")
	url := ns.ClientURL()
	api, _ := rawAs(t, url, authDir, bus.UserAPIServer)
	k1, k1errs := rawAs(t, url, authDir, bus.KubeletUser("node-1"))
	k2, k2errs := rawAs(t, url, authDir, bus.KubeletUser("node-2"))

	if _, err := k2.QueueSubscribe("kubelet.node-1.logs", "kubelet-logs", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	wantViolation(t, k2errs, "kubelet.node-1.logs")

	const chunks = 20
	ctl := make(chan struct{}, 1)
	if _, err := k1.QueueSubscribe("kubelet.node-1.logs", "kubelet-logs", func(m *nats.Msg) {
		if _, err := k1.Subscribe(m.Reply+".ctl", func(*nats.Msg) { ctl <- struct{}{} }); err != nil {
			t.Error(err)
			return
		}
		_ = k1.Flush()
		for i := 0; i < chunks; i++ {
			_ = k1.Publish(m.Reply, []byte("chunk"))
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := k1.Flush(); err != nil {
		t.Fatal(err)
	}
	reply := bus.StreamInbox(api.NewInbox(), "node-1")
	sub, err := api.SubscribeSync(reply)
	if err != nil {
		t.Fatal(err)
	}
	if err := api.PublishRequest("kubelet.node-1.logs", reply, []byte("req")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < chunks; i++ {
		if _, err := sub.NextMsg(10 * time.Second); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
	bustest.Eventually(t, 10*time.Second, func() error {
		_ = api.Publish(reply+".ctl", []byte("ack"))
		select {
		case <-ctl:
			return nil
		case <-time.After(100 * time.Millisecond):
			return errors.New("kubelet got no ack")
		}
	})
	// Not a reply it received: refused.
	_ = k1.Publish(bus.InboxPrefix(bus.UserAPIServer)+".forged", []byte("x"))
	wantViolation(t, k1errs, bus.InboxPrefix(bus.UserAPIServer)+".forged")
	_ = k1.Publish("pod.assigned.node-2", []byte("x"))
	wantViolation(t, k1errs, "pod.assigned.node-2")
}

// Without credentials a component fails with the reason instead of
// waiting forever.
func TestConnectWithoutCredentialsFails(t *testing.T) {
	ns, _ := bustest.SecureServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := bus.Connect(ctx, bus.Options{URL: ns.ClientURL(), Logger: bustest.Logger(t)})
	if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("connect without credentials: %v, want an authorization error", err)
	}
}
