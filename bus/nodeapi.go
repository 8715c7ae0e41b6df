package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/time/rate"

	"github.com/miniku/miniku/schemas"
)

// The node API is how a kubelet changes pods: it may not write the pods
// bucket (its credentials could then run anything on any node), so it asks
// the control plane, on subjects that carry its node (only its credentials
// may publish there):
//
//	nodeapi.<node>.podstatus  request: write a pod's status (podStatusRequest)
//	nodeapi.<node>.poddelete  request: remove a Terminating pod (podDeleteRequest)
//	nodeapi.<node>.events     publish: events (schemas.MarshalEvents)
//	nodeapi.<node>.pods       request: the node's pods (nodepods.go)
//	nodeapi.<node>.podget     request: one of the node's pods (nodepods.go)
//
// The server (ServeNodeAPI, run by every apiserver in one queue group)
// applies Kubernetes' NodeRestriction: the pod must be bound to that node,
// only its status fields change, and the write is a compare-and-swap at
// the revision the kubelet read; a conflict returns the current pod, so the
// kubelet retries on it as Bucket.Mutate would. Events get the node as
// their source, whatever they claim, at a bounded rate per node.
const nodeAPIPrefix = "nodeapi"

const (
	nodeOpPodStatus = "podstatus"
	nodeOpPodDelete = "poddelete"
	nodeOpEvents    = "events"
)

// NodeAPISubject is where node's kubelet sends op.
func NodeAPISubject(node, op string) string { return nodeAPIPrefix + "." + node + "." + op }

// ErrForbidden: the node API refused a write the node may not make (a pod
// bound to another node, a pod that is not Terminating).
var ErrForbidden = errors.New("forbidden")

// ErrInvalid: the node API refused a status that breaks the pod's rules.
var ErrInvalid = errors.New("invalid")

// Reply codes of the node API.
const (
	nodeCodeOK        = ""
	nodeCodeConflict  = "Conflict"
	nodeCodeNotFound  = "NotFound"
	nodeCodeForbidden = "Forbidden"
	nodeCodeInvalid   = "Invalid"
	nodeCodeInternal  = "Internal"
)

type podStatusRequest struct {
	Name            string            `json:"name"`
	UID             string            `json:"uid"`
	ResourceVersion uint64            `json:"resourceVersion"`
	Status          schemas.PodStatus `json:"status"`
}

type podDeleteRequest struct {
	Name            string `json:"name"`
	UID             string `json:"uid"`
	ResourceVersion uint64 `json:"resourceVersion"`
}

