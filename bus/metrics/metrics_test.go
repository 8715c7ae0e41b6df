package metrics

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/miniku/miniku/schemas"
)

type fakeCluster struct {
	pods  []*schemas.Pod
	nodes []*schemas.Node
}

func (f fakeCluster) ClusterState() ([]*schemas.Pod, []*schemas.Node) { return f.pods, f.nodes }

func TestClusterGauges(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	cluster.now = func() time.Time { return now }
	t.Cleanup(func() { cluster.now = time.Now })
	del := now
	src := fakeCluster{
		pods: []*schemas.Pod{
			{Status: schemas.PodRunning}, {Status: schemas.PodRunning}, {Status: schemas.PodPending},
			{ObjectMeta: schemas.ObjectMeta{DeletionTimestamp: &del}, Status: schemas.PodRunning},
		},
		nodes: []*schemas.Node{
			{ObjectMeta: schemas.ObjectMeta{Name: "a"}, Status: schemas.NodeReady, LastHeartbeat: now.Add(-1500 * time.Millisecond)},
			{ObjectMeta: schemas.ObjectMeta{Name: "b"}, Status: schemas.NodeNotReady, LastHeartbeat: now.Add(-time.Minute)},
		},
	}
	if n := testutil.CollectAndCount(&cluster); n != 0 {
		t.Fatalf("%d cluster samples without a source, want 0", n)
	}
	unset := SetCluster(src)
	want := `
# HELP miniku_node_heartbeat_age_seconds Seconds since each node's last heartbeat (the kubelet's clock against the controller's).
# TYPE miniku_node_heartbeat_age_seconds gauge
miniku_node_heartbeat_age_seconds{node="a"} 1.5
miniku_node_heartbeat_age_seconds{node="b"} 60
# HELP miniku_node_ready 1 if the node is Ready, else 0.
# TYPE miniku_node_ready gauge
miniku_node_ready{node="a"} 1
miniku_node_ready{node="b"} 0
# HELP miniku_pods Pods per phase (Terminating counted apart from its phase), as the leading controller's cache sees them.
# TYPE miniku_pods gauge
miniku_pods{phase="Failed"} 0
miniku_pods{phase="Pending"} 1
miniku_pods{phase="Running"} 2
miniku_pods{phase="Succeeded"} 0
miniku_pods{phase="Terminating"} 1
miniku_pods{phase="Unknown"} 0
`
	if err := testutil.CollectAndCompare(&cluster, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	// A later source wins; unsetting an older one leaves it in place.
	unset2 := SetCluster(fakeCluster{})
	unset()
	if cluster.src == nil {
		t.Fatal("unset of a replaced source removed the current one")
	}
	unset2()
	if n := testutil.CollectAndCount(&cluster); n != 0 {
		t.Fatalf("%d cluster samples after unset, want 0", n)
	}
}

func TestCountersMove(t *testing.T) {
	f := Reconciler("test", func(context.Context, string) error { return errors.New("boom") })
	before := testutil.CollectAndCount(reconcile)
	if err := f(context.Background(), "x"); err == nil {
		t.Fatal("Reconciler swallowed the error")
	}
	if after := testutil.CollectAndCount(reconcile); after != before+1 {
		t.Fatalf("reconcile series %d -> %d, want one new (kind=test, result=error)", before, after)
	}
	b := testutil.ToFloat64(schedBinds.WithLabelValues("conflict"))
	Bind(time.Now(), errors.New("conflict"), true)
	if got := testutil.ToFloat64(schedBinds.WithLabelValues("conflict")); got != b+1 {
		t.Fatalf("conflict binds %v -> %v", b, got)
	}
	s := testutil.ToFloat64(containerStarts.WithLabelValues("n1", "ok"))
	ContainerStart("n1", nil)
	if got := testutil.ToFloat64(containerStarts.WithLabelValues("n1", "ok")); got != s+1 {
		t.Fatalf("container starts %v -> %v", s, got)
	}
	APIRequest("GET", "/pods", 200, time.Millisecond)
	if got := testutil.ToFloat64(apiRequests.WithLabelValues("GET", "/pods", "200")); got < 1 {
		t.Fatalf("api requests %v", got)
	}
}
