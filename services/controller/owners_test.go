package controller

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
)

// recountOwners is what the owner index must hold: every cached pod with an
// owner, grouped by owner.
func recountOwners(pods []*schemas.Pod) map[string][]string {
	out := map[string][]string{}
	for _, p := range pods {
		if p.Owner != "" {
			out[p.Owner] = append(out[p.Owner], p.Name)
		}
	}
	for _, ns := range out {
		sort.Strings(ns)
	}
	return out
}

// indexed is the index's raw content, and what podsOf returns for owners,
// which must agree and be the cached objects themselves (their latest
// version, not the one first indexed).
func indexed(t *testing.T, x *ownerIndex, get func(string) (*schemas.Pod, bool), owners []string) map[string][]string {
	t.Helper()
	x.mu.Lock()
	out := map[string][]string{}
	for o, set := range x.pods {
		out[o] = []string{}
		for n := range set {
			out[o] = append(out[o], n)
		}
		sort.Strings(out[o])
	}
	x.mu.Unlock()
	for _, o := range owners {
		var via []string
		for _, p := range x.podsOf(o) {
			name := p.Name
			if cur, ok := get(name); !ok || cur != p {
				name += " (stale)"
			}
			via = append(via, name)
		}
		sort.Strings(via)
		if len(via) != len(out[o]) || (len(via) > 0 && !reflect.DeepEqual(via, out[o])) {
			out["podsOf "+o] = via
		}
	}
	return out
}

// TestOwnerIndexMatchesRecount applies random creates, re-creates under
// another owner, deletes and no-op refreshes, and checks both what podsOf
// returns and that the index itself holds exactly the cached pods.
func TestOwnerIndexMatchesRecount(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	cache := map[string]*schemas.Pod{}
	get := func(name string) (*schemas.Pod, bool) { p, ok := cache[name]; return p, ok }
	x := newOwnerIndex()
	owners := []string{"", "web", "db", "cache"}
	for step := 0; step < 5000; step++ {
		name := fmt.Sprintf("p%d", rng.IntN(40))
		switch rng.IntN(3) {
		case 0:
			np := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: name}, Owner: owners[rng.IntN(len(owners))],
				OwnerUID: []string{"u1", "u2"}[rng.IntN(2)],
				Status:   []schemas.PodPhase{schemas.PodPending, schemas.PodRunning, schemas.PodSucceeded, schemas.PodFailed}[rng.IntN(4)]}
			if rng.IntN(5) == 0 {
				now := time.Now()
				np.DeletionTimestamp = &now
			}
			cache[name] = np
		case 1:
			delete(cache, name)
		}
		for n := rng.IntN(2) + 1; n > 0; n-- {
			x.refresh(name, get)
		}
		all := make([]*schemas.Pod, 0, len(cache))
		for _, p := range cache {
			all = append(all, p)
		}
		want := recountOwners(all)
		if got := indexed(t, x, get, owners[1:]); !reflect.DeepEqual(got, want) {
			t.Fatalf("step %d (%s): index %v, recount %v", step, name, got, want)
		}
		wantCounts := map[string]map[string]podCounts{}
		for _, p := range all {
			if p.Owner == "" {
				continue
			}
			if wantCounts[p.Owner] == nil {
				wantCounts[p.Owner] = map[string]podCounts{}
			}
			c := wantCounts[p.Owner][p.OwnerUID]
			c.add(p, 1)
			wantCounts[p.Owner][p.OwnerUID] = c
		}
		x.mu.Lock()
		gotCounts := map[string]map[string]podCounts{}
		for o, byUID := range x.counts {
			gotCounts[o] = map[string]podCounts{}
			for uid, c := range byUID {
				gotCounts[o][uid] = *c
			}
		}
		x.mu.Unlock()
		if !reflect.DeepEqual(gotCounts, wantCounts) {
			t.Fatalf("step %d (%s): counts %v, recount %v", step, name, gotCounts, wantCounts)
		}
		// Where a sync would take the counts' shortcut, the full decision
		// must agree: nothing to do, the same status.
		for _, o := range owners[1:] {
			n, ok := x.steady(o, "u1")
			if !ok {
				continue
			}
			rs := &schemas.ReplicaSet{ObjectMeta: schemas.ObjectMeta{Name: o, UID: "u1"}, DesiredCount: n.active}
			pods := x.podsOf(o)
			for _, p := range pods {
				if p.OwnerUID != "u1" {
					t.Fatalf("step %d: steady(%s) with a pod of another replicaset", step, o)
				}
			}
			plan := DecideReplicaSet(rs, pods, Failures{}, FailureBackoff{}, time.Unix(1000, 0))
			if plan.Create != 0 || len(plan.Delete) != 0 || plan.Status.CurrentCount != n.active || plan.Status.ReadyCount != n.running {
				t.Fatalf("step %d: %s steady %+v, but the decision is %+v", step, o, n, plan)
			}
		}
		x.mu.Lock()
		held := 0
		for _, set := range x.pods {
			held += len(set)
		}
		if held != len(x.owner) {
			t.Fatalf("step %d: %d pods in owner sets, %d owners recorded", step, held, len(x.owner))
		}
		x.mu.Unlock()
	}
}

