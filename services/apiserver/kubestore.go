package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/apiserver/kube"
)

// kubeStore is the Kubernetes API's view of the buckets and caches the
// seed API serves: one object, two views. Lists and watches come from the
// same informers (and their history) as the seed's; pod deletes go
// through the one graceful delete.
type kubeStore struct {
	s       *Server
	buckets map[string]kubeBucket // by resource
}

var _ kube.Store = (*kubeStore)(nil)

// kubeBucket is one bucket with its cache, untyped for the generic handler.
type kubeBucket interface {
	get(ctx context.Context, name string) (kube.Object, error)
	list(ctx context.Context) ([]kube.Object, uint64, error)
	create(ctx context.Context, obj kube.Object) error
	// update writes obj, then removes it if that took its last finalizer
	// (gone).
	update(ctx context.Context, obj kube.Object) (gone bool, err error)
	remove(ctx context.Context, name string, want uint64, policy metav1.DeletionPropagation) (kube.Object, error)
	watch(ctx context.Context, from uint64) (*kube.Watch, error)
}

type typedBucket[T any, P bus.Object[T]] struct {
	b   *bus.Bucket[T, P]
	inf *bus.Informer[T, P]
}

func (t typedBucket[T, P]) typed(obj kube.Object) (P, error) {
	p, ok := obj.(P)
	if !ok {
		return nil, fmt.Errorf("%s: object is %T", t.b.Name(), obj)
	}
	return p, nil
}

func (t typedBucket[T, P]) get(ctx context.Context, name string) (kube.Object, error) {
	// A read after anyone's acknowledged write must see it: the bucket's
	// leader, not the cache nor a follower (a GET is one KV read).
	p, err := t.b.GetCurrent(ctx, name)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (t typedBucket[T, P]) list(ctx context.Context) ([]kube.Object, uint64, error) {
	var objs []P
	var rev uint64
	if err := cacheCaughtUp(ctx, t.inf, 0); err == nil {
		objs, rev = t.inf.List(), t.inf.Revision()
	} else {
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		if rev, err = t.b.Revision(ctx); err != nil {
			return nil, 0, err
		}
		if objs, err = t.b.List(ctx); err != nil {
			return nil, 0, err
		}
	}
	out := make([]kube.Object, len(objs))
	for i, o := range objs {
		out[i] = o
		rev = max(rev, o.GetMeta().ResourceVersion)
	}
	return out, rev, nil
}

func (t typedBucket[T, P]) create(ctx context.Context, obj kube.Object) error {
	p, err := t.typed(obj)
	if err != nil {
		return err
	}
	return t.b.Create(ctx, p)
}

func (t typedBucket[T, P]) update(ctx context.Context, obj kube.Object) (bool, error) {
	p, err := t.typed(obj)
	if err != nil {
		return false, err
	}
	if err := t.b.Update(ctx, p); err != nil {
		return false, err
	}
	return removeFinalized(ctx, t.b, p)
}

func (t typedBucket[T, P]) remove(ctx context.Context, name string, want uint64, policy metav1.DeletionPropagation) (kube.Object, error) {
	p, _, err := deleteObject(ctx, t.b, t.b.Name(), name, want, policy, time.Now)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (t typedBucket[T, P]) watch(ctx context.Context, from uint64) (*kube.Watch, error) {
	if !t.inf.HasHistory() {
		return nil, fmt.Errorf("watch %s: the cache keeps no history", t.b.Name())
	}
	// Right after a start the cache may still be taking its snapshot.
	sctx, cancel := context.WithTimeout(ctx, cacheWait)
	_ = t.inf.WaitSynced(sctx)
	cancel()
	if err := cacheCaughtUp(ctx, t.inf, from); err != nil {
		if from != 0 && t.inf.Revision() < from {
			return nil, fmt.Errorf("%w: %d, current: %d", kube.ErrTooLarge, from, t.inf.Revision())
		}
		return nil, fmt.Errorf("watch %s: %w", t.b.Name(), err)
	}
	snap, rev, feed, err := t.inf.WatchChanges(from, watchFeedBuffer)
	if errors.Is(err, bus.ErrNoHistory) && from != 0 {
		return nil, fmt.Errorf("%w: %d", kube.ErrExpired, from)
	}
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", t.b.Name(), err)
	}
	c := make(chan kube.Change)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(c)
		for {
			select {
			case <-wctx.Done():
				return
			case ch, ok := <-feed.C:
				if !ok {
					return
				}
				kc := kube.Change{Rev: ch.Rev, Name: ch.Name}
				if ch.Obj != nil {
					kc.Obj = ch.Obj
				}
				if ch.Prev != nil {
					kc.Prev = ch.Prev
				}
				select {
				case c <- kc:
				case <-wctx.Done():
					return
				}
			}
		}
	}()
	out := &kube.Watch{Rev: rev, C: c, Stop: func() { cancel(); feed.Close(); <-done }}
	for _, o := range snap {
		out.Snapshot = append(out.Snapshot, o)
	}
	return out, nil
}

