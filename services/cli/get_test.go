package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/cli/client"
)

// TestGetNodesWatch: after the table, a node is printed again only when
// what the table shows changes (not at each heartbeat), and a DELETED for
// a node never shown is ignored. The watch resumes after the list.
func TestGetNodesWatch(t *testing.T) {
	now := time.Now().UTC()
	n1 := schemas.Node{ObjectMeta: schemas.ObjectMeta{Name: "node-1", ResourceVersion: 5, CreatedAt: now}, Status: schemas.NodeReady, LastHeartbeat: now}
	var watchQuery string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch {
		case r.URL.Path == "/nodes" && r.URL.Query().Get("watch") == "true":
			watchQuery = r.URL.RawQuery
			hb := n1
			hb.LastHeartbeat = now.Add(time.Second)
			down := hb
			down.Status = schemas.NodeNotReady
			for _, ev := range []any{
				map[string]any{"type": "MODIFIED", "object": hb},
				map[string]any{"type": "BOOKMARK", "object": map[string]any{"resourceVersion": 9}},
				map[string]any{"type": "DELETED", "object": map[string]any{"name": "node-9", "resourceVersion": 10}},
				map[string]any{"type": "MODIFIED", "object": down},
				map[string]any{"type": "DELETED", "object": map[string]any{"name": "node-1", "resourceVersion": 12}},
			} {
				data, _ := json.Marshal(ev)
				fmt.Fprintf(w, "%s\n", data)
			}
		case r.URL.Path == "/nodes":
			_ = json.NewEncoder(w).Encode([]schemas.Node{n1})
		case r.URL.Path == "/pods":
			_ = json.NewEncoder(w).Encode([]schemas.Pod{{ObjectMeta: schemas.ObjectMeta{Name: "p"}, NodeName: "node-1", Status: schemas.PodRunning}})
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c, err := client.New(srv.URL, "tok", "")
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	g := &getCmd{kind: "nodes", watch: true}
	if err := g.run(context.Background(), c, nil, &out); err != nil {
		t.Fatal(err)
	}
	// Widths come from the table; a longer cell later pushes the rest right.
	want := "NAME     STATUS   PODS   CPU      MEMORY   AGE\n" +
		"node-1   Ready    1      <none>   <none>   0s\n" +
		"node-1   NotReady   ?      <none>   <none>   0s\n" +
		"node-1   Deleted\n"
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
	if watchQuery != "watch=true&resourceVersion=5" {
		t.Fatalf("watch query %q, want it to resume after the list", watchQuery)
	}
}