// TestOwnerIndexFollowsScaling runs the controller on a real bus through a
// scale up, a scale down and a replicaset delete: it must create and
// delete exactly the right number of pods, and its index must equal a
// recount of its cache.
func TestOwnerIndexFollowsScaling(t *testing.T) {
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), nil)
	c, err := New(Config{Logger: bustest.Logger(t), Resync: time.Second}, conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	check := func(want map[string]int) {
		t.Helper()
		bustest.Eventually(t, 30*time.Second, func() error {
			list, err := conn.Pods.List(ctx)
			if err != nil {
				return err
			}
			got := map[string]int{}
			for _, p := range list {
				got[p.Owner]++
			}
			if !reflect.DeepEqual(got, want) {
				return fmt.Errorf("pods per owner %v, want %v", got, want)
			}
			cached := c.pods.List()
			if len(cached) != len(list) {
				return fmt.Errorf("%d pods cached, %d stored", len(cached), len(list))
			}
			if got, want := indexed(t, c.owned, c.pods.Get, []string{"web", "db"}), recountOwners(cached); !reflect.DeepEqual(got, want) {
				return fmt.Errorf("index %v, recount %v", got, want)
			}
			return nil
		})
	}
	for _, name := range []string{"web", "db"} {
		rs := &schemas.ReplicaSet{ObjectMeta: schemas.ObjectMeta{Name: name, UID: name + "-uid"}, DesiredCount: 20,
			Selector: map[string]string{"app": name}, Template: schemas.PodTemplate{PodSpec: schemas.PodSpec{Image: "busybox", Command: []string{"sleep", "1d"}}}}
		if err := conn.ReplicaSets.Create(ctx, rs); err != nil {
			t.Fatal(err)
		}
	}
	check(map[string]int{"web": 20, "db": 20})
	if _, err := conn.ReplicaSets.Mutate(ctx, "web", func(rs *schemas.ReplicaSet) error {
		rs.DesiredCount = 5
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	check(map[string]int{"web": 5, "db": 20})
	rs, err := conn.ReplicaSets.Get(ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.ReplicaSets.Delete(ctx, "db", rs.ResourceVersion); err != nil {
		t.Fatal(err)
	}
	check(map[string]int{"web": 5})
}

// TestCreatedPodCountsAtOnce: a pod the controller just created is its
// replicaset's before any watch event, or the next sync would create it
// again. The informers are not running here, so only the controller's own
// bookkeeping can make it count.
func TestCreatedPodCountsAtOnce(t *testing.T) {
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), nil)
	c, err := New(Config{Logger: bustest.Logger(t)}, conn)
	if err != nil {
		t.Fatal(err)
	}
	rs := &schemas.ReplicaSet{ObjectMeta: schemas.ObjectMeta{Name: "web", UID: "web-uid"}, DesiredCount: 2,
		Template: schemas.PodTemplate{PodSpec: schemas.PodSpec{Image: "busybox", Command: []string{"sleep", "1d"}}}}
	for i := 1; i <= 2; i++ {
		if err := c.createPod(context.Background(), rs); err != nil {
			t.Fatal(err)
		}
		if owned, orphans := c.ownedPods(rs); len(owned) != i || len(orphans) != 0 {
			t.Fatalf("after %d creates: %d owned, %d orphans", i, len(owned), len(orphans))
		}
	}
}
