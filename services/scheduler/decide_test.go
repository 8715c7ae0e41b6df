package scheduler

import (
	"strings"
	"testing"

	"github.com/miniku/miniku/schemas"
)

func node(name string, st schemas.NodeStatus) *schemas.Node {
	return &schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: name}, Status: st}
}

func TestDecideSpreadsToFewestPods(t *testing.T) {
	nodes := []*schemas.Node{node("a", schemas.NodeReady), node("b", schemas.NodeReady), node("c", schemas.NodeReady)}
	got, _ := Decide(&schemas.Pod{}, nodes, map[string]int{"a": 2, "b": 1, "c": 1})
	if got != "b" {
		t.Fatalf("picked %q, want b (fewest pods, then name)", got)
	}
}

func TestDecideNeverPicksNotReady(t *testing.T) {
	nodes := []*schemas.Node{node("a", schemas.NodeNotReady), node("b", schemas.NodeReady)}
	got, _ := Decide(&schemas.Pod{}, nodes, map[string]int{"b": 100})
	if got != "b" {
		t.Fatalf("picked %q, want b: a is NotReady", got)
	}
	got, reason := Decide(&schemas.Pod{}, nodes[:1], nil)
	if got != "" || !strings.Contains(reason, "0/1 nodes available: 1 NotReady") {
		t.Fatalf("got %q %q", got, reason)
	}
	if got, reason := Decide(&schemas.Pod{}, nil, nil); got != "" || !strings.Contains(reason, "no nodes") {
		t.Fatalf("got %q %q", got, reason)
	}
}