func (s *Server) newKubeStore() *kubeStore {
	k := &kubeStore{s: s, buckets: map[string]kubeBucket{
		"pods":            typedBucket[schemas.Pod, *schemas.Pod]{s.conn.Pods, s.pods},
		"replicasets":     typedBucket[schemas.ReplicaSet, *schemas.ReplicaSet]{s.conn.ReplicaSets, s.rss},
		"nodes":           typedBucket[schemas.Node, *schemas.Node]{s.conn.Nodes, s.nodes},
		"namespaces":      typedBucket[schemas.Namespace, *schemas.Namespace]{s.conn.Namespaces, s.namespaces},
		"configmaps":      typedBucket[schemas.ConfigMap, *schemas.ConfigMap]{s.conn.ConfigMaps, s.configMaps},
		"serviceaccounts": typedBucket[schemas.ServiceAccount, *schemas.ServiceAccount]{s.conn.ServiceAccounts, s.serviceAccounts},
		"secrets":         noSecretsKey{},
		"events":          eventsBucket{s},
	}}
	if s.conn.Secrets != nil {
		k.buckets["secrets"] = typedBucket[schemas.Secret, *schemas.Secret]{s.conn.Secrets, s.secrets}
	}
	return k
}

// noSecretsKey stands for the secrets bucket on a connection opened
// without the key that encrypts it: every request is refused with a 503
// that says why, rather than a store error or a panic on the nil bucket.
type noSecretsKey struct{}

func (noSecretsKey) err() error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusServiceUnavailable,
		Reason:  metav1.StatusReasonServiceUnavailable,
		Message: "secrets are not served: this apiserver has no secrets key (its NATS connection was opened without one), so it cannot read or write the encrypted secrets bucket"}}
}

func (n noSecretsKey) get(context.Context, string) (kube.Object, error) { return nil, n.err() }
func (n noSecretsKey) list(context.Context) ([]kube.Object, uint64, error) {
	return nil, 0, n.err()
}
func (n noSecretsKey) create(context.Context, kube.Object) error         { return n.err() }
func (n noSecretsKey) update(context.Context, kube.Object) (bool, error) { return false, n.err() }
func (n noSecretsKey) remove(context.Context, string, uint64, metav1.DeletionPropagation) (kube.Object, error) {
	return nil, n.err()
}
func (n noSecretsKey) watch(context.Context, uint64) (*kube.Watch, error) { return nil, n.err() }

func (k *kubeStore) bucket(resource string) (kubeBucket, error) {
	b, ok := k.buckets[resource]
	if !ok {
		// Declared but not served yet.
		return nil, &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusNotImplemented,
			Reason: metav1.StatusReasonMethodNotAllowed, Message: resource + " are not served on the Kubernetes API by MiniKu yet"}}
	}
	return b, nil
}

var _ kube.Availability = (*kubeStore)(nil)

func (k *kubeStore) Available(resource string) error {
	if qe := k.s.storeUnavailable(resource); qe != nil {
		return quorumStatus(qe)
	}
	return nil
}

// guard refuses a request for resource while its bucket has no quorum
// (quorum.go), and otherwise gives it a context that the loss of the
// quorum ends; done maps the request's error, cut off or not.
func (k *kubeStore) guard(ctx context.Context, resource string) (_ context.Context, done func(error) error, _ error) {
	if qe := k.s.storeUnavailable(resource); qe != nil {
		return ctx, nil, quorumStatus(qe)
	}
	gctx, stop := k.s.untilLost(ctx, resource)
	return gctx, func(err error) error {
		defer stop()
		if qe := k.s.lostErr(gctx, resource, err); qe != nil {
			return quorumStatus(qe)
		}
		return err
	}, nil
}

func (k *kubeStore) Get(ctx context.Context, resource, name string) (kube.Object, error) {
	b, err := k.bucket(resource)
	if err != nil {
		return nil, err
	}
	ctx, done, err := k.guard(ctx, resource)
	if err != nil {
		return nil, err
	}
	o, err := b.get(ctx, name)
	return o, done(kubeErr(err))
}

