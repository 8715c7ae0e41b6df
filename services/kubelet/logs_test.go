package kubelet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	ctr "github.com/miniku/miniku/runtime"
	"github.com/miniku/miniku/schemas"
)

// fakeRuntime has containers whose logs are plain files; Wait returns
// when the test closes exited.
type fakeRuntime struct {
	mu         sync.Mutex
	containers map[string]ctr.Container
	exited     chan struct{}
}

func (f *fakeRuntime) Start(context.Context, ctr.Spec) (ctr.Container, error) {
	return ctr.Container{}, errors.New("fake runtime starts nothing")
}

func (f *fakeRuntime) Get(id string) (ctr.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[id]
	if !ok {
		return c, ctr.ErrNotFound
	}
	return c, nil
}

func (f *fakeRuntime) List() ([]ctr.Container, error) { return nil, nil }

func (f *fakeRuntime) Wait(ctx context.Context, id string) (ctr.Container, error) {
	select {
	case <-ctx.Done():
		return ctr.Container{}, ctx.Err()
	case <-f.exited:
		return f.Get(id)
	}
}

func (f *fakeRuntime) Stop(context.Context, string, time.Duration) error { return nil }
func (f *fakeRuntime) Remove(string) error                               { return nil }

var _ Runtime = (*fakeRuntime)(nil)

type logEnv struct {
	conn    *bus.Conn
	k       *Kubelet
	logPath string
	rt      *fakeRuntime
}

