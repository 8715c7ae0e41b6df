package apiserver_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/services/apiserver"
)

// kubeEnv is a running apiserver (Run: its caches, the built-in
// namespaces) on a real NATS, with a client-go clientset for it.
type kubeEnv struct {
	conn   *bus.Conn
	srv    *apiserver.Server
	url    string
	client *kubernetes.Clientset
	config *rest.Config
}

func startKube(t *testing.T) *kubeEnv { return startKubeAfter(t, nil) }

// startKubeAfter is startKube with before run on the store before the
// apiserver starts.
func startKubeAfter(t *testing.T, before func(*bus.Conn)) *kubeEnv {
	return startKubeAfterTB(t, before)
}

func startKubeAfterTB(t testing.TB, before func(*bus.Conn)) *kubeEnv {
	t.Helper()
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), bustest.Logger(t))
	if before != nil {
		before(conn)
	}
	return startKubeOn(t, conn)
}

// startKubeOn is startKube on a connection the caller opened.
func startKubeOn(t testing.TB, conn *bus.Conn) *kubeEnv {
	t.Helper()
	log := bustest.Logger(t)
	srv, err := apiserver.New(apiserver.Config{Addr: "127.0.0.1:0", Logger: log}, conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("apiserver Run: %v", err)
		}
	})
	select {
	case <-srv.Listening():
	case err := <-done:
		t.Fatalf("apiserver Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("apiserver did not listen within 30 s")
	}
	url := "http://" + srv.Addr()
	cfg := &rest.Config{Host: url, QPS: -1}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &kubeEnv{conn: conn, srv: srv, url: url, client: client, config: cfg}
}

func kctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestKubeDiscoveryAndVersion(t *testing.T) {
	e := startKube(t)
	v, err := e.client.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.Major != "1" || v.Minor != "33" {
		t.Errorf("version %s.%s (%s), want 1.33", v.Major, v.Minor, v.GitVersion)
	}
	_, lists, err := e.client.Discovery().ServerGroupsAndResources()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, l := range lists {
		for _, r := range l.APIResources {
			found[l.GroupVersion+"/"+r.Name] = true
		}
	}
	for _, want := range []string{"v1/nodes", "v1/namespaces", "v1/nodes/status"} {
		if !found[want] {
			t.Errorf("discovery lacks %s; has %v", want, found)
		}
	}
}

func TestKubeBuiltinNamespaces(t *testing.T) {
	e := startKube(t)
	ctx := kctx(t)
	list, err := e.client.CoreV1().Namespaces().List(ctx, metaList())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, ns := range list.Items {
		got[ns.Name] = true
		if ns.Status.Phase != "Active" {
			t.Errorf("namespace %s: phase %q", ns.Name, ns.Status.Phase)
		}
	}
	for _, want := range []string{"default", "kube-system", "kube-public"} {
		if !got[want] {
			t.Errorf("namespace %s missing; have %v", want, got)
		}
	}
	resp, err := http.Get(e.url + "/api/v1/namespaces/nope/pods")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("pods in a missing namespace: %d, want 404", resp.StatusCode)
	}
	_, err = e.client.CoreV1().Namespaces().Get(ctx, "nope", metaGet())
	var se interface{ Status() metaStatus }
	if !errors.As(err, &se) || se.Status().Code != 404 || se.Status().Reason != "NotFound" {
		t.Errorf("get namespace nope: %v, want a 404 NotFound Status", err)
	}
}