func (k *kubeStore) List(ctx context.Context, resource string) ([]kube.Object, uint64, error) {
	b, err := k.bucket(resource)
	if err != nil {
		return nil, 0, err
	}
	ctx, done, err := k.guard(ctx, resource)
	if err != nil {
		return nil, 0, err
	}
	objs, rev, err := b.list(ctx)
	return objs, rev, done(kubeErr(err))
}

func (k *kubeStore) Create(ctx context.Context, resource string, obj kube.Object) (err error) {
	b, err := k.bucket(resource)
	if err != nil {
		return err
	}
	ctx, done, err := k.guard(ctx, resource)
	if err != nil {
		return err
	}
	defer func() { err = done(err) }()
	if p, ok := obj.(*schemas.Pod); ok {
		if err := p.CheckPodSecurity(k.s.cfg.PodSecurity); err != nil {
			return apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, p.Name, err)
		}
	}
	if rs, ok := obj.(*schemas.ReplicaSet); ok {
		if err := rs.CheckPodSecurity(k.s.cfg.PodSecurity); err != nil {
			return apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "replicasets"}, rs.Name, err)
		}
	}
	if err := b.create(ctx, obj); err != nil {
		return kubeErr(err)
	}
	k.published(obj, "created", nil)
	return nil
}

func (k *kubeStore) Update(ctx context.Context, resource string, obj kube.Object) (err error) {
	b, err := k.bucket(resource)
	if err != nil {
		return err
	}
	ctx, done, err := k.guard(ctx, resource)
	if err != nil {
		return err
	}
	defer func() { err = done(err) }()
	var oldNode string
	var oldCount int
	if p, ok := obj.(*schemas.Pod); ok {
		if cur, ok := k.s.pods.Get(p.Name); ok {
			oldNode = cur.NodeName
		}
	}
	if rs, ok := obj.(*schemas.ReplicaSet); ok {
		if cur, ok := k.s.rss.Get(rs.Name); ok {
			oldCount = cur.DesiredCount
		}
	}
	gone, err := b.update(ctx, obj)
	if err != nil {
		return kubeErr(err)
	}
	if gone {
		k.removed(obj)
		return nil
	}
	k.published(obj, "updated", &hintsBefore{node: oldNode, desired: oldCount})
	return nil
}

type hintsBefore struct {
	node    string
	desired int
}

// published sends the hints the seed API sends for the same write, so
// the scheduler, controller and kubelets react as fast.
func (k *kubeStore) published(obj kube.Object, what string, before *hintsBefore) {
	s := k.s
	switch o := obj.(type) {
	case *schemas.Pod:
		if what == "created" {
			s.publish(bus.SubjPodCreated, schemas.Event{Type: "created", Kind: schemas.KindPod, Name: o.Name, Node: o.NodeName, Revision: o.ResourceVersion})
		}
		if o.NodeName != "" && (before == nil || before.node == "") {
			s.publish(bus.NodeSubject(bus.SubjPodAssigned, o.NodeName),
				schemas.Event{Type: "assigned", Kind: schemas.KindPod, Name: o.Name, Node: o.NodeName, Revision: o.ResourceVersion})
		}
	case *schemas.ReplicaSet:
		if what == "created" {
			s.publish(bus.SubjReplicaSetCreated, schemas.Event{Type: "created", Kind: schemas.KindReplicaSet, Name: o.Name, Revision: o.ResourceVersion})
			return
		}
		s.publish(bus.SubjReplicaSetUpdated, schemas.Event{Type: "updated", Kind: schemas.KindReplicaSet, Name: o.Name, Revision: o.ResourceVersion})
		if before != nil && before.desired != o.DesiredCount {
			s.publish(bus.SubjReplicaSetScaled, schemas.Event{Type: "scaled", Kind: schemas.KindReplicaSet, Name: o.Name, Revision: o.ResourceVersion})
		}
	}
}

// removed sends the hints of a removal.
func (k *kubeStore) removed(obj kube.Object) {
	m := obj.GetMeta()
	switch o := obj.(type) {
	case *schemas.Pod:
		k.s.publish(bus.SubjPodDeleted, schemas.Event{Type: "deleted", Kind: schemas.KindPod, Name: m.Name, Node: o.NodeName, Revision: m.ResourceVersion})
	case *schemas.ReplicaSet:
		k.s.publish(bus.SubjReplicaSetDeleted, schemas.Event{Type: "deleted", Kind: schemas.KindReplicaSet, Name: m.Name, Revision: m.ResourceVersion})
	}
}

