package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/miniku/miniku/schemas"
)

// Per-node delivery (docs/cluster.md): a kubelet receives only the pods
// bound to its node, as Kubernetes' kubelet lists and watches pods with
// fieldSelector spec.nodeName=<node>. A pod's key is its name, which does
// not carry its node, so no subject filter, consumer or KV republish on
// the pods bucket can select a node's pods; and a second, derived bucket
// keyed <node>.<pod> would double the writes of the pods path. Instead the
// apiserver, which holds every pod in its cache anyway, serves the view:
//
//	nodepods.<node>          push: every change of a pod bound to node, or
//	                         bound there before it (nodePodsPush)
//	nodeapi.<node>.pods      request: the node's pods now (nodePodsReply)
//	nodeapi.<node>.podget    request: one pod of the node, read from KV
//
// The pushes are core NATS, hints like every subject: a kubelet relists
// every resync period, after a reconnect and when its subscription dropped
// messages, and a relist drops what is gone (level-triggered). Only node
// (and the control plane's) credentials may subscribe to nodepods.<node>
// or request for node (auth.go), and a kubelet's user may not read the
// pods bucket at all.
const SubjNodePods = "nodepods"

// nodePodsLease elects the apiserver that pushes.
const nodePodsLease = "nodepods"

const (
	nodeOpPods   = "pods"
	nodeOpPodGet = "podget"
)

// nodePodsPush is one change of a node's view: Pod at ResourceVersion, or
// with Gone, the pod left the view (deleted, or bound elsewhere) at a
// revision not above the write that removed it.
type nodePodsPush struct {
	Name            string       `json:"name"`
	ResourceVersion uint64       `json:"resourceVersion"`
	Gone            bool         `json:"gone,omitempty"`
	Pod             *schemas.Pod `json:"pod,omitempty"`
}

// nodePodsReply is a node's view: every pod bound to it in a cache that
// reflects every pods write up to Revision.
type nodePodsReply struct {
	Code      string         `json:"code,omitempty"`
	Error     string         `json:"error,omitempty"`
	Pods      []*schemas.Pod `json:"pods,omitempty"`
	Revisions []uint64       `json:"revisions,omitempty"`
	Revision  uint64         `json:"revision"`
}

type nodePodsRequest struct {
	Name string `json:"name,omitempty"` // podget
}

// IsNodeUser reports whether the connection is a kubelet's (or the
// hollow nodes'): it reads its pods through the node API, not the bucket.
func (c *Conn) IsNodeUser() bool { return c.relayEvents() }

// publishNodePods pushes the change old → obj to the nodes whose view it
// changes. It is the handler of the apiserver's pod cache, so pushes leave
// in the order the cache changed.
type nodePodsPublisher struct {
	c   *Conn
	log *slog.Logger
}

func (p nodePodsPublisher) handler() Handler[*schemas.Pod] {
	return HandlerFuncs[*schemas.Pod]{
		Add: func(obj *schemas.Pod) {
			if obj.NodeName != "" {
				p.publish(obj.NodeName, nodePodsPush{Name: obj.Name, ResourceVersion: obj.ResourceVersion, Pod: obj})
			}
		},
		Update: func(old, obj *schemas.Pod) {
			if old == obj {
				return // a resync: the kubelets relist on their own
			}
			if old.NodeName != "" && old.NodeName != obj.NodeName {
				p.publish(old.NodeName, nodePodsPush{Name: obj.Name, ResourceVersion: obj.ResourceVersion, Gone: true})
			}
			if obj.NodeName != "" {
				p.publish(obj.NodeName, nodePodsPush{Name: obj.Name, ResourceVersion: obj.ResourceVersion, Pod: obj})
			}
		},
		Delete: func(old *schemas.Pod) {
			// The delete's own revision is not known here; any revision
			// above the last version seen orders it after that version.
			if old.NodeName != "" {
				p.publish(old.NodeName, nodePodsPush{Name: old.Name, ResourceVersion: old.ResourceVersion + 1, Gone: true})
			}
		},
	}
}

func (p nodePodsPublisher) publish(node string, m nodePodsPush) {
	data, err := schemas.Marshal(&m)
	if err == nil {
		err = p.c.nc.Publish(NodeSubject(SubjNodePods, node), data)
	}
	if err != nil {
		// A hint: the node's next relist repairs it.
		p.log.Debug("push node pod", "node", node, "pod", m.Name, "err", err)
	}
}

// servePods answers a node's list from the cache.
func (s *nodeAPIServer) servePods(node string) nodePodsReply {
	select {
	case <-s.pods.Synced():
	default:
		return nodePodsReply{Code: nodeCodeInternal, Error: "the apiserver's pod cache is not loaded yet"}
	}
	// The revision first: every pod in the index afterwards is at least
	// that current.
	r := nodePodsReply{Revision: s.pods.Revision()}
	for _, p := range s.pods.ByIndex(PodsByNode, node) {
		r.Pods = append(r.Pods, p)
		r.Revisions = append(r.Revisions, p.ResourceVersion)
	}
	return r
}

// podGet reads one pod of node from KV: the kubelet's fresh read before a
// delete or a status write without a cached copy.
func (s *nodeAPIServer) podGet(ctx context.Context, node string, data []byte) nodeAPIReply {
	var req nodePodsRequest
	if err := schemas.Unmarshal(data, &req); err != nil {
		return failReply(nodeCodeInvalid, "malformed pod get request: %v", err)
	}
	cur, fail := s.readPod(ctx, req.Name)
	if fail != nil {
		return *fail
	}
	if cur.NodeName != node {
		// Nothing of it: not even where it runs.
		return failReply(nodeCodeForbidden, "pod %s is not bound to node %s: a kubelet reads only its own node's pods", req.Name, node)
	}
	return nodeAPIReply{Pod: cur}
}

