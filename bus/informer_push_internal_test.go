package bus

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miniku/miniku/schemas"
)

// fakeView is a pushSource the test drives: its state is what lists
// return; pushes reach the informer only when the test sends them.
type fakeView struct {
	mu    sync.Mutex
	state map[string]*schemas.Pod
	rev   uint64
	fn    func(pushed[*schemas.Pod])
	lists int
}

func (v *fakeView) subscribe(fn func(pushed[*schemas.Pod])) (func(), error) {
	v.mu.Lock()
	v.fn = fn
	v.mu.Unlock()
	return func() {}, nil
}

func (v *fakeView) list(context.Context) ([]*schemas.Pod, uint64, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.lists++
	var out []*schemas.Pod
	for _, p := range v.state {
		out = append(out, p.DeepCopy())
	}
	return out, v.rev, nil
}

func (v *fakeView) dropped() int { return 0 }

// put changes the view; push says whether its hint gets through.
func (v *fakeView) put(name string, push bool) {
	v.mu.Lock()
	v.rev++
	p := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: name, ResourceVersion: v.rev}, NodeName: "n"}
	v.state[name] = p
	fn := v.fn
	v.mu.Unlock()
	if push {
		fn(pushed[*schemas.Pod]{name: name, rev: p.ResourceVersion, obj: p.DeepCopy()})
	}
}

func (v *fakeView) remove(name string, push bool) {
	v.mu.Lock()
	v.rev++
	delete(v.state, name)
	rev, fn := v.rev, v.fn
	v.mu.Unlock()
	if push {
		fn(pushed[*schemas.Pod]{name: name, rev: rev})
	}
}

type never struct{}

func (never) Reconnected() <-chan struct{} { return nil }

func names(inf *Informer[schemas.Pod, *schemas.Pod]) []string {
	var out []string
	for _, p := range inf.List() {
		out = append(out, p.Name)
	}
	slices.Sort(out)
	return out
}

func waitNames(t *testing.T, inf *Informer[schemas.Pod, *schemas.Pod], within time.Duration, want ...string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := names(inf)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("view %v, want %v", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Lost pushes (an add and a delete) are repaired by the resync's list, on
// a live subscription; a stale list crossing newer pushes changes nothing.
func TestPushedViewResyncRepairsLostPushes(t *testing.T) {
	v := &fakeView{state: map[string]*schemas.Pod{}}
	v.put("a", false)
	v.put("b", false)
	inf := newInformer[schemas.Pod, *schemas.Pod](nil, "test", 300*time.Millisecond, slog.New(slog.DiscardHandler))
	inf.conn = never{}
	inf.push = v
	var deleted []string
	var mu sync.Mutex
	inf.AddEventHandler(HandlerFuncs[*schemas.Pod]{Delete: func(p *schemas.Pod) { mu.Lock(); deleted = append(deleted, p.Name); mu.Unlock() }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- inf.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := inf.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	waitNames(t, inf, time.Second, "a", "b")

	// Pushed: at once.
	v.put("c", true)
	v.remove("a", true)
	waitNames(t, inf, 100*time.Millisecond, "b", "c")

	// Lost: nothing moves until the resync lists.
	v.mu.Lock()
	lists := v.lists
	v.mu.Unlock()
	v.put("d", false)
	v.remove("b", false)
	got := names(inf)
	v.mu.Lock()
	relisted := v.lists > lists
	v.mu.Unlock()
	if !relisted && !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("view %v changed without a push or list", got)
	}
	waitNames(t, inf, 2*time.Second, "c", "d")
	mu.Lock()
	if !slices.Equal(deleted, []string{"a", "b"}) {
		t.Errorf("handlers heard deletes %v, want [a b]", deleted)
	}
	mu.Unlock()

	// A push newer than a list that crosses it wins: the delete of c
	// (pushed) and a late push of an older c change nothing.
	v.remove("c", true)
	waitNames(t, inf, 100*time.Millisecond, "d")
	v.fn(pushed[*schemas.Pod]{name: "c", rev: 3, obj: &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "c", ResourceVersion: 3}}})
	time.Sleep(50 * time.Millisecond)
	if got := names(inf); !slices.Equal(got, []string{"d"}) {
		t.Fatalf("a stale push brought back a deleted pod: %v", got)
	}
}