type nodeAPIReply struct {
	Code  string `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
	// Pod is the pod as written, or the current one on Conflict.
	Pod *schemas.Pod `json:"pod,omitempty"`
	// ResourceVersion of Pod: the value's codec leaves it out.
	ResourceVersion uint64 `json:"resourceVersion,omitempty"`
}

// nodeAPITimeout bounds one request: the write behind it is one KV
// compare-and-swap.
const nodeAPITimeout = 10 * time.Second

func (c *Conn) nodeRequest(ctx context.Context, node, op string, req any) (*nodeAPIReply, error) {
	data, err := schemas.Marshal(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, nodeAPITimeout)
	defer cancel()
	m, err := c.nc.RequestWithContext(ctx, NodeAPISubject(node, op), data)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, fmt.Errorf("node API %s: no apiserver answers: %w", op, err)
	}
	if err != nil {
		return nil, fmt.Errorf("node API %s: %w", op, err)
	}
	var r nodeAPIReply
	if err := schemas.Unmarshal(m.Data, &r); err != nil {
		return nil, fmt.Errorf("node API %s: reply: %w", op, err)
	}
	if r.Pod != nil {
		r.Pod.ResourceVersion = r.ResourceVersion
	}
	switch r.Code {
	case nodeCodeOK:
		return &r, nil
	case nodeCodeConflict:
		err = ErrConflict
	case nodeCodeNotFound:
		err = ErrNotFound
	case nodeCodeForbidden:
		err = ErrForbidden
	case nodeCodeInvalid:
		err = ErrInvalid
	default:
		err = errors.New("server error")
	}
	return &r, fmt.Errorf("node API %s: %w: %s", op, err, r.Error)
}

// UpdatePodStatus writes pod's status (and nothing else of it) through the
// node API as node's kubelet, if the pod is still at pod.ResourceVersion.
// It returns the pod as written; on ErrConflict, the current pod (nil if
// the server could not read it).
func (c *Conn) UpdatePodStatus(ctx context.Context, node string, pod *schemas.Pod) (*schemas.Pod, error) {
	r, err := c.nodeRequest(ctx, node, nodeOpPodStatus, &podStatusRequest{
		Name: pod.Name, UID: pod.UID, ResourceVersion: pod.ResourceVersion, Status: schemas.PodStatusOf(pod),
	})
	if r == nil {
		return nil, err
	}
	return r.Pod, err
}

// MutatePodStatus is Bucket.MutateFrom (cached not nil) or Bucket.Mutate
// for a kubelet: fn changes the status of a copy of the pod, which is sent
// through the node API; on a conflict fn runs again on the pod the server
// returned. fn must not carry state over from one run to the next.
func (c *Conn) MutatePodStatus(ctx context.Context, node string, cached *schemas.Pod, name string, fn func(*schemas.Pod) error) (*schemas.Pod, error) {
	var obj *schemas.Pod
	fresh := cached == nil
	if cached != nil {
		obj = cached.DeepCopy()
	}
	for attempt := 0; ; attempt++ {
		if obj == nil {
			var err error
			if obj, err = c.GetNodePod(ctx, node, name); err != nil {
				return nil, err
			}
			fresh = true
		}
		if err := fn(obj); err != nil {
			if !fresh {
				// Perhaps only because the copy is behind.
				obj = nil
				continue
			}
			if errors.Is(err, ErrNoChange) {
				return obj, nil
			}
			return nil, err
		}
		written, err := c.UpdatePodStatus(ctx, node, obj)
		if err == nil {
			return written, nil
		}
		if !errors.Is(err, ErrConflict) || attempt >= 100 {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		obj, fresh = written, written != nil
	}
}

// DeletePod removes pod, which must be Terminating and bound to node,
// through the node API if it is still at pod.ResourceVersion: the errors
// are Bucket.Delete's (ErrConflict, ErrNotFound), and ErrForbidden. A pod
// that finalizers hold is kept, its grace set to 0 (its kubelet is done;
// the last finalizer's removal removes it, as Kubernetes does), and
// returned as written; nil means removed.
func (c *Conn) DeletePod(ctx context.Context, node string, pod *schemas.Pod) (*schemas.Pod, error) {
	r, err := c.nodeRequest(ctx, node, nodeOpPodDelete, &podDeleteRequest{
		Name: pod.Name, UID: pod.UID, ResourceVersion: pod.ResourceVersion,
	})
	if err != nil {
		return nil, err
	}
	return r.Pod, nil
}

// PodStatusWriter writes a pod's status through the pod's status rules
// (bus/registry's Pods, kinds' status strategy), the same the Kubernetes
// API's pods/status runs: obj is old with the kubelet's status; it
// becomes the pod as written.
type PodStatusWriter interface {
	WriteStatus(ctx context.Context, obj, old *schemas.Pod) error
}

// NodeAPIConfig tunes ServeNodeAPI.
type NodeAPIConfig struct {
	// PodStatus writes the statuses kubelets send (required).
	PodStatus PodStatusWriter
	// Pods is the process's pod cache (the apiserver's), read instead of
	// KV when it holds the revision a kubelet read, and the source of
	// the nodes' views (nodepods.go). nil: ServeNodeAPI runs its own.
	Pods *Informer[schemas.Pod, *schemas.Pod]
	// Workers handle requests at once (default 32): each waits on one KV
	// round trip.
	Workers int
	// EventRate and EventBurst bound the events one node may record
	// (messages a second; default 20/s, bursts of 500: a node starting
	// 110 pods at once sends 110).
	EventRate  float64
	EventBurst int
	Logger     *slog.Logger
}

// ServeNodeAPI answers the node API until ctx ends. Every apiserver
// replica runs it; each request goes to one of them.
func ServeNodeAPI(ctx context.Context, c *Conn, cfg NodeAPIConfig) error {
	if cfg.PodStatus == nil {
		return errors.New("serve node API: no pod status writer")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 32
	}
	if cfg.EventRate <= 0 {
		cfg.EventRate = 20
	}
	if cfg.EventBurst <= 0 {
		cfg.EventBurst = 500
	}
	if cfg.Logger == nil {
		cfg.Logger = c.log
	}
	s := &nodeAPIServer{c: c, cfg: cfg, log: cfg.Logger.With("component", "nodeapi"), limits: map[string]*rate.Limiter{}, pods: cfg.Pods}
	var wg sync.WaitGroup
	defer wg.Wait()
	if s.pods == nil {
		s.pods = NewInformer(c, c.Pods, 0, s.log)
		wg.Go(func() { _ = s.pods.Run(ctx) })
	}
	s.pods.AddIndex(PodsByNode, PodNode)
	// One apiserver of several pushes the nodes' views (nodepods.go): each
	// pushing would send every change to a kubelet once per apiserver.
	lease, err := c.NewLease(ctx, LeaseConfig{Name: nodePodsLease, Logger: s.log})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("serve node API: %w", err)
	}
	wg.Go(func() {
		_ = lease.Run(ctx, func(lctx context.Context) error {
			// Registering replays the whole cache: a new pusher re-sends
			// every bound pod once, repairing what went unpushed since
			// the last one stopped.
			remove := s.pods.AddEventHandler(nodePodsPublisher{c: c, log: s.log}.handler())
			<-lctx.Done()
			remove()
			return nil
		})
	})
	msgs := make(chan *nats.Msg, 8192)
	sub, err := c.nc.ChanQueueSubscribe(nodeAPIPrefix+".*.*", "nodeapi", msgs)
	if err != nil {
		return fmt.Errorf("serve node API: subscribe: %w", err)
	}
	defer sub.Unsubscribe()
	// The channel holds what a burst of kubelets sends; beyond it NATS
	// drops and the kubelets' requests time out and are retried.
	_ = sub.SetPendingLimits(-1, -1)
	for range cfg.Workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case m := <-msgs:
					s.handle(ctx, m)
				}
			}
		})
	}
	wg.Go(func() { s.forgetLimits(ctx) })
	<-ctx.Done()
	return nil
}

type nodeAPIServer struct {
	c   *Conn
	cfg NodeAPIConfig
	log *slog.Logger

	pods *Informer[schemas.Pod, *schemas.Pod]

	mu      sync.Mutex
	limits  map[string]*rate.Limiter // by node
	dropped map[string]int           // events dropped since the last report
}

func (s *nodeAPIServer) handle(ctx context.Context, m *nats.Msg) {
	rest := strings.TrimPrefix(m.Subject, nodeAPIPrefix+".")
	node, op, ok := strings.Cut(rest, ".")
	if !ok || schemas.ValidateName("node", node, schemas.MaxNameLength) != nil {
		return
	}
	if op == nodeOpEvents {
		s.events(node, m.Data)
		return
	}
	if m.Reply == "" {
		return
	}
	if op == nodeOpPods {
		r := s.servePods(node)
		data, err := schemas.Marshal(&r)
		if err != nil {
			s.log.Warn("encode node pods", "node", node, "err", err)
			return
		}
		_ = m.Respond(data)
		return
	}
	var r nodeAPIReply
	switch op {
	case nodeOpPodGet:
		r = s.podGet(ctx, node, m.Data)
	case nodeOpPodStatus:
		r = s.podStatus(ctx, node, m.Data)
	case nodeOpPodDelete:
		r = s.podDelete(ctx, node, m.Data)
	default:
		r = nodeAPIReply{Code: nodeCodeInvalid, Error: fmt.Sprintf("unknown node API operation %q", op)}
	}
	if r.Pod != nil {
		r.ResourceVersion = r.Pod.ResourceVersion
	}
	data, err := schemas.Marshal(&r)
	if err != nil {
		s.log.Warn("encode node API reply", "node", node, "op", op, "err", err)
		return
	}
	_ = m.Respond(data)
}

func failReply(code, format string, args ...any) nodeAPIReply {
	return nodeAPIReply{Code: code, Error: fmt.Sprintf(format, args...)}
}

// current is the pod at rev if the cache has it, else KV's.
func (s *nodeAPIServer) current(ctx context.Context, name string, rev uint64) (*schemas.Pod, error) {
	if p, ok := s.pods.Get(name); ok && p.ResourceVersion == rev {
		return p.DeepCopy(), nil
	}
	return s.c.Pods.Get(ctx, name)
}

// readPod reads the pod a request names, fresh from KV; a bad name, a
// missing pod or a failed read is the reply to send instead.
func (s *nodeAPIServer) readPod(ctx context.Context, name string) (*schemas.Pod, *nodeAPIReply) {
	if err := schemas.ValidateName("name", name, schemas.MaxNameLength); err != nil {
		r := failReply(nodeCodeInvalid, "%v", err)
		return nil, &r
	}
	cur, err := s.c.Pods.Get(ctx, name)
	if errors.Is(err, ErrNotFound) {
		r := failReply(nodeCodeNotFound, "pod %s not found", name)
		return nil, &r
	}
	if err != nil {
		r := failReply(nodeCodeInternal, "read pod %s: %v", name, err)
		return nil, &r
	}
	return cur, nil
}

// conflictReply reads the pod afresh for the kubelet to retry on.
func (s *nodeAPIServer) conflictReply(ctx context.Context, name string) nodeAPIReply {
	cur, err := s.c.Pods.Get(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return failReply(nodeCodeNotFound, "pod %s not found", name)
	}
	if err != nil {
		return failReply(nodeCodeInternal, "read pod %s: %v", name, err)
	}
	return nodeAPIReply{Code: nodeCodeConflict, Error: fmt.Sprintf("pod %s changed: it is at revision %d", name, cur.ResourceVersion), Pod: cur}
}

func (s *nodeAPIServer) podStatus(ctx context.Context, node string, data []byte) nodeAPIReply {
	var req podStatusRequest
	if err := schemas.Unmarshal(data, &req); err != nil {
		return failReply(nodeCodeInvalid, "malformed pod status request: %v", err)
	}
	if err := schemas.ValidateName("name", req.Name, schemas.MaxNameLength); err != nil {
		return failReply(nodeCodeInvalid, "%v", err)
	}
	cur, err := s.current(ctx, req.Name, req.ResourceVersion)
	if errors.Is(err, ErrNotFound) {
		return failReply(nodeCodeNotFound, "pod %s not found", req.Name)
	}
	if err != nil {
		return failReply(nodeCodeInternal, "read pod %s: %v", req.Name, err)
	}
	if cur.NodeName != node {
		return failReply(nodeCodeForbidden, "pod %s is bound to node %q, not %s: a kubelet writes only its own node's pods", req.Name, cur.NodeName, node)
	}
	if cur.ResourceVersion != req.ResourceVersion || cur.UID != req.UID {
		return nodeAPIReply{Code: nodeCodeConflict, Error: fmt.Sprintf("pod %s changed: it is at revision %d", req.Name, cur.ResourceVersion), Pod: cur}
	}
	next := &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: cur.Name}}
	schemas.SetPodStatus(next, req.Status)
	switch err := s.cfg.PodStatus.WriteStatus(ctx, next, cur); {
	case errors.Is(err, ErrInvalid):
		return failReply(nodeCodeInvalid, "%v", err)
	case errors.Is(err, ErrConflict):
		return s.conflictReply(ctx, req.Name)
	case errors.Is(err, ErrNotFound):
		return failReply(nodeCodeNotFound, "pod %s not found", req.Name)
	case err != nil:
		return failReply(nodeCodeInternal, "write status of pod %s: %v", req.Name, err)
	}
	return nodeAPIReply{Pod: next}
}

func (s *nodeAPIServer) podDelete(ctx context.Context, node string, data []byte) nodeAPIReply {
	var req podDeleteRequest
	if err := schemas.Unmarshal(data, &req); err != nil {
		return failReply(nodeCodeInvalid, "malformed pod delete request: %v", err)
	}
	cur, fail := s.readPod(ctx, req.Name)
	if fail != nil {
		return *fail
	}
	if cur.NodeName != node {
		return failReply(nodeCodeForbidden, "pod %s is bound to node %q, not %s: a kubelet deletes only its own node's pods", req.Name, cur.NodeName, node)
	}
	if cur.DeletionTimestamp == nil {
		return failReply(nodeCodeForbidden, "pod %s is not terminating: a kubelet removes a pod only once it is being deleted", req.Name)
	}
	if cur.ResourceVersion != req.ResourceVersion || cur.UID != req.UID {
		return nodeAPIReply{Code: nodeCodeConflict, Error: fmt.Sprintf("pod %s changed: it is at revision %d", req.Name, cur.ResourceVersion), Pod: cur}
	}
	if len(cur.Finalizers) > 0 {
		if g := cur.DeletionGracePeriodSeconds; g != nil && *g == 0 {
			return nodeAPIReply{Pod: cur}
		}
		zero := int64(0)
		cur.DeletionGracePeriodSeconds = &zero
		switch err := s.c.Pods.Update(ctx, cur); {
		case errors.Is(err, ErrConflict):
			return s.conflictReply(ctx, req.Name)
		case err != nil:
			return failReply(nodeCodeInternal, "finish pod %s: %v", req.Name, err)
		}
		return nodeAPIReply{Pod: cur}
	}
	switch err := s.c.Pods.Delete(ctx, req.Name, cur.ResourceVersion); {
	case errors.Is(err, ErrConflict):
		return s.conflictReply(ctx, req.Name)
	case errors.Is(err, ErrNotFound):
		return failReply(nodeCodeNotFound, "pod %s not found", req.Name)
	case err != nil:
		return failReply(nodeCodeInternal, "delete pod %s: %v", req.Name, err)
	}
	return nodeAPIReply{}
}

// events records a node's events with the node as their source, if the
// node is within its rate; the rest are dropped (and counted in the log):
// events are for people, and one node must not push everyone else's out
// of the bounded EVENTS stream.
func (s *nodeAPIServer) events(node string, data []byte) {
	evs, err := schemas.UnmarshalEvents(data)
	if err != nil || len(evs) == 0 {
		return
	}
	s.mu.Lock()
	lim := s.limits[node]
	if lim == nil {
		lim = rate.NewLimiter(rate.Limit(s.cfg.EventRate), s.cfg.EventBurst)
		s.limits[node] = lim
	}
	if !lim.Allow() {
		if s.dropped == nil {
			s.dropped = map[string]int{}
		}
		s.dropped[node]++
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	kept := evs[:0]
	for _, ev := range evs {
		// Kind and Name form the subject: nothing else may get there.
		if (ev.Kind != schemas.KindPod && ev.Kind != schemas.KindNode) || schemas.ValidateName("name", ev.Name, schemas.MaxNameLength) != nil {
			continue
		}
		ev.Component, ev.Node, ev.Seq = "kubelet", node, 0
		kept = append(kept, ev)
	}
	s.c.publishEvents(kept)
}

// forgetLimits drops the limiters of nodes that are back to a full bucket
// (idle ones), so the map holds only nodes sending now, and logs what was
// dropped.
func (s *nodeAPIServer) forgetLimits(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		for n, l := range s.limits {
			if l.Tokens() >= float64(s.cfg.EventBurst) {
				delete(s.limits, n)
			}
		}
		dropped := s.dropped
		s.dropped = nil
		s.mu.Unlock()
		for n, k := range dropped {
			s.log.Warn("dropped events over the node's rate", "node", n, "messages", k, "rate", s.cfg.EventRate)
		}
	}
}