// GetNodePod reads pod name as node's kubelet: through the node API for a
// node's credentials (which may not read the bucket), else from KV. A pod
// bound to another node is ErrForbidden through the node API.
func (c *Conn) GetNodePod(ctx context.Context, node, name string) (*schemas.Pod, error) {
	if c.Pods != nil && !c.IsNodeUser() {
		return c.Pods.Get(ctx, name)
	}
	r, err := c.nodeRequest(ctx, node, nodeOpPodGet, &nodePodsRequest{Name: name})
	if err != nil {
		return nil, err
	}
	if r.Pod == nil {
		return nil, fmt.Errorf("node API %s: reply without a pod", nodeOpPodGet)
	}
	return r.Pod, nil
}

// ListNodePods is node's view now, and the revision of the pods bucket it
// reflects.
func (c *Conn) ListNodePods(ctx context.Context, node string) ([]*schemas.Pod, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, nodeAPITimeout)
	defer cancel()
	m, err := c.nc.RequestWithContext(ctx, NodeAPISubject(node, nodeOpPods), nil)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, 0, fmt.Errorf("list pods of %s: no apiserver answers: %w", node, err)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("list pods of %s: %w", node, err)
	}
	var r nodePodsReply
	if err := schemas.Unmarshal(m.Data, &r); err != nil {
		return nil, 0, fmt.Errorf("list pods of %s: reply: %w", node, err)
	}
	if r.Code != nodeCodeOK {
		return nil, 0, fmt.Errorf("list pods of %s: %s: %s", node, r.Code, r.Error)
	}
	if len(r.Revisions) != len(r.Pods) {
		return nil, 0, fmt.Errorf("list pods of %s: %d revisions for %d pods", node, len(r.Revisions), len(r.Pods))
	}
	out := r.Pods[:0]
	for k, p := range r.Pods {
		// The server's index, but a pod of another node must never get
		// into this node's view.
		if p == nil || p.NodeName != node || schemas.ValidateName("name", p.Name, schemas.MaxNameLength) != nil {
			continue
		}
		p.ResourceVersion = r.Revisions[k]
		out = append(out, p)
	}
	return out, r.Revision, nil
}

// NewNodePodsInformer is an informer over the pods bound to nodes (one for
// a kubelet; a hollow group's many), fed by the node API instead of a
// watch of the pods bucket. Its handlers hear a pod that left the view
// (deleted, or bound elsewhere) as deleted. WaitCurrent and ListConsistent
// are not available on it.
func NewNodePodsInformer(conn *Conn, nodes []string, resync time.Duration, log *slog.Logger) *Informer[schemas.Pod, *schemas.Pod] {
	inf := newInformer[schemas.Pod](conn, "nodepods", resync, log)
	inf.push = &nodePodsSource{c: conn, nodes: nodes}
	return inf
}

// nodePodsSource is the pushSource of NewNodePodsInformer.
type nodePodsSource struct {
	c     *Conn
	nodes []string

	mu   sync.Mutex
	subs []*nats.Subscription
}

// listParallel bounds the lists in flight of a source of many nodes.
const listParallel = 16

func (s *nodePodsSource) subscribe(fn func(pushed[*schemas.Pod])) (func(), error) {
	var subs []*nats.Subscription
	stop := func() {
		for _, sub := range subs {
			_ = sub.Unsubscribe()
		}
	}
	for _, node := range s.nodes {
		sub, err := s.c.nc.Subscribe(NodeSubject(SubjNodePods, node), func(m *nats.Msg) {
			var p nodePodsPush
			if err := schemas.Unmarshal(m.Data, &p); err != nil || p.Name == "" {
				s.c.log.Warn("dropping malformed node pod push", "subject", m.Subject, "bytes", len(m.Data))
				return
			}
			if p.Gone || p.Pod == nil {
				fn(pushed[*schemas.Pod]{name: p.Name, rev: p.ResourceVersion})
				return
			}
			if p.Pod.Name != p.Name || p.Pod.NodeName != node {
				return
			}
			p.Pod.ResourceVersion = p.ResourceVersion
			fn(pushed[*schemas.Pod]{name: p.Name, rev: p.ResourceVersion, obj: p.Pod})
		})
		if err != nil {
			stop()
			return nil, fmt.Errorf("subscribe to the pods of %s: %w", node, err)
		}
		// The server keeps a slow subscriber's messages rather than
		// dropping them; dropped ones are noticed (dropped) and relisted.
		_ = sub.SetPendingLimits(-1, 256<<20)
		subs = append(subs, sub)
	}
	// The server must know of the subscriptions before the list is taken,
	// or a change between the two would be lost until the next relist.
	if err := s.c.nc.FlushTimeout(nodeAPITimeout); err != nil {
		stop()
		return nil, fmt.Errorf("subscribe to node pods: %w", err)
	}
	s.mu.Lock()
	s.subs = subs
	s.mu.Unlock()
	return stop, nil
}

// dropped counts the pushes the subscriptions lost.
func (s *nodePodsSource) dropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sub := range s.subs {
		if d, err := sub.Dropped(); err == nil {
			n += d
		}
	}
	return n
}

func (s *nodePodsSource) list(ctx context.Context) ([]*schemas.Pod, uint64, error) {
	var (
		mu   sync.Mutex
		out  []*schemas.Pod
		rev  uint64
		have bool
		errs []error
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, listParallel)
	for _, node := range s.nodes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			pods, r, err := s.c.ListNodePods(ctx, node)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			out = append(out, pods...)
			// The lists were taken at different moments: the view is
			// complete only up to the oldest.
			if !have || r < rev {
				rev, have = r, true
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, 0, errors.Join(errs...)
	}
	return out, rev, nil
}
