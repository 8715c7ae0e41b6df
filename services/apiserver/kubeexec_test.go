package apiserver_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/util/exec"
)

// execURL is the pods/exec URL of pod p with the options kubectl sends.
func execURL(e *env, query string) *url.URL {
	u, err := url.Parse(e.url + "/api/v1/namespaces/default/pods/p/exec?" + query)
	if err != nil {
		panic(err)
	}
	return u
}

// sizeQueue gives one terminal size, then none once the test ends.
type sizeQueue struct {
	sizes chan remotecommand.TerminalSize
	done  <-chan struct{}
}

func (q sizeQueue) Next() *remotecommand.TerminalSize {
	select {
	case sz := <-q.sizes:
		return &sz
	case <-q.done:
		return nil
	}
}

// TestKubeExecClientGo: client-go's executors, WebSocket (v5) and SPDY
// (v4), run commands through pods/exec: output on both streams, stdin to
// its end, a terminal's size, and exit codes as CodeExitError.
func TestKubeExecClientGo(t *testing.T) {
	e := mustEnv(t)
	fakeExecKubelet(t, e, "n1")
	e.json("POST", "/pods", `{"name":"p","image":"alpine","nodeName":"n1"}`, http.StatusCreated, nil)
	cfg := &rest.Config{Host: e.url, QPS: -1}
	executors := map[string]func(u *url.URL) (remotecommand.Executor, error){
		"websocket": func(u *url.URL) (remotecommand.Executor, error) {
			return remotecommand.NewWebSocketExecutor(cfg, "GET", u.String())
		},
		"spdy": func(u *url.URL) (remotecommand.Executor, error) {
			return remotecommand.NewSPDYExecutor(cfg, "POST", u)
		},
	}
	for name, newExec := range executors {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			run := func(query string, opts remotecommand.StreamOptions) (string, string, error) {
				t.Helper()
				ex, err := newExec(execURL(e, query))
				if err != nil {
					t.Fatal(err)
				}
				var out, errb bytes.Buffer
				opts.Stdout = &out
				if strings.Contains(query, "stderr=true") {
					opts.Stderr = &errb
				}
				err = ex.StreamWithContext(ctx, opts)
				return out.String(), errb.String(), err
			}

			out, errs, err := run("command=fail&command=a&command=b&stdout=true&stderr=true", remotecommand.StreamOptions{})
			var ce exec.CodeExitError
			if out != "a b" || errs != "oops" || !errors.As(err, &ce) || ce.Code != 3 {
				t.Errorf("fail: %q %q %v, want exit code 3", out, errs, err)
			}
			if _, _, err := run("command=exit&command=0&stdout=true", remotecommand.StreamOptions{}); err != nil {
				t.Errorf("exit 0: %v", err)
			}
			if _, _, err := run("command=exit&command=42&stdout=true", remotecommand.StreamOptions{}); !errors.As(err, &ce) || ce.Code != 42 {
				t.Errorf("exit 42: %v", err)
			}

			in := strings.Repeat("a line of stdin\n", 5000)
			out, _, err = run("command=cat&stdin=true&stdout=true&stderr=true", remotecommand.StreamOptions{Stdin: strings.NewReader(in)})
			if err != nil || out != in {
				t.Errorf("cat: %d bytes of %d, %v", len(out), len(in), err)
			}

			sizes := sizeQueue{sizes: make(chan remotecommand.TerminalSize, 1), done: ctx.Done()}
			sizes.sizes <- remotecommand.TerminalSize{Width: 120, Height: 40}
			out, _, err = run("command=term&stdin=true&stdout=true&tty=true", remotecommand.StreamOptions{
				Stdin: strings.NewReader("typed\n"), Tty: true, TerminalSizeQueue: sizes})
			if err != nil || out != "120x40\ntyped\n" {
				t.Errorf("term: %q %v", out, err)
			}
		})
	}
}

