package scheduler

import (
	"fmt"
	"testing"

	"github.com/miniku/miniku/schemas"
)

func node(name string, st schemas.NodeStatus) *schemas.Node {
	return &schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: name}, Status: st}
}

func sized(name, cpu, mem string, pods int, labels map[string]string) *schemas.Node {
	n := node(name, schemas.NodeReady)
	n.Capacity = schemas.ResourceList{CPU: cpu, Memory: mem, Pods: pods}
	n.Labels = labels
	return n
}

func podOn(name, node, owner, cpu, mem string) *schemas.Pod {
	return &schemas.Pod{
		ObjectMeta: schemas.ObjectMeta{Name: name},
		PodSpec:    schemas.PodSpec{Resources: schemas.ResourceList{CPU: cpu, Memory: mem}},
		Owner:      owner, NodeName: node, Status: schemas.PodRunning,
	}
}

func pending(owner, cpu, mem string) *schemas.Pod {
	p := podOn("new", "", owner, cpu, mem)
	p.Status = schemas.PodPending
	return p
}

func TestDecideSpreadsToFewestPods(t *testing.T) {
	nodes := []*schemas.Node{node("a", schemas.NodeReady), node("b", schemas.NodeReady), node("c", schemas.NodeReady)}
	bound := []*schemas.Pod{podOn("1", "a", "", "", ""), podOn("2", "a", "", "", ""), podOn("3", "b", "", "", ""), podOn("4", "c", "", "", "")}
	got, _ := Decide(pending("", "", ""), nodes, bound)
	if got != "b" {
		t.Fatalf("picked %q, want b (least allocated, then name)", got)
	}
}

func TestDecideNeverPicksNotReady(t *testing.T) {
	nodes := []*schemas.Node{node("a", schemas.NodeNotReady), node("b", schemas.NodeReady)}
	var bound []*schemas.Pod
	for i := range 100 {
		bound = append(bound, podOn(fmt.Sprint(i), "b", "", "", ""))
	}
	if got, _ := Decide(pending("", "", ""), nodes, bound); got != "b" {
		t.Fatalf("picked %q, want b: a is NotReady", got)
	}
	got, reason := Decide(pending("", "", ""), nodes[:1], nil)
	if got != "" || reason != "0/1 nodes available: 1 NotReady" {
		t.Fatalf("got %q %q", got, reason)
	}
	if got, reason := Decide(pending("", "", ""), nil, nil); got != "" || reason != "0/0 nodes available: no nodes registered" {
		t.Fatalf("got %q %q", got, reason)
	}
}

func TestDecideFiltersAndReasons(t *testing.T) {
	nodes := []*schemas.Node{
		sized("small-1", "4", "128Mi", 0, nil),
		sized("small-2", "4", "128Mi", 0, nil),
		node("down", schemas.NodeNotReady),
		sized("cordoned", "64", "64Gi", 0, nil),
		sized("full", "64", "64Gi", 2, nil),
		sized("busy", "1", "64Gi", 0, nil),
	}
	nodes[3].Unschedulable = true
	bound := []*schemas.Pod{
		podOn("f1", "full", "", "", ""), podOn("f2", "full", "", "", ""),
		podOn("b1", "busy", "", "800m", ""),
		// Terminal pods and pods not yet bound take no room.
		{ObjectMeta: schemas.ObjectMeta{Name: "gone"}, NodeName: "busy", Status: schemas.PodFailed, PodSpec: schemas.PodSpec{Resources: schemas.ResourceList{CPU: "64"}}},
	}
	got, reason := Decide(pending("", "500m", "256Mi"), nodes, bound)
	want := "0/6 nodes available: 2 insufficient memory, 1 NotReady, 1 insufficient cpu, 1 too many pods, 1 unschedulable"
	if got != "" || reason != want {
		t.Fatalf("got %q %q\nwant reason %q", got, reason, want)
	}
	// Room appears: the hog on busy goes away.
	if got, _ := Decide(pending("", "500m", "256Mi"), nodes, bound[:2]); got != "busy" {
		t.Fatalf("picked %q, want busy once its cpu is free", got)
	}
	// Exactly full fits (≤ capacity).
	if got, _ := Decide(pending("", "200m", ""), nodes[5:], bound); got != "busy" {
		t.Fatalf("picked %q, want busy: 800m + 200m = 1 cpu fits", got)
	}
	// Pod slots: the default is 110 when a node reports none.
	var many []*schemas.Pod
	for i := range DefaultMaxPods {
		many = append(many, podOn(fmt.Sprint(i), "a", "", "", ""))
	}
	if got, reason := Decide(pending("", "", ""), []*schemas.Node{node("a", schemas.NodeReady)}, many); got != "" || reason != "0/1 nodes available: 1 too many pods" {
		t.Fatalf("got %q %q", got, reason)
	}
}

