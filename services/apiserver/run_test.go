package apiserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/apiserver"
)

func TestRunServesAndStops(t *testing.T) {
	ns := bustest.Server(t, "", "")
	log := bustest.Logger(t)
	conn := bustest.Conn(t, ns.ClientURL(), log)
	srv, err := apiserver.New(apiserver.Config{Addr: "127.0.0.1:0", Logger: log}, conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case <-srv.Listening():
	case err := <-done:
		t.Fatalf("Run returned before listening: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not listening after 10s")
	}

	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + srv.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}

	if err := srv.Run(ctx); err == nil {
		t.Error("second Run succeeded")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return 10s after cancel")
	}
	if _, err := client.Get("http://" + srv.Addr() + "/healthz"); err == nil {
		t.Error("still serving after Run returned")
	}
	client.CloseIdleConnections()
	noLeaks(t)
}

func TestRunListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), nil)
	srv, err := apiserver.New(apiserver.Config{Addr: ln.Addr().String(), Logger: bustest.Logger(t)}, conn)
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("Run on a taken port: %v", err)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Errorf("error %v does not wrap the net.OpError", err)
	}
}

// noLeaks fails if a goroutine of the apiserver or of an HTTP server
// connection outlives Run.
func noLeaks(t *testing.T) {
	t.Helper()
	bustest.Eventually(t, 5*time.Second, func() error {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		for g := range strings.SplitSeq(stacks, "\n\n") {
			for _, marker := range []string{"services/apiserver.(*Server)", "net/http.(*conn).serve", "net/http.(*Server).Serve"} {
				if strings.Contains(g, marker) {
					return fmt.Errorf("leaked goroutine:\n%s", g)
				}
			}
		}
		return nil
	})
}

// Lists come from the apiserver's cache once it has every write made before
// the request, so a list right after any component's write shows it: here
// pods are created and deleted on another connection, and each GET /pods
// right after must match the bucket exactly.
func TestListsReadOtherWritersWrites(t *testing.T) {
	ns := bustest.Server(t, "", "")
	log := bustest.Logger(t)
	conn := bustest.Conn(t, ns.ClientURL(), log)
	writer := bustest.Conn(t, ns.ClientURL(), log)
	srv, err := apiserver.New(apiserver.Config{Addr: "127.0.0.1:0", Logger: log}, conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-srv.Listening()
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	live := map[string]bool{}
	for i := range 100 {
		name := fmt.Sprintf("p%d", i%10)
		if live[name] {
			if err := writer.Pods.Delete(ctx, name, 0); err != nil {
				t.Fatal(err)
			}
			delete(live, name)
		} else {
			p := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: name}, PodSpec: schemas.PodSpec{Image: "busybox"}, Status: schemas.PodPending}
			if err := writer.Pods.Create(ctx, p); err != nil {
				t.Fatal(err)
			}
			live[name] = true
		}
		resp, err := client.Get("http://" + srv.Addr() + "/pods")
		if err != nil {
			t.Fatal(err)
		}
		var list []schemas.Pod
		err = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, p := range list {
			got[p.Name] = true
		}
		if !maps.Equal(got, live) {
			t.Fatalf("write %d: GET /pods lists %v, the bucket holds %v", i, got, live)
		}
	}
}