func (k *kubeStore) Delete(ctx context.Context, resource, name string, want uint64, grace *int64, policy metav1.DeletionPropagation) (_ kube.Object, err error) {
	ctx, done, err := k.guard(ctx, resource)
	if err != nil {
		return nil, err
	}
	defer func() { err = done(err) }()
	switch resource {
	case "pods":
		p, err := k.s.deletePodGracefully(ctx, name, want, grace, policy)
		if err != nil {
			return nil, kubeErr(err)
		}
		return p, nil
	case "namespaces":
		for _, b := range kube.BuiltinNamespaces {
			if name == b {
				return nil, apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, name, errors.New("this namespace may not be deleted"))
			}
		}
	}
	b, err := k.bucket(resource)
	if err != nil {
		return nil, err
	}
	o, err := b.remove(ctx, name, want, policy)
	if err != nil {
		return nil, kubeErr(err)
	}
	if o.GetMeta().DeletionTimestamp == nil {
		k.removed(o)
	}
	return o, nil
}

func (k *kubeStore) Bind(ctx context.Context, name, node string) (_ kube.Object, err error) {
	ctx, done, err := k.guard(ctx, bus.BucketPods)
	if err != nil {
		return nil, err
	}
	defer func() { err = done(err) }()
	cur, err := k.s.conn.Pods.Get(ctx, name)
	if err != nil {
		return nil, kubeErr(err)
	}
	p, err := k.s.reg.Pods.Bind(ctx, cur, node)
	if err != nil {
		return nil, kubeErr(err)
	}
	k.published(p, "bound", nil)
	return p, nil
}

func (k *kubeStore) Watch(ctx context.Context, resource string, from uint64) (*kube.Watch, error) {
	b, err := k.bucket(resource)
	if err != nil {
		return nil, err
	}
	if qe := k.s.storeUnavailable(resource); qe != nil {
		return nil, quorumStatus(qe)
	}
	// The watch ends when its bucket loses the quorum: the client
	// re-watches or re-lists and is told why, instead of waiting on a
	// watch that went silent.
	ctx, stop := k.s.untilLost(ctx, resource)
	w, err := b.watch(ctx, from)
	if err != nil {
		stop()
		if qe := k.s.lostErr(ctx, resource, err); qe != nil {
			return nil, quorumStatus(qe)
		}
		return nil, kubeErr(err)
	}
	inner := w.Stop
	w.Stop = func() { stop(); inner() }
	return w, nil
}

// kubeErr turns the seed's client errors into what the Kubernetes
// handler maps (bus errors, or a Status with the same code).
func kubeErr(err error) error {
	ae, ok := isAPIError(err)
	if !ok {
		if err != nil && unavailable(err) {
			// As the seed API answers it: the store, not the server, failed.
			se := apierrors.NewServiceUnavailable("state store unavailable, retry later: " + err.Error())
			se.ErrStatus.Details = &metav1.StatusDetails{RetryAfterSeconds: defaultRetryAfter}
			return se
		}
		return err
	}
	switch ae.status {
	case http.StatusNotFound:
		return fmt.Errorf("%s: %w", ae.msg, bus.ErrNotFound)
	case http.StatusConflict:
		return fmt.Errorf("%s: %w", ae.msg, bus.ErrConflict)
	}
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: int32(ae.status),
		Reason: metav1.StatusReason(ae.reason), Message: ae.msg}}
}

// ensureNamespaces creates the built-in namespaces if absent (CAS
// create: every apiserver may try, one wins).
func (s *Server) ensureNamespaces(ctx context.Context) error {
	def, ok := kindsNamespace()
	for _, name := range kube.BuiltinNamespaces {
		ns := &schemas.Namespace{ObjectMeta: schemas.ObjectMeta{Name: name}}
		if ok {
			def.PrepareForCreate(ns, s.now().UTC())
		} else {
			ns.UID, ns.CreatedAt, ns.Phase = newUID(), s.now().UTC(), schemas.NamespaceActive
		}
		err := s.conn.Namespaces.Create(ctx, ns)
		if err != nil && !errors.Is(err, bus.ErrAlreadyExists) {
			return fmt.Errorf("create namespace %s: %w", name, err)
		}
	}
	return nil
}

// namespaceRetry is how long Run keeps trying to create the built-in
// namespaces while the store comes up.
const namespaceRetry = 30 * time.Second