func mustLogEnv(t *testing.T) *logEnv {
	t.Helper()
	ns := bustest.Server(t, "", "")
	log := bustest.Logger(t)
	conn := bustest.Conn(t, ns.ClientURL(), log)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	pod := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "p", UID: "uid-1"}, NodeName: "n1", Status: schemas.PodRunning}
	if err := conn.Pods.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	other := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "elsewhere", UID: "uid-2"}, NodeName: "n2"}
	if err := conn.Pods.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	pending := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "pending", UID: "uid-3"}, NodeName: "n1", Status: schemas.PodPending}
	if err := conn.Pods.Create(ctx, pending); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e := &logEnv{conn: conn, logPath: filepath.Join(dir, "container.log"), rt: &fakeRuntime{exited: make(chan struct{})}}
	c := ctr.Container{ID: "c1", Labels: map[string]string{labelPod: "p", labelPodUID: "uid-1"}, LogPath: e.logPath,
		Status: ctr.StatusRunning, CreatedAt: time.Now()}
	// An older container of the same pod, and one of a previous pod of
	// the same name: neither is the one to read.
	old := ctr.Container{ID: "c0", Labels: c.Labels, LogPath: filepath.Join(dir, "old.log"), Status: ctr.StatusExited, CreatedAt: c.CreatedAt.Add(-time.Hour)}
	stale := ctr.Container{ID: "c9", Labels: map[string]string{labelPod: "p", labelPodUID: "uid-0"}, LogPath: filepath.Join(dir, "stale.log"), Status: ctr.StatusRunning, CreatedAt: c.CreatedAt.Add(time.Hour)}
	e.rt.containers = map[string]ctr.Container{"c1": c, "c0": old, "c9": stale}
	var lines strings.Builder
	for i := range 5 {
		fmt.Fprintf(&lines, "2026-11-27T10:00:0%dZ stdout F line %d\n", i, i)
	}
	if err := os.WriteFile(e.logPath, []byte(lines.String()), 0o640); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{old.LogPath, stale.LogPath} {
		if err := os.WriteFile(p, []byte("wrong container\n"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	k, err := New(Config{NodeName: "n1", Logger: log}, conn, e.rt, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.k = k
	for _, c := range e.rt.containers {
		k.containers[c.ID] = c
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = k.pods.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	if err := k.pods.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	stop := k.serveLogs(ctx)
	t.Cleanup(stop)
	if err := conn.NATS().Flush(); err != nil {
		t.Fatal(err)
	}
	return e
}

func readStream(t *testing.T, s *bus.LogStream) (string, error) {
	t.Helper()
	var out strings.Builder
	for {
		b, err := s.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return out.String(), nil
		}
		if err != nil {
			return out.String(), err
		}
		out.Write(b)
	}
}

func TestKubeletServesLogs(t *testing.T) {
	e := mustLogEnv(t)
	ctx := context.Background()
	for _, tc := range []struct {
		req  schemas.LogRequest
		want string
	}{
		{schemas.LogRequest{Pod: "p", Tail: -1}, "line 0\nline 1\nline 2\nline 3\nline 4\n"},
		{schemas.LogRequest{Pod: "p", Tail: 2}, "line 3\nline 4\n"},
		{schemas.LogRequest{Pod: "p", UID: "uid-1", Tail: 1, Timestamps: true}, "2026-11-27T10:00:04Z line 4\n"},
	} {
		s, err := e.conn.RequestLogs(ctx, "n1", tc.req)
		if err != nil {
			t.Fatalf("%+v: %v", tc.req, err)
		}
		got, err := readStream(t, s)
		s.Close()
		if err != nil || got != tc.want {
			t.Errorf("%+v: %q, %v; want %q", tc.req, got, err, tc.want)
		}
	}
	for _, req := range []schemas.LogRequest{
		{Pod: "nope", Tail: -1},
		{Pod: "elsewhere", Tail: -1},
		{Pod: "pending", Tail: -1},
		{Pod: "p", UID: "uid-0", Tail: -1},
	} {
		_, err := e.conn.RequestLogs(ctx, "n1", req)
		var le *bus.LogError
		if !errors.As(err, &le) || le.Code != schemas.LogCodeNoContainer {
			t.Errorf("%+v: %v", req, err)
		}
	}
	_, err := e.conn.RequestLogs(ctx, "n1", schemas.LogRequest{Pod: "P!", Tail: -1})
	var le *bus.LogError
	if !errors.As(err, &le) || le.Code != schemas.LogCodeBadRequest || !strings.Contains(le.Msg, "pod") {
		t.Errorf("invalid request: %v", err)
	}
}

func TestKubeletFollowsLogsUntilExit(t *testing.T) {
	e := mustLogEnv(t)
	ctx := context.Background()
	s, err := e.conn.RequestLogs(ctx, "n1", schemas.LogRequest{Pod: "p", Tail: 1, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	next := func() string {
		t.Helper()
		b, err := s.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := next(); got != "line 4\n" {
		t.Fatalf("first: %q", got)
	}
	f, err := os.OpenFile(e.logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "2026-11-27T10:00:10Z stdout F new line\n")
	if got := next(); got != "new line\n" {
		t.Fatalf("followed: %q", got)
	}
	// The container writes its last words and exits: the stream ends.
	fmt.Fprintf(f, "2026-11-27T10:00:11Z stdout F bye\n")
	close(e.rt.exited)
	rest, err := readStream(t, s)
	if err != nil || rest != "bye\n" {
		t.Fatalf("after exit: %q, %v", rest, err)
	}
}

func streamGoroutines() int {
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	n := 0
	for g := range strings.SplitSeq(stacks, "\n\n") {
		if strings.Contains(g, "kubelet.(*Kubelet).streamLogs(") {
			n++
		}
	}
	return n
}

// A requester that cancels ends the kubelet's stream: no goroutine stays.
func TestKubeletLogStreamCancel(t *testing.T) {
	e := mustLogEnv(t)
	ctx := context.Background()
	var streams []*bus.LogStream
	for range 3 {
		s, err := e.conn.RequestLogs(ctx, "n1", schemas.LogRequest{Pod: "p", Tail: 0, Follow: true})
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
	}
	if n := streamGoroutines(); n != 3 {
		t.Fatalf("%d streams running, want 3", n)
	}
	for _, s := range streams {
		s.Close()
	}
	bustest.Eventually(t, 10*time.Second, func() error {
		if n := streamGoroutines(); n != 0 {
			return fmt.Errorf("%d streams still running after cancel", n)
		}
		return nil
	})
}
