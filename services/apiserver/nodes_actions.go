package apiserver

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas"
)

// nodeActionRoutes serves POST /nodes/{name}/cordon, /uncordon and /drain.
func (s *Server) nodeActionRoutes(action string) ([]endpoint, string, bool) {
	switch action {
	case "cordon":
		return []endpoint{{http.MethodPost, s.cordonNode}}, kindNode, true
	case "uncordon":
		return []endpoint{{http.MethodPost, s.uncordonNode}}, kindNode, true
	case "drain":
		return []endpoint{{http.MethodPost, s.drainNode}}, kindNode, true
	}
	return nil, "", false
}

func (s *Server) cordonNode(ctx context.Context, _ http.ResponseWriter, r *http.Request, name string) (int, any, error) {
	if err := checkQuery(r.URL.Query()); err != nil {
		return 0, nil, err
	}
	n, err := s.setUnschedulable(ctx, name, true)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, n, nil
}

func (s *Server) uncordonNode(ctx context.Context, _ http.ResponseWriter, r *http.Request, name string) (int, any, error) {
	if err := checkQuery(r.URL.Query()); err != nil {
		return 0, nil, err
	}
	n, err := s.setUnschedulable(ctx, name, false)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, n, nil
}

// setUnschedulable flips the cordon with a compare-and-swap against the
// kubelet's concurrent heartbeats.
func (s *Server) setUnschedulable(ctx context.Context, name string, cordon bool) (*schemas.Node, error) {
	changed := false
	n, err := s.conn.Nodes.Mutate(ctx, name, func(n *schemas.Node) error {
		changed = n.Unschedulable != cordon
		if !changed {
			return bus.ErrNoChange
		}
		n.Unschedulable = cordon
		return nil
	})
	if errors.Is(err, bus.ErrNotFound) {
		return nil, notFound(kindNode, name)
	}
	if err != nil {
		return nil, err
	}
	// The scheduler sees the change through its watch of the nodes bucket.
	if changed {
		reason := "NodeSchedulable"
		if cordon {
			reason = "NodeNotSchedulable"
		}
		s.log.Info("node cordon changed", "node", name, "unschedulable", cordon)
		s.conn.Emit(schemas.ObjectEvent{Type: schemas.EventNormal, Reason: reason, Kind: schemas.KindNode, Name: name, Node: name,
			Component: "apiserver", Message: "Node " + name + " status is now: " + reason})
	}
	return n, nil
}

// DrainResult lists the pods a drain deleted.
type DrainResult struct {
	Node    string   `json:"node"`
	Evicted []string `json:"evicted"`
}

// drainNode cordons the node, then deletes every pod bound to it through
// the same path as DELETE /pods/{name}; replicasets replace them elsewhere.
// It lists again after each pass, because the scheduler may have bound a
// pod there just before it saw the cordon.
func (s *Server) drainNode(ctx context.Context, _ http.ResponseWriter, r *http.Request, name string) (int, any, error) {
	if err := checkQuery(r.URL.Query()); err != nil {
		return 0, nil, err
	}
	if _, err := s.setUnschedulable(ctx, name, true); err != nil {
		return 0, nil, err
	}
	res := DrainResult{Node: name, Evicted: []string{}}
	done := map[string]bool{}
	for pass := 0; pass < 3; pass++ {
		pods, err := s.conn.Pods.List(ctx)
		if err != nil {
			return 0, nil, err
		}
		more := false
		for _, p := range pods {
			if p.NodeName != name || done[p.Name] {
				continue
			}
			done[p.Name] = true
			more = true
			req, err := http.NewRequestWithContext(ctx, http.MethodDelete, "/pods/"+p.Name, nil)
			if err != nil {
				return 0, nil, err
			}
			if _, _, err := s.deletePod(ctx, discardResponse{}, req, p.Name); err != nil {
				if ae, ok := isAPIError(err); ok && ae.status == http.StatusNotFound {
					continue // deleted meanwhile
				}
				return 0, nil, err
			}
			res.Evicted = append(res.Evicted, p.Name)
		}
		if !more {
			break
		}
	}
	slices.Sort(res.Evicted)
	s.log.Info("node drained", "node", name, "evicted", len(res.Evicted))
	return http.StatusOK, res, nil
}

// discardResponse stands in for the client's writer when a handler is
// reused internally (drain deletes pods through deletePod).
type discardResponse struct{}

func (discardResponse) Header() http.Header         { return http.Header{} }
func (discardResponse) Write(b []byte) (int, error) { return len(b), nil }
func (discardResponse) WriteHeader(int)             {}
