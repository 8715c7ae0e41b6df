package apiserver

import (
	"context"
	"errors"
	"net/http"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/schemas/kinds"
)

const kindPod = "pod"

func (s *Server) listPods(ctx context.Context, w http.ResponseWriter, r *http.Request, _ string) (int, any, error) {
	if isWatch(r) {
		return s.watchPods(ctx, w, r)
	}
	sel, err := listParams(r, "nodeName")
	if err != nil {
		return 0, nil, err
	}
	var keep func(*schemas.Pod) bool
	q := r.URL.Query()
	// Present but empty means "not yet scheduled", as Kubernetes'
	// spec.nodeName= field selector does.
	if q.Has("nodeName") {
		node := q.Get("nodeName")
		if node != "" {
			if err := schemas.ValidateName("nodeName", node, schemas.MaxNameLength); err != nil {
				return 0, nil, badRequest("%s", err)
			}
		}
		keep = func(p *schemas.Pod) bool { return p.NodeName == node }
	}
	out, err := listObjects(ctx, s.conn.Pods, s.pods, kindPod, sel, keep)
	if err != nil {
		return 0, nil, err
	}
	body, err := encodeList(s.podsJSON, out, len(sel) == 0 && keep == nil)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, body, nil
}

func (s *Server) getPod(ctx context.Context, _ http.ResponseWriter, r *http.Request, name string) (int, any, error) {
	if err := checkQuery(r.URL.Query()); err != nil {
		return 0, nil, err
	}
	p, err := getObject(ctx, s.conn.Pods, kindPod, name)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, p, nil
}

func (s *Server) createPod(ctx context.Context, w http.ResponseWriter, r *http.Request, _ string) (int, any, error) {
	if err := checkQuery(r.URL.Query()); err != nil {
		return 0, nil, err
	}
	var p schemas.Pod
	if err := decodeBody(w, r, &p); err != nil {
		return 0, nil, err
	}
	// The pod strategy every writer runs: identity and status (the
	// kubelet's) reset before validating, so a client that posts back a
	// pod it read is not refused over fields it cannot set.
	kinds.PreparePodForCreate(&p, s.now())
	if err := p.Validate(); err != nil {
		return 0, nil, invalid(kindPod, err) // the seed's own field names
	}
	if errs := kinds.ValidatePod(&p); len(errs) > 0 {
		return 0, nil, invalid(kindPod, errs.ToAggregate()) // the rules the seed's Validate does not know
	}
	if err := p.CheckPodSecurity(s.cfg.PodSecurity); err != nil {
		return 0, nil, forbidden(kindPod, p.Name, err)
	}
	if err := s.conn.Pods.Create(ctx, &p); err != nil {
		if errors.Is(err, bus.ErrAlreadyExists) {
			return 0, nil, alreadyExists(kindPod, p.Name)
		}
		return 0, nil, err
	}
	s.log.Info("pod created", "pod", p.Name, "node", p.NodeName, "resourceVersion", p.ResourceVersion)
	s.publish(bus.SubjPodCreated, schemas.Event{Type: "created", Kind: schemas.KindPod, Name: p.Name, Node: p.NodeName, Revision: p.ResourceVersion})
	if p.NodeName != "" {
		// A pod created bound skips the scheduler, so its kubelet must
		// hear about it directly.
		s.publish(bus.NodeSubject(bus.SubjPodAssigned, p.NodeName),
			schemas.Event{Type: "assigned", Kind: schemas.KindPod, Name: p.Name, Node: p.NodeName, Revision: p.ResourceVersion})
	}
	w.Header().Set("Location", "/pods/"+p.Name)
	return http.StatusCreated, &p, nil
}

func (s *Server) deletePod(ctx context.Context, _ http.ResponseWriter, r *http.Request, name string) (int, any, error) {
	q := r.URL.Query()
	if err := checkQuery(q, "resourceVersion", "gracePeriodSeconds"); err != nil {
		return 0, nil, err
	}
	want, err := parseResourceVersion(q)
	if err != nil {
		return 0, nil, err
	}
	grace, err := parseGracePeriod(q)
	if err != nil {
		return 0, nil, err
	}
	p, err := s.deletePodGracefully(ctx, name, want, grace, "")
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, p, nil
}
