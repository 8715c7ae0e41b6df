package scheduler

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
)

// TestAllocIndexMatchesRecount applies random creates, binds, rebinds,
// finishes and deletes to a cache, refreshing the index for each change
// (sometimes twice, sometimes refreshing an unchanged pod), and checks that
// the index always equals a full recount of the cache.
func TestAllocIndexMatchesRecount(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cache := map[string]*schemas.Pod{}
	get := func(name string) (*schemas.Pod, bool) { p, ok := cache[name]; return p, ok }
	x := newAllocIndex()
	nodes := []string{"n0", "n1", "n2", "n3"}
	owners := []string{"", "web", "db"}
	cpus := []string{"", "100m", "1", "250m"}
	mems := []string{"", "64Mi", "1Gi"}
	for step := 0; step < 5000; step++ {
		name := fmt.Sprintf("p%d", rng.IntN(40))
		p, ok := cache[name]
		switch op := rng.IntN(6); {
		case !ok || op == 0: // create (or replace) a pending pod
			np := pending(owners[rng.IntN(len(owners))], cpus[rng.IntN(len(cpus))], mems[rng.IntN(len(mems))])
			np.Name = name
			cache[name] = np
		case op <= 2: // bind, or move to another node
			np := *p
			np.NodeName = nodes[rng.IntN(len(nodes))]
			np.Status = schemas.PodRunning
			cache[name] = &np
		case op == 3: // finish
			np := *p
			np.Status = []schemas.PodPhase{schemas.PodSucceeded, schemas.PodFailed}[rng.IntN(2)]
			cache[name] = &np
		case op == 4: // delete
			delete(cache, name)
		default: // a resync: no change
		}
		for n := rng.IntN(2) + 1; n > 0; n-- {
			x.refresh(name, get)
		}
		all := make([]*schemas.Pod, 0, len(cache))
		for _, p := range cache {
			all = append(all, p)
		}
		want := usageByNode(&schemas.Pod{}, all)
		for _, u := range want {
			if len(u.owners) == 0 {
				u.owners = map[string]int{}
			}
		}
		if got := x.usageByName(); !reflect.DeepEqual(got, want) {
			t.Fatalf("step %d (%s): index %s, recount %s", step, name, dump(got), dump(want))
		}
	}
}

func dump(m map[string]*usage) string {
	s := ""
	for n, u := range m {
		s += fmt.Sprintf("%s=%+v ", n, *u)
	}
	return s
}

// TestAllocIndexDecidesLikeDecide checks the indexed decision against
// Decide's own recount on the same pods.
func TestAllocIndexDecidesLikeDecide(t *testing.T) {
	nodes := []*schemas.Node{node("a", schemas.NodeReady), node("b", schemas.NodeReady), node("c", schemas.NodeReady)}
	for _, n := range nodes {
		n.Capacity = schemas.ResourceList{CPU: "1", Memory: "1Gi"}
	}
	cache := map[string]*schemas.Pod{}
	get := func(name string) (*schemas.Pod, bool) { p, ok := cache[name]; return p, ok }
	x := newAllocIndex()
	for _, n := range nodes {
		x.setNode(n.Name, n, true)
	}
	var placed []*schemas.Pod
	for i := 0; i < 12; i++ {
		p := pending([]string{"web", "db"}[i%2], "100m", "64Mi")
		p.Name = fmt.Sprintf("p%d", i)
		want, wantWhy := Decide(p, nodes, placed)
		got, why := x.decide(p)
		if got != want || why != wantWhy {
			t.Fatalf("pod %d: index chose %q (%s), Decide %q (%s)", i, got, why, want, wantWhy)
		}
		if got == "" {
			continue
		}
		b := *p
		b.NodeName = got
		cache[b.Name] = &b
		placed = append(placed, &b)
		x.refresh(b.Name, get)
	}
}

