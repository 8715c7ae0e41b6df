package apiserver_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
)

// fakeKubelet answers log requests for node: "nocontainer" pods get a
// refusal; others get their request echoed, and with follow one line per
// value sent on lines until cancelled, which it reports on cancelled.
func fakeKubelet(t *testing.T, e *env, node string, lines chan string, cancelled chan string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := e.conn.NATS().Subscribe(bus.KubeletLogsSubject(node), func(m *nats.Msg) {
		var req schemas.LogRequest
		if err := schemas.Unmarshal(m.Data, &req); err != nil {
			t.Error(err)
			return
		}
		if req.Pod == "nocontainer" {
			_ = bus.RespondLogError(e.conn.NATS(), m.Reply, schemas.LogCodeNoContainer, "pod nocontainer has no container yet")
			return
		}
		go bus.ServeLogStream(ctx, e.conn.NATS(), m.Reply, func(ctx context.Context, w io.Writer) error {
			fmt.Fprintf(w, "pod=%s uid=%t follow=%t tail=%d timestamps=%t\n", req.Pod, req.UID != "", req.Follow, req.Tail, req.Timestamps)
			if !req.Follow {
				return nil
			}
			for {
				select {
				case <-ctx.Done():
					cancelled <- req.Pod
					return nil
				case l := <-lines:
					fmt.Fprintln(w, l)
				}
			}
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.conn.NATS().Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe(); cancel() })
}

func getText(t *testing.T, url string) (int, string, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

func TestPodLogs(t *testing.T) {
	e := mustEnv(t)
	lines := make(chan string)
	cancelled := make(chan string, 1)
	fakeKubelet(t, e, "n1", lines, cancelled)
	for _, p := range []string{
		`{"name":"p","image":"alpine","nodeName":"n1"}`,
		`{"name":"nocontainer","image":"alpine","nodeName":"n1"}`,
		`{"name":"unscheduled","image":"alpine"}`,
		`{"name":"lost","image":"alpine","nodeName":"down"}`,
	} {
		e.json("POST", "/pods", p, http.StatusCreated, nil)
	}
	for path, want := range map[string]string{
		"/pods/p/logs":                                  "pod=p uid=true follow=false tail=-1 timestamps=false\n",
		"/pods/p/logs?tail=2&timestamps=true":           "pod=p uid=true follow=false tail=2 timestamps=true\n",
		"/pods/p/logs?tail=0&timestamps=false&follow=0": "pod=p uid=true follow=false tail=0 timestamps=false\n",
	} {
		status, ct, body := getText(t, e.url+path)
		if status != http.StatusOK || ct != "text/plain; charset=utf-8" || body != want {
			t.Errorf("GET %s: %d %s %q, want %q", path, status, ct, body, want)
		}
	}
	for path, want := range map[string]struct {
		status int
		msg    string
	}{
		"/pods/nope/logs":               {http.StatusNotFound, `pod "nope" not found`},
		"/pods/unscheduled/logs":        {http.StatusBadRequest, "not scheduled"},
		"/pods/nocontainer/logs":        {http.StatusBadRequest, "has no container yet"},
		"/pods/lost/logs":               {http.StatusBadGateway, "node down"},
		"/pods/p/logs?tail=x":           {http.StatusBadRequest, "tail"},
		"/pods/p/logs?tail=-2":          {http.StatusBadRequest, "tail"},
		"/pods/p/logs?follow=maybe":     {http.StatusBadRequest, "follow"},
		"/pods/p/logs?timestamps=2":     {http.StatusBadRequest, "timestamps"},
		"/pods/p/logs?container=x":      {http.StatusBadRequest, `"container"`},
		"/pods/P/logs":                  {http.StatusBadRequest, "name"},
		"/pods/p/logs/x":                {http.StatusNotFound, "no such path"},
		"/pods/p/logs?follow=true&tail": {http.StatusBadRequest, "tail"},
	} {
		r := e.json("GET", path, "", want.status, nil)
		if msg := r.errMsg(t); !strings.Contains(msg, want.msg) {
			t.Errorf("GET %s: %q does not say %q", path, msg, want.msg)
		}
	}
	e.json("POST", "/pods/p/logs", "", http.StatusMethodNotAllowed, nil)
}

func TestPodLogsFollow(t *testing.T) {
	e := mustEnv(t)
	lines := make(chan string)
	cancelled := make(chan string, 1)
	fakeKubelet(t, e, "n1", lines, cancelled)
	e.json("POST", "/pods", `{"name":"p","image":"alpine","nodeName":"n1"}`, http.StatusCreated, nil)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/pods/p/logs?follow=true&tail=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	readLine := func() string {
		t.Helper()
		l, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return l
	}
	if l := readLine(); l != "pod=p uid=true follow=true tail=1 timestamps=false\n" {
		t.Fatalf("first line %q", l)
	}
	// Each line reaches the client while the stream stays open.
	for i := range 3 {
		lines <- fmt.Sprintf("line %d", i)
		if l := readLine(); l != fmt.Sprintf("line %d\n", i) {
			t.Fatalf("followed %q", l)
		}
	}
	// The client leaves: the kubelet is told to stop.
	cancel()
	select {
	case p := <-cancelled:
		if p != "p" {
			t.Errorf("cancelled %s", p)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the kubelet's stream was not cancelled when the client left")
	}
	bustest.Eventually(t, 10*time.Second, func() error {
		if n := watchGoroutines(); n != 0 {
			return fmt.Errorf("%d streaming goroutines left", n)
		}
		return nil
	})
}