func TestDecideNodeSelector(t *testing.T) {
	nodes := []*schemas.Node{
		sized("a", "", "", 0, map[string]string{"disk": "hdd"}),
		sized("b", "", "", 0, map[string]string{"disk": "ssd", "zone": "1"}),
		sized("c", "", "", 0, nil),
	}
	p := pending("", "", "")
	p.NodeSelector = map[string]string{"disk": "ssd"}
	if got, _ := Decide(p, nodes, nil); got != "b" {
		t.Fatalf("picked %q, want b (disk=ssd)", got)
	}
	p.NodeSelector = map[string]string{"disk": "ssd", "zone": "2"}
	if got, reason := Decide(p, nodes, nil); got != "" || reason != "0/3 nodes available: 3 didn't match nodeSelector" {
		t.Fatalf("got %q %q", got, reason)
	}
}

func TestDecideSpreadsReplicaSetBeforeLeastAllocated(t *testing.T) {
	nodes := []*schemas.Node{sized("a", "8", "8Gi", 0, nil), sized("b", "8", "8Gi", 0, nil)}
	// a is emptier overall, but already has a pod of web.
	bound := []*schemas.Pod{
		podOn("w1", "a", "web", "100m", "64Mi"),
		podOn("x1", "b", "other", "4", "4Gi"),
	}
	if got, _ := Decide(pending("web", "100m", "64Mi"), nodes, bound); got != "b" {
		t.Fatalf("picked %q, want b: spread web across nodes first", got)
	}
	// Without an owner, least allocated wins.
	if got, _ := Decide(pending("", "100m", "64Mi"), nodes, bound); got != "a" {
		t.Fatalf("picked %q, want a (least allocated)", got)
	}
	// Spread of a replicaset over 3 nodes: place 9 pods one at a time.
	nodes = append(nodes, sized("c", "8", "8Gi", 0, nil))
	var placed []*schemas.Pod
	count := map[string]int{}
	for i := range 9 {
		n, reason := Decide(pending("web", "100m", "64Mi"), nodes, placed)
		if n == "" {
			t.Fatal(reason)
		}
		placed = append(placed, podOn(fmt.Sprint(i), n, "web", "100m", "64Mi"))
		count[n]++
	}
	if count["a"] != 3 || count["b"] != 3 || count["c"] != 3 {
		t.Fatalf("spread %v, want 3 per node", count)
	}
}

func TestFeasibleToFind(t *testing.T) {
	for _, tc := range []struct{ nodes, want int }{
		{0, 0}, {3, 3}, {100, 100}, {101, 100}, {250, 120}, {1000, 420}, {5000, 500}, {10000, 500},
	} {
		if got := feasibleToFind(tc.nodes); got != tc.want {
			t.Errorf("feasibleToFind(%d) = %d, want %d", tc.nodes, got, tc.want)
		}
	}
}

// A big cluster: each decision weighs a share of the nodes, in turn, yet
// a replicaset still spreads evenly, a pod that fits one node finds it,
// and a pod that fits none is weighed against all.
func TestDecideWeighsAShareOfABigCluster(t *testing.T) {
	const nodes, pods = 1000, 3000
	x := newAllocIndex()
	for i := range nodes {
		x.setNode(fmt.Sprintf("n%04d", i), sized(fmt.Sprintf("n%04d", i), "32", "128Gi", 110, map[string]string{"i": fmt.Sprint(i)}), true)
	}
	for i := range pods {
		p := pending("web", "", "")
		p.Name = fmt.Sprintf("web-%d", i)
		if got, why := x.decideAndAssume(p); got == "" {
			t.Fatalf("%s: no node: %s", p.Name, why)
		}
	}
	use := x.usageByName()
	if len(use) != nodes {
		t.Fatalf("%d of %d nodes used", len(use), nodes)
	}
	// Weighing a window of the nodes, a decision can miss an emptier node
	// elsewhere: kube-scheduler's sampling trades the same evenness.
	lo, hi := pods, 0
	for _, u := range use {
		lo, hi = min(lo, u.pods), max(hi, u.pods)
	}
	if lo < pods/nodes-1 || hi > pods/nodes+1 {
		t.Fatalf("pods per node from %d to %d, want %d ± 1", lo, hi, pods/nodes)
	}
	one := pending("", "", "")
	one.NodeSelector = map[string]string{"i": "7"}
	if got, why := x.decide(one); got != "n0007" {
		t.Fatalf("pod fitting only n0007: got %q (%s)", got, why)
	}
	none := pending("", "33", "")
	if got, why := x.decide(none); got != "" || why != "0/1000 nodes available: 1000 insufficient cpu" {
		t.Fatalf("pod fitting nowhere: got %q, %q", got, why)
	}
}
