package bus_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
)

func TestRevocations(t *testing.T) {
	for _, tc := range []struct {
		name                           string
		creds, registered, nodes, keep []string
		mark, revoke                   []string
	}{
		{"registered now", []string{"a"}, nil, []string{"a"}, nil, []string{"a"}, nil},
		{"made ahead, not registered yet", []string{"a"}, nil, nil, nil, nil, nil},
		{"deleted after registering", []string{"a", "b"}, []string{"a", "b"}, []string{"b"}, nil, nil, []string{"a"}},
		{"in-process kubelet", []string{"a"}, []string{"a"}, nil, []string{"a"}, nil, nil},
	} {
		mark, revoke := bus.Revocations(tc.creds, tc.registered, tc.nodes, tc.keep)
		if !slices.Equal(mark, tc.mark) || !slices.Equal(revoke, tc.revoke) {
			t.Errorf("%s: mark %v revoke %v, want %v %v", tc.name, mark, revoke, tc.mark, tc.revoke)
		}
	}
}

// Deleting a Node revokes its kubelet's NATS user: the connected kubelet
// is cut off and cannot log in again (issue 14, test 8). A kubelet whose
// Node was never registered keeps its credentials.
func TestDeletedNodeCannotLogIn(t *testing.T) {
	dir := t.TempDir()
	cfg := bus.ServerConfig{Addr: "127.0.0.1:0", StoreDir: filepath.Join(dir, "store"),
		AuthDir: filepath.Join(dir, "auth"), Logger: bustest.Logger(t)}
	ns, err := bus.StartServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	admin := bustest.ConnAs(t, ns.ClientURL(), cfg.AuthDir, bus.UserAPIServer, false)
	nodes := bus.NewInformer(admin, admin.Nodes, time.Hour, bustest.Logger(t))
	done := make(chan error, 3)
	go func() { done <- bus.WatchUsers(ctx, ns, cfg, 50*time.Millisecond) }()
	go func() { done <- nodes.Run(ctx) }()
	go func() {
		done <- bus.RevokeDeletedNodes(ctx, nodes, cfg.AuthDir, nil, time.Hour, bustest.Logger(t))
	}()
	t.Cleanup(func() {
		cancel()
		for range 3 {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	for _, n := range []string{"node-9", "node-ahead"} {
		if _, err := bus.EnsureCredentials(cfg.AuthDir, bus.KubeletUser(n)); err != nil {
			t.Fatal(err)
		}
	}
	creds, err := bus.ReadCredentials(bus.CredentialsPath(cfg.AuthDir, bus.KubeletUser("node-9")))
	if err != nil {
		t.Fatal(err)
	}
	login := func() (*nats.Conn, error) {
		return nats.Connect(ns.ClientURL(), nats.UserInfo(creds.User, creds.Password), nats.MaxReconnects(0))
	}
	// Wait for the reload that admits it.
	var k *nats.Conn
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if k, err = login(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubelet-node-9 is never admitted: %v", err)
		}
	}
	defer k.Close()
	closed := make(chan struct{})
	k.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := admin.Nodes.Create(ctx, &schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: "node-9"}}); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(cfg.AuthDir, bus.KubeletUser("node-9")+".registered")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node-9 is never marked registered")
		}
	}
	cur, err := admin.Nodes.Get(ctx, "node-9")
	if err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	if err := admin.Nodes.Delete(ctx, "node-9", cur.ResourceVersion); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
		t.Logf("node-9's connection closed %s after its Node was deleted", time.Since(deleted).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("node-9's connection is still open 10 s after its Node was deleted")
	}
	if c, err := login(); err == nil {
		c.Close()
		t.Fatal("node-9 logs in after its Node was deleted")
	}
	if _, err := os.Stat(bus.CredentialsPath(cfg.AuthDir, bus.KubeletUser("node-ahead"))); err != nil {
		t.Errorf("credentials made ahead of a first start were removed: %v", err)
	}
}
