package apiserver_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/apiserver"
)

// fakeExecKubelet runs exec requests for node: "cat" echoes stdin line by
// line, "fail" writes to both streams and exits 3, "exit N" exits N,
// "block" writes "started" and waits to be stopped, "term" (tty) writes the terminal's first size and echoes stdin;
// "nocontainer" pods get a refusal.
func fakeExecKubelet(t *testing.T, e *env, node string) (cancelled <-chan struct{}) {
	t.Helper()
	stopped := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := e.conn.NATS().Subscribe(bus.KubeletExecSubject(node), func(m *nats.Msg) {
		var req schemas.ExecRequest
		if err := schemas.Unmarshal(m.Data, &req); err != nil {
			t.Error(err)
			return
		}
		if req.Pod == "nocontainer" {
			_ = bus.RespondLogError(e.conn.NATS(), m.Reply, schemas.LogCodeNoContainer, "pod nocontainer is not running")
			return
		}
		go bus.ServeExec(ctx, e.conn.NATS(), m.Reply, req, func(ctx context.Context, eio bus.ExecIO) (int, error) {
			stdin, stdout, stderr := eio.Stdin, eio.Stdout, eio.Stderr
			switch req.Command[0] {
			case "cat":
				if stdin == nil {
					return 0, nil
				}
				sc := bufio.NewScanner(stdin)
				for sc.Scan() {
					fmt.Fprintln(stdout, sc.Text())
				}
				return 0, sc.Err()
			case "block":
				fmt.Fprintln(stdout, "started")
				<-ctx.Done()
				stopped <- struct{}{}
				return -1, ctx.Err()
			case "exit":
				code, err := strconv.Atoi(req.Command[1])
				return code, err
			case "term":
				// A terminal's first size, then what is typed.
				if eio.Resize == nil {
					return 1, errors.New("no terminal")
				}
				select {
				case sz := <-eio.Resize:
					fmt.Fprintf(stdout, "%dx%d\n", sz.Width, sz.Height)
				case <-ctx.Done():
					return -1, ctx.Err()
				}
				_, err := io.Copy(stdout, stdin)
				return 0, err
			case "fail":
				fmt.Fprint(stdout, strings.Join(req.Command[1:], " "))
				fmt.Fprint(stderr, "oops")
				return 3, nil
			}
			return 127, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.conn.NATS().Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe(); cancel() })
	return stopped
}

type frame struct {
	typ  byte
	data string
}

func readFrame(t *testing.T, r io.Reader) (frame, error) {
	t.Helper()
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return frame{}, err
	}
	p := make([]byte, binary.BigEndian.Uint32(h[1:]))
	if _, err := io.ReadFull(r, p); err != nil {
		return frame{}, err
	}
	return frame{h[0], string(p)}, nil
}

func TestPodExec(t *testing.T) {
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
	resp, err := http.Post(e.url+"/pods/p/exec?command=fail&command=a&command=b+c", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []frame
	for {
		f, err := readFrame(t, resp.Body)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, f)
	}
	resp.Body.Close()
	want := []frame{{apiserver.ExecStdout, "a b c"}, {apiserver.ExecStderr, "oops"}, {apiserver.ExecExit, "3"}}
	if resp.Header.Get("Content-Type") != apiserver.ExecContentType || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("exec: %s %v, want %v", resp.Header.Get("Content-Type"), got, want)
	}
	for path, want := range map[string]struct {
		status int
		msg    string
	}{
		"/pods/nope/exec?command=cat":             {http.StatusNotFound, `pod "nope" not found`},
		"/pods/unscheduled/exec?command=cat":      {http.StatusBadRequest, "not scheduled"},
		"/pods/nocontainer/exec?command=cat":      {http.StatusBadRequest, "is not running"},
		"/pods/lost/exec?command=cat":             {http.StatusBadGateway, "node down"},
		"/pods/p/exec":                            {http.StatusBadRequest, "command"},
		"/pods/p/exec?command=":                   {http.StatusBadRequest, "command"},
		"/pods/p/exec?command=cat&stdin=maybe":    {http.StatusBadRequest, "stdin"},
		"/pods/p/exec?command=cat&container=x":    {http.StatusBadRequest, `"container"`},
		"/pods/p/exec?command=cat&stdin&stdin=no": {http.StatusBadRequest, "stdin"},
	} {
		r := e.json("POST", path, "", want.status, nil)
		if msg := r.errMsg(t); !strings.Contains(msg, want.msg) {
			t.Errorf("POST %s: %q does not say %q", path, msg, want.msg)
		}
	}
	e.json("GET", "/pods/p/exec?command=cat", "", http.StatusMethodNotAllowed, nil)
}

// TestPodExecStdinFullDuplex: the command's output comes back while the
// request body is still being sent, line by line.
func TestPodExecStdinFullDuplex(t *testing.T) {
	e := mustEnv(t)
	fakeExecKubelet(t, e, "n1")
	e.json("POST", "/pods", `{"name":"p","image":"alpine","nodeName":"n1"}`, http.StatusCreated, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequestWithContext(ctx, "POST", e.url+"/pods/p/exec?command=cat&stdin=true", pr)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for i := range 3 {
		line := fmt.Sprintf("line %d\n", i)
		if _, err := io.WriteString(pw, line); err != nil {
			t.Fatal(err)
		}
		f, err := readFrame(t, resp.Body)
		if err != nil || f != (frame{apiserver.ExecStdout, line}) {
			t.Fatalf("echo of %q: %v %v", line, f, err)
		}
	}
	pw.Close()
	if f, err := readFrame(t, resp.Body); err != nil || f != (frame{apiserver.ExecExit, "0"}) {
		t.Fatalf("end: %v %v", f, err)
	}
}

// TestPodExecClientGone: a client that disconnects stops the command.
func TestPodExecClientGone(t *testing.T) {
	e := mustEnv(t)
	cancelled := fakeExecKubelet(t, e, "n1")
	e.json("POST", "/pods", `{"name":"p","image":"alpine","nodeName":"n1"}`, http.StatusCreated, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", e.url+"/pods/p/exec?command=block", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	cancel()
	select {
	case <-cancelled:
	case <-time.After(time.Minute):
		t.Fatal("the command was not stopped after the client went away")
	}
}