// TestKubeExecErrors: what cannot run is a Status before any upgrade,
// with Kubernetes' codes.
func TestKubeExecErrors(t *testing.T) {
	e := mustEnv(t)
	fakeExecKubelet(t, e, "n1")
	for _, p := range []string{
		`{"name":"p","image":"alpine","nodeName":"n1"}`,
		`{"name":"nocontainer","image":"alpine","nodeName":"n1"}`,
		`{"name":"unscheduled","image":"alpine"}`,
		`{"name":"lost","image":"alpine","nodeName":"down"}`,
	} {
		e.json("POST", "/pods", p, http.StatusCreated, nil)
	}
	const pods = "/api/v1/namespaces/default/pods/"
	for path, want := range map[string]struct {
		code int32
		msg  string
	}{
		"p/exec?stdout=true":                               {http.StatusBadRequest, "command: Required value"},
		"p/exec?command=&stdout=true":                      {http.StatusBadRequest, "command: Required value"},
		"p/exec?command=cat":                               {http.StatusBadRequest, "at least 1 of stdin, stdout, stderr"},
		"p/exec?command=cat&stdout=true&follow=true":       {http.StatusBadRequest, "option follow is not supported"},
		"p/exec?command=cat&stdout=true&container=x":       {http.StatusBadRequest, "container x is not valid for pod p"},
		"nope/exec?command=cat&stdout=true":                {http.StatusNotFound, `pods "nope" not found`},
		"unscheduled/exec?command=cat&stdout=true":         {http.StatusBadRequest, "pod unscheduled does not have a host assigned"},
		"nocontainer/exec?command=cat&stdout=true":         {http.StatusBadRequest, "pod nocontainer is not running"},
		"lost/exec?command=cat&stdout=true":                {http.StatusBadGateway, "node down"},
		"p/exec?command=cat&stdout=true&stdin=1&tty=0&x=1": {http.StatusBadRequest, "option x is not supported"},
		"p/exec?command=a%00b&stdout=true":                 {http.StatusBadRequest, "NUL"},
	} {
		// As client-go's SPDY executor asks: the kubelet is reached only
		// with a protocol agreed on.
		req, _ := http.NewRequest("POST", e.url+pods+path, nil)
		req.Header.Set(httpstream.HeaderProtocolVersion, "v4.channel.k8s.io")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var st metav1.Status
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil || resp.StatusCode != int(want.code) || st.Kind != "Status" || st.Code != want.code || !strings.Contains(st.Message, want.msg) {
			t.Errorf("POST %s: %d %+v %v, want %d saying %q", path, resp.StatusCode, st, err, want.code, want.msg)
		}
	}
}

// TestKubeExecProtocols: a SPDY client without a protocol both sides
// speak is refused before the command starts, as the kubelet refuses it.
func TestKubeExecProtocols(t *testing.T) {
	e := mustEnv(t)
	fakeExecKubelet(t, e, "n1")
	e.json("POST", "/pods", `{"name":"p","image":"alpine","nodeName":"n1"}`, http.StatusCreated, nil)
	for proto, want := range map[string]int{"": http.StatusBadRequest, "v2.channel.k8s.io": http.StatusForbidden} {
		req, _ := http.NewRequest("POST", execURL(e, "command=cat&stdout=true").String(), nil)
		if proto != "" {
			req.Header.Set(httpstream.HeaderProtocolVersion, proto)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("protocol %q: %d, want %d", proto, resp.StatusCode, want)
		}
	}
}

// TestKubeExecClientGone: a client that goes away, either protocol, stops
// the command.
func TestKubeExecClientGone(t *testing.T) {
	e := mustEnv(t)
	cancelled := fakeExecKubelet(t, e, "n1")
	e.json("POST", "/pods", `{"name":"p","image":"alpine","nodeName":"n1"}`, http.StatusCreated, nil)
	cfg := &rest.Config{Host: e.url, QPS: -1}
	u := execURL(e, "command=block&stdout=true")
	ws, err := remotecommand.NewWebSocketExecutor(cfg, "GET", u.String())
	if err != nil {
		t.Fatal(err)
	}
	spdy, err := remotecommand.NewSPDYExecutor(cfg, "POST", u)
	if err != nil {
		t.Fatal(err)
	}
	for name, ex := range map[string]remotecommand.Executor{"websocket": ws, "spdy": spdy} {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		pr, pw := io.Pipe()
		go func() { done <- ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: pw}) }()
		if _, err := bufio.NewReader(pr).ReadString('\n'); err != nil { // the command runs
			t.Fatal(err)
		}
		go io.Copy(io.Discard, pr)
		cancel()
		select {
		case <-cancelled:
		case <-time.After(time.Minute):
			t.Fatalf("%s: the command was not stopped after the client went away", name)
		}
		<-done
	}
}
