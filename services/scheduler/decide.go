package scheduler

import (
	"fmt"
	"sort"
	"strings"

	"github.com/miniku/miniku/schemas"
)

// Decide picks the node for pod: among Ready nodes, the one with the fewest
// pods (ties broken by name so the choice is deterministic). podsOnNode
// counts non-terminal pods per node. With no candidate it returns "" and a
// reason in Kubernetes' "0/N nodes available: ..." form.
func Decide(pod *schemas.Pod, nodes []*schemas.Node, podsOnNode map[string]int) (string, string) {
	var candidates []*schemas.Node
	notReady := 0
	for _, n := range nodes {
		if n.Status != schemas.NodeReady {
			notReady++
			continue
		}
		candidates = append(candidates, n)
	}
	if len(candidates) == 0 {
		var why []string
		if notReady > 0 {
			why = append(why, fmt.Sprintf("%d NotReady", notReady))
		}
		if len(nodes) == 0 {
			why = append(why, "no nodes registered")
		}
		return "", fmt.Sprintf("0/%d nodes available: %s", len(nodes), strings.Join(why, ", "))
	}
	sort.Slice(candidates, func(i, j int) bool {
		a, b := podsOnNode[candidates[i].Name], podsOnNode[candidates[j].Name]
		if a != b {
			return a < b
		}
		return candidates[i].Name < candidates[j].Name
	})
	return candidates[0].Name, ""
}
