package bus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
)

// mirror rebuilds the cache from the events alone and records every event
// that does not follow from the previous ones: an add of a key it holds,
// an update or delete whose old object is not the one it holds.
type mirror struct {
	mu     sync.Mutex
	objs   map[string]*schemas.Pod
	wrong  []string
	events []string
}

func newMirror() *mirror { return &mirror{objs: map[string]*schemas.Pod{}} }

func (m *mirror) OnAdd(p *schemas.Pod) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objs[p.Name]; ok {
		m.wrong = append(m.wrong, "add of cached "+p.Name)
	}
	m.objs[p.Name] = p
	m.events = append(m.events, "add "+p.Name+" "+p.NodeName)
}

func (m *mirror) OnUpdate(old, p *schemas.Pod) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.objs[p.Name] != old {
		m.wrong = append(m.wrong, fmt.Sprintf("update of %s from rev %d, mirror holds %v", p.Name, old.ResourceVersion, m.objs[p.Name]))
	}
	m.objs[p.Name] = p
	if old != p {
		m.events = append(m.events, "update "+p.Name+" "+old.NodeName+">"+p.NodeName)
	}
}

func (m *mirror) OnDelete(old *schemas.Pod) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.objs[old.Name] != old {
		m.wrong = append(m.wrong, fmt.Sprintf("delete of %s at rev %d, mirror holds %v", old.Name, old.ResourceVersion, m.objs[old.Name]))
	}
	delete(m.objs, old.Name)
	m.events = append(m.events, "delete "+old.Name+" "+old.NodeName)
}

// check compares the mirror with the cache and the node index with a
// filter of the cache.
func (m *mirror) check(inf *bus.Informer[schemas.Pod, *schemas.Pod]) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.wrong) > 0 {
		return fmt.Errorf("events out of order: %v", m.wrong)
	}
	list := inf.List()
	if len(list) != len(m.objs) {
		return fmt.Errorf("mirror holds %d pods, the cache %d", len(m.objs), len(list))
	}
	byNode := map[string][]string{}
	for _, p := range list {
		if m.objs[p.Name] != p {
			return fmt.Errorf("mirror holds %v for %s, the cache %v", m.objs[p.Name], p.Name, p)
		}
		if p.NodeName != "" {
			byNode[p.NodeName] = append(byNode[p.NodeName], p.Name)
		}
	}
	nodes := inf.IndexValues(bus.PodsByNode)
	if len(nodes) != len(byNode) {
		return fmt.Errorf("index has nodes %v, the cache %v", nodes, byNode)
	}
	for node, want := range byNode {
		got := names(inf.ByIndex(bus.PodsByNode, node))
		slices.Sort(want)
		if !slices.Equal(got, want) {
			return fmt.Errorf("index has %v on %s, the cache %v", got, node, want)
		}
	}
	return nil
}

func names(pods []*schemas.Pod) []string {
	out := make([]string, 0, len(pods))
	for _, p := range pods {
		out = append(out, p.Name)
	}
	slices.Sort(out)
	return out
}

