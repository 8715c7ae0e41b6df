package apiserver

import (
	"context"
	"net/http"
)

// Nodes are read-only here: kubelets register and heartbeat through KV
// directly, and the node controller owns their status.
const kindNode = "node"

func (s *Server) listNodes(ctx context.Context, w http.ResponseWriter, r *http.Request, _ string) (int, any, error) {
	if isWatch(r) {
		return s.watchNodes(ctx, w, r)
	}
	sel, err := listParams(r)
	if err != nil {
		return 0, nil, err
	}
	out, err := listObjects(ctx, s.conn.Nodes, s.nodes, kindNode, sel, nil)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, out, nil
}

func (s *Server) getNode(ctx context.Context, _ http.ResponseWriter, r *http.Request, name string) (int, any, error) {
	if err := checkQuery(r.URL.Query()); err != nil {
		return 0, nil, err
	}
	n, err := getObject(ctx, s.conn.Nodes, kindNode, name)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, n, nil
}
