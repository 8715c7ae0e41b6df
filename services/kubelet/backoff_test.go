package kubelet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/bus/registry"
	"github.com/miniku/miniku/runtime/fake"
	"github.com/miniku/miniku/runtime/image"
	"github.com/miniku/miniku/schemas"
)

func TestPullBackoffDecisions(t *testing.T) {
	b := Backoff{}.withDefaultsFrom(DefaultImagePullBackoff, DefaultImagePullBackoffMax)
	if b.Base != 10*time.Second || b.Max != 5*time.Minute || b.Reset != 10*time.Minute {
		t.Fatalf("defaults %+v, want Kubernetes' 10s / 5m, forgotten after 10m", b)
	}
	// Every failed pull waits, from the first: 10s, 20s, ... 5m.
	for failures, w := range []time.Duration{0, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, 5 * time.Minute, 5 * time.Minute} {
		if got := PullDelay(b, failures); got != w {
			t.Errorf("PullDelay(%d) = %v, want %v", failures, got, w)
		}
	}
	if got := PullDelay(b, 1_000_000); got != 5*time.Minute {
		t.Errorf("PullDelay(1e6) = %v", got)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		prev      int
		last, now time.Time
		want      int
	}{
		{0, time.Time{}, t0, 1},
		{3, t0, t0.Add(time.Minute), 4},
		{3, t0, t0.Add(10*time.Minute - time.Second), 4},
		{7, t0, t0.Add(10 * time.Minute), 1}, // quiet for twice the cap: afresh
	} {
		if got := PullFailures(b, c.prev, c.last, c.now); got != c.want {
			t.Errorf("PullFailures(%d, %v quiet) = %d, want %d", c.prev, c.now.Sub(c.last), got, c.want)
		}
	}
	st := pullState{failures: 3, last: t0}
	if got := NextPullRetry(b, st); !got.Equal(t0.Add(40 * time.Second)) {
		t.Errorf("NextPullRetry after 3 failures = %v", got.Sub(t0))
	}
}

func TestPullMessageHasNoDoubledPrefix(t *testing.T) {
	err := fmt.Errorf("%w: pull %s: %w", image.ErrImagePull, "index.docker.io/library/ngnix:latest", errors.New("NAME_UNKNOWN"))
	if got := pullMessage(err); got != "pull index.docker.io/library/ngnix:latest: NAME_UNKNOWN" {
		t.Errorf("message %q", got)
	}
}

// failingImages fails every pull and records when.
type failingImages struct {
	mu    sync.Mutex
	pulls []time.Time
}

func (f *failingImages) Pull(_ context.Context, ref string) (image.Image, error) {
	f.mu.Lock()
	f.pulls = append(f.pulls, time.Now())
	f.mu.Unlock()
	return image.Image{}, fmt.Errorf("%w: pull %s: %w", image.ErrImagePull, ref, errors.New("MANIFEST_UNKNOWN: manifest unknown"))
}

func (f *failingImages) times() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.pulls...)
}

// A pod whose image cannot be pulled stays Pending, ImagePullBackOff, and
// the pull is retried after 200ms, 400ms, 800ms... even though the kubelet
// resyncs every 50ms; one Failed event per attempt.
func TestImagePullBackOff(t *testing.T) {
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), nil)
	images := &failingImages{}
	const base = 200 * time.Millisecond
	k, err := New(Config{NodeName: "n1", Logger: bustest.Logger(t), Resync: 50 * time.Millisecond,
		ImagePullBackoff: Backoff{Base: base, Max: 10 * time.Second}}, conn, fake.New(), images)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	pod := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "web-1", UID: "u1"}, NodeName: "n1", Status: schemas.PodPending,
		PodSpec: schemas.PodSpec{Image: "ngnix"}}
	if err := conn.Pods.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	// Status writes go through the node API, which the apiserver serves.
	apiDone := make(chan error, 1)
	go func() {
		apiDone <- bus.ServeNodeAPI(ctx, conn, bus.NodeAPIConfig{PodStatus: registry.For(conn, nil).Pods, Logger: bustest.Logger(t)})
	}()
	t.Cleanup(func() { cancel(); <-apiDone })
	go func() { defer close(done); _ = k.Run(ctx) }()

	const attempts = 5
	seen := map[string]bool{}
	bustest.Eventually(t, 30*time.Second, func() error {
		p, err := conn.Pods.Get(ctx, "web-1")
		if err != nil {
			return err
		}
		if p.Status != schemas.PodPending {
			t.Fatalf("pod went %s (%s %s), want Pending", p.Status, p.Reason, p.Message)
		}
		seen[p.Reason] = true
		if p.Reason == ReasonImagePullBackOff && !strings.Contains(p.Message, `pulling image "ngnix": pull ngnix: MANIFEST_UNKNOWN`) {
			t.Fatalf("message %q", p.Message)
		}
		if strings.Contains(p.Message, "ErrImagePull") {
			t.Fatalf("message repeats the reason: %q", p.Message)
		}
		if n := len(images.times()); n < attempts {
			return fmt.Errorf("%d pulls, want %d", n, attempts)
		}
		return nil
	})
	if !seen[ReasonImagePullBackOff] {
		t.Errorf("never saw reason ImagePullBackOff (saw %v)", seen)
	}
	pulls := images.times()
	want := base
	for i := 1; i < attempts; i++ {
		gap := pulls[i].Sub(pulls[i-1])
		t.Logf("pull %d -> %d after %v (backoff %v)", i, i+1, gap.Round(time.Millisecond), want)
		if gap < want {
			t.Errorf("pull %d -> %d after %v, want at least %v", i, i+1, gap, want)
		}
		want *= 2
	}
	stop()
	var failed int
	for _, ev := range podEvents(t, conn, "web-1") {
		if ev.Type == schemas.EventWarning && ev.Reason == "Failed" {
			failed++
		}
	}
	if n := len(images.times()); failed != n {
		t.Errorf("%d Failed events for %d failed pulls, want one per attempt", failed, n)
	}
}

func podEvents(t *testing.T, conn *bus.Conn, pod string) []schemas.ObjectEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := conn.EventsStream().OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{bus.EventSubject(schemas.KindPod, pod)}})
	if err != nil {
		t.Fatal(err)
	}
	var out []schemas.ObjectEvent
	for {
		msgs, err := cons.FetchNoWait(100)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range msgs.Messages() {
			n++
			evs, err := schemas.UnmarshalEvents(m.Data())
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, evs...)
		}
		if n == 0 {
			return out
		}
	}
}
