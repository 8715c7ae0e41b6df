package scheduler

import (
	"fmt"
	"testing"

	"github.com/miniku/miniku/schemas"
)

// BenchmarkDecide1000Nodes is one decision of the throughput benchmark's
// shape: a replicaset's pod weighed against 1,000 hollow-sized nodes that
// already run some of its pods. go test -run '^$' -bench Decide ./services/scheduler/
func BenchmarkDecide1000Nodes(b *testing.B) {
	x := newAllocIndex()
	cache := map[string]*schemas.Pod{}
	get := func(name string) (*schemas.Pod, bool) { p, ok := cache[name]; return p, ok }
	var nodes []*schemas.Node
	for i := range 1000 {
		n := node(fmt.Sprintf("hollow-%d", i), schemas.NodeReady)
		n.Capacity = schemas.ResourceList{CPU: "32", Memory: "128Gi", Pods: 110}
		nodes = append(nodes, n)
		x.setNode(n.Name, n, true)
	}
	for i := range 5000 {
		p := pending("bench", "", "")
		p.Name = fmt.Sprintf("bench-%d", i)
		p.NodeName = nodes[i%len(nodes)].Name
		cache[p.Name] = p
		x.refresh(p.Name, get)
	}
	pod := pending("bench", "", "")
	pod.Name = "new"
	b.ResetTimer()
	for range b.N {
		if n, why := x.decide(pod); n == "" {
			b.Fatal(why)
		}
	}
}
