package controller

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/garbagecollector"
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

// podsOf is what the owner index must return for owner: every cached pod
// it owns.
func podsOf(cache map[string]*schemas.Pod, owner string) []*schemas.Pod {
	var out []*schemas.Pod
	for _, p := range cache {
		if p.Owner == owner {
			out = append(out, p)
		}
	}
	return out
}

// recountCounts is what the owner counts must hold for pods.
func recountCounts(pods []*schemas.Pod) map[string]map[string]podCounts {
	want := map[string]map[string]podCounts{}
	for _, p := range pods {
		if p.Owner == "" {
			continue
		}
		if want[p.Owner] == nil {
			want[p.Owner] = map[string]podCounts{}
		}
		c := want[p.Owner][p.OwnerUID]
		c.add(p, 1)
		want[p.Owner][p.OwnerUID] = c
	}
	return want
}

func (x *ownerCounts) snapshot() map[string]map[string]podCounts {
	x.mu.Lock()
	defer x.mu.Unlock()
	got := map[string]map[string]podCounts{}
	for o, byUID := range x.counts {
		got[o] = map[string]podCounts{}
		for uid, c := range byUID {
			got[o][uid] = *c
		}
	}
	return got
}

// TestOwnerCountsMatchRecount applies random creates, re-creates under
// another owner, deletes and resyncs as a cache's events, and checks the
// counts against a recount, and that where a sync would take the counts'
// shortcut the full decision agrees.
func TestOwnerCountsMatchRecount(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	cache := map[string]*schemas.Pod{}
	x := newOwnerCounts()
	owners := []string{"", "web", "db", "cache"}
	for step := 0; step < 5000; step++ {
		name := fmt.Sprintf("p%d", rng.IntN(40))
		old := cache[name]
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
			if old != nil {
				x.OnUpdate(old, np)
			} else {
				x.OnAdd(np)
			}
		case 1:
			if old != nil {
				delete(cache, name)
				x.OnDelete(old)
			}
		default:
			if old != nil {
				x.OnUpdate(old, old) // a resync
			}
		}
		all := make([]*schemas.Pod, 0, len(cache))
		for _, p := range cache {
			all = append(all, p)
		}
		if got, want := x.snapshot(), recountCounts(all); !reflect.DeepEqual(got, want) {
			t.Fatalf("step %d (%s): counts %v, recount %v", step, name, got, want)
		}
		for _, o := range owners[1:] {
			n, ok := x.steady(o, "u1")
			if !ok {
				continue
			}
			rs := &schemas.ReplicaSet{ObjectMeta: schemas.ObjectMeta{Name: o, UID: "u1"}, DesiredCount: n.active}
			pods := podsOf(cache, o)
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
	}
}

// indexed is what the controller's owner index returns for owners.
func indexed(c *Controller, owners []string) map[string][]string {
	out := map[string][]string{}
	for _, o := range owners {
		for _, p := range c.pods.ByIndex(bus.PodsByOwner, o) {
			out[o] = append(out[o], p.Name)
		}
		sort.Strings(out[o])
		if len(out[o]) == 0 {
			delete(out, o)
		}
	}
	return out
}

// TestOwnerIndexFollowsScaling runs the controller on a real bus through a
// scale up, a scale down and a replicaset delete: it must create and
// delete exactly the right number of pods, and its index must equal a
// recount of its cache (counts too). The garbage collector deletes the pods of the
// deleted replicaset, as in miniku up.
func TestOwnerIndexFollowsScaling(t *testing.T) {
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), nil)
	c, err := New(Config{Logger: bustest.Logger(t), Resync: time.Second}, conn)
	if err != nil {
		t.Fatal(err)
	}
	gc, err := garbagecollector.New(garbagecollector.Config{Logger: bustest.Logger(t), Resync: time.Second}, conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { defer func() { done <- struct{}{} }(); _ = c.Run(ctx) }()
	go func() { defer func() { done <- struct{}{} }(); _ = gc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; <-done })

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
			if got, want := indexed(c, []string{"web", "db"}), recountOwners(cached); !reflect.DeepEqual(got, want) {
				return fmt.Errorf("index %v, recount %v", got, want)
			}
			if got, want := c.counts.snapshot(), recountCounts(cached); !reflect.DeepEqual(got, want) {
				return fmt.Errorf("counts %v, recount %v", got, want)
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
// again. The informers are not running here, so only the cache's record
// of the controller's own write (Observe) can make it count.
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