// TestAllocIndexFollowsCluster runs the scheduler on a real bus: it binds
// pods, some of which are then deleted or finish behind its back, and its
// index must come to equal a recount of its cache.
func TestAllocIndexFollowsCluster(t *testing.T) {
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), nil)
	s, err := New(Config{Logger: bustest.Logger(t), Resync: time.Second}, conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for _, n := range []string{"a", "b", "c"} {
		if err := conn.Nodes.Create(ctx, &schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: n}, Status: schemas.NodeReady,
			LastHeartbeat: time.Now(), Capacity: schemas.ResourceList{CPU: "4", Memory: "4Gi", Pods: 110}}); err != nil {
			t.Fatal(err)
		}
	}
	const count = 30
	for i := 0; i < count; i++ {
		p := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: fmt.Sprintf("p%d", i), UID: fmt.Sprintf("u%d", i)},
			Owner: []string{"web", "db"}[i%2], Status: schemas.PodPending,
			PodSpec: schemas.PodSpec{Image: "busybox", Command: []string{"true"}, Resources: schemas.ResourceList{CPU: "100m", Memory: "64Mi"}}}
		if err := conn.Pods.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	bustest.Eventually(t, 30*time.Second, func() error {
		for i := 0; i < count; i++ {
			p, err := conn.Pods.Get(ctx, fmt.Sprintf("p%d", i))
			if err != nil || p.NodeName == "" {
				return fmt.Errorf("pod %d not bound: %v", i, err)
			}
		}
		return nil
	})
	for i := 0; i < count; i += 3 {
		p, err := conn.Pods.Get(ctx, fmt.Sprintf("p%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.Pods.Delete(ctx, p.Name, p.ResourceVersion); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Pods.Mutate(ctx, fmt.Sprintf("p%d", i+1), func(p *schemas.Pod) error {
			p.Status = schemas.PodSucceeded
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	bustest.Eventually(t, 30*time.Second, func() error {
		pods := s.pods.List()
		if len(pods) != count-count/3 {
			return fmt.Errorf("%d pods cached", len(pods))
		}
		want := usageByNode(&schemas.Pod{}, pods)
		if got := s.alloc.usageByName(); !reflect.DeepEqual(got, want) {
			return fmt.Errorf("index %s, recount %s", dump(got), dump(want))
		}
		return nil
	})
}

// TestAllocIndexAssume: a pod assumed on a node counts there from the
// decision on, even while the cache still shows it unbound (its refreshes
// are ignored), and forget settles it from the cache: kept if the bind
// landed, released if it failed.
func TestAllocIndexAssume(t *testing.T) {
	n := node("a", schemas.NodeReady)
	n.Capacity = schemas.ResourceList{Pods: 2}
	cache := map[string]*schemas.Pod{}
	get := func(name string) (*schemas.Pod, bool) { p, ok := cache[name]; return p, ok }
	x := newAllocIndex()
	x.setNode(n.Name, n, true)
	var ps []*schemas.Pod
	for i := range 3 {
		p := pending("web", "", "")
		p.Name = fmt.Sprintf("p%d", i)
		cache[p.Name] = p
		ps = append(ps, p)
	}
	for _, p := range ps[:2] {
		if got, why := x.decideAndAssume(p); got != "a" {
			t.Fatalf("%s: got %q (%s), want a", p.Name, got, why)
		}
		x.refresh(p.Name, get) // the cache still says pending: ignored
	}
	if got, why := x.decideAndAssume(ps[2]); got != "" || why == "" {
		t.Fatalf("third pod on a 2-pod node: got %q (%q), want no node and a reason", got, why)
	}
	// p0's bind landed, p1's failed.
	b := *ps[0]
	b.NodeName = "a"
	cache[b.Name] = &b
	x.forget("p0", get)
	x.forget("p1", get)
	if u := x.usageByName()["a"]; u == nil || u.pods != 1 {
		t.Fatalf("after one bind landed and one failed: usage %+v, want 1 pod", u)
	}
	if got, _ := x.decideAndAssume(ps[2]); got != "a" {
		t.Fatalf("room freed by the failed bind: got %q, want a", got)
	}
}

// usageByNode is the recount the index must equal: what the pods bound to
// each node and not terminal request.
func usageByNode(pod *schemas.Pod, bound []*schemas.Pod) map[string]*usage {
	use := map[string]*usage{}
	for _, p := range bound {
		if p.NodeName == "" || p.Status.Terminal() || p.Name == pod.Name {
			continue
		}
		u := use[p.NodeName]
		if u == nil {
			u = &usage{owners: map[string]int{}}
			use[p.NodeName] = u
		}
		u.cpu += p.Resources.CPUMilli()
		u.mem += p.Resources.MemoryBytes()
		u.pods++
		if p.Owner != "" {
			u.owners[p.Owner]++
		}
	}
	return use
}