func runInformer(t *testing.T, inf *bus.Informer[schemas.Pod, *schemas.Pod]) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = inf.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	if err := inf.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// Handlers hear objects with the version they replace, the cache's own
// writes (Observe) before Observe returns, and the indexes follow every
// change.
func TestInformerEventsAndIndex(t *testing.T) {
	ns := bustest.Server(t, "", "")
	c := bustest.Conn(t, ns.ClientURL(), nil)
	ctx := context.Background()
	for _, p := range []*schemas.Pod{
		{ObjectMeta: schemas.ObjectMeta{Name: "a"}, NodeName: "n1", Owner: "web"},
		{ObjectMeta: schemas.ObjectMeta{Name: "b"}, NodeName: "n1"},
		{ObjectMeta: schemas.ObjectMeta{Name: "c"}},
	} {
		if err := c.Pods.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	inf := bus.NewInformer(c, c.Pods, time.Hour, bustest.Logger(t))
	inf.AddIndex(bus.PodsByNode, bus.PodNode)
	// A second declaration of the name keeps the first function.
	inf.AddIndex(bus.PodsByNode, bus.PodOwner)
	m := newMirror()
	inf.AddEventHandler(m)
	runInformer(t, inf)
	if got := names(inf.ByIndex(bus.PodsByNode, "n1")); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("n1 holds %v after the snapshot, want [a b]", got)
	}

	a, _ := inf.Get("a")
	moved := a.DeepCopy()
	moved.NodeName = "n2"
	if err := c.Pods.Update(ctx, moved); err != nil {
		t.Fatal(err)
	}
	if err := c.Pods.Delete(ctx, "b", 0); err != nil {
		t.Fatal(err)
	}
	if err := inf.WaitCurrent(ctx); err != nil {
		t.Fatal(err)
	}
	// An index added to a running cache starts with what it holds.
	inf.AddIndex(bus.PodsByOwner, bus.PodOwner)
	if got := names(inf.ByIndex(bus.PodsByOwner, "web")); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("owner web holds %v, want [a]", got)
	}
	if got := inf.ByIndex("missing", "n1"); got != nil {
		t.Fatalf("an index never added holds %v", got)
	}

	// Observe delivers before it returns.
	cp, _ := inf.Get("c")
	bound := cp.DeepCopy()
	bound.NodeName = "n3"
	if err := c.Pods.Update(ctx, bound); err != nil {
		t.Fatal(err)
	}
	inf.Observe(bound)
	m.mu.Lock()
	last := m.events[len(m.events)-1]
	m.mu.Unlock()
	if last != "update c >n3" {
		t.Fatalf("last event after Observe is %q, want the bind", last)
	}
	if got := names(inf.ByIndex(bus.PodsByNode, "n3")); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("n3 holds %v right after Observe, want [c]", got)
	}
	if err := inf.WaitCurrent(ctx); err != nil {
		t.Fatal(err)
	}
	inf.ObserveDelete("c", bound.ResourceVersion+1)
	if got := inf.ByIndex(bus.PodsByNode, "n3"); len(got) != 0 {
		t.Fatalf("n3 holds %v after ObserveDelete", names(got))
	}

	m.mu.Lock()
	got := slices.Clone(m.events)
	m.mu.Unlock()
	want := []string{"update a n1>n2", "delete b n1", "update c >n3", "delete c n3"}
	// The snapshot's adds come in no particular order.
	if len(got) < 3 || !slices.Equal(slices.Sorted(slices.Values(got[:3])), []string{"add a n1", "add b n1", "add c "}) ||
		!slices.Equal(withoutEchoes(got[3:]), want) {
		t.Fatalf("events %v, want the three adds then %v", got, want)
	}
	if err := m.check(inf); err != nil {
		t.Fatal(err)
	}
}

// withoutEchoes drops the watch's echo of an observed write (an update
// that moves nothing).
func withoutEchoes(evs []string) []string {
	return slices.DeleteFunc(slices.Clone(evs), func(e string) bool { return e == "update c n3>n3" })
}

// A resync hands every object to OnUpdate as both old and new; a handler
// joining a running cache hears each object once, then every change, in
// order, while writers and Observe race: a mirror built from the events
// alone ends equal to the cache, and the index to a filter of it.
func TestInformerEventsInOrderUnderChurn(t *testing.T) {
	ns := bustest.Server(t, "", "")
	c := bustest.Conn(t, ns.ClientURL(), nil)
	inf := bus.NewInformer(c, c.Pods, time.Hour, bustest.Logger(t))
	inf.AddIndex(bus.PodsByNode, bus.PodNode)
	ctx := runInformer(t, inf)
	for i := range 20 {
		if err := c.Pods.Create(ctx, &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: fmt.Sprintf("p%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := inf.WaitCurrent(ctx); err != nil {
		t.Fatal(err)
	}
	m := newMirror()
	remove, err := inf.JoinEventHandler(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	if err := m.check(inf); err != nil {
		t.Fatalf("after joining: %v", err)
	}

	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 60 {
				name := fmt.Sprintf("p%d", (w*60+i)%30)
				p, err := c.Pods.Get(ctx, name)
				switch {
				case errors.Is(err, bus.ErrNotFound):
					err = c.Pods.Create(ctx, &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: name}, NodeName: fmt.Sprintf("n%d", i%3)})
				case err == nil && i%5 == 0:
					err = c.Pods.Delete(ctx, name, p.ResourceVersion)
					if err == nil {
						inf.ObserveDelete(name, p.ResourceVersion+1)
					}
				case err == nil:
					p.NodeName = fmt.Sprintf("n%d", (i+w)%3)
					if err = c.Pods.Update(ctx, p); err == nil {
						inf.Observe(p)
					}
				}
				if err != nil && !errors.Is(err, bus.ErrConflict) && !errors.Is(err, bus.ErrAlreadyExists) && !errors.Is(err, bus.ErrNotFound) {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			bus.NotifySlice(inf, 0, 1)
		}
	}()
	wg.Wait()
	bustest.Eventually(t, 5*time.Second, func() error {
		if err := inf.WaitCurrent(ctx); err != nil {
			return err
		}
		return m.check(inf)
	})
}
