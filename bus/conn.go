package bus

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniku/miniku/schemas"
)

// Options configure a connection.
type Options struct {
	// URL of the NATS server or cluster (comma-separated); ignored when
	// InProcess is set.
	URL string
	// InProcess connects to an embedded server without a socket.
	InProcess *server.Server
	// Name shows in the server's connection list (component name).
	Name string
	// Replicas for buckets this connection creates: 1 on one machine, 3 on
	// a NATS cluster. Existing buckets keep theirs when they have more.
	Replicas int
	Logger   *slog.Logger
	// User and Password log in to a server that requires it (auth.go).
	User, Password string
	// TLSCA is a PEM file of the CA that signed the server's certificate;
	// set it for a server using TLS.
	TLSCA string
	// Bind uses the buckets and streams as they are and waits for them to
	// exist, instead of creating them: for users that may not (kubelets).
	Bind bool
	// SecretsKey encrypts the secrets bucket's values (bus/encrypt). Only
	// the apiserver's connection has one, and only a connection with one
	// has Conn.Secrets: no other NATS user may touch that bucket.
	SecretsKey Sealer
	// NoReconnectBuffer fails publishes (hence every KV read and write)
	// at once while the connection is down, instead of buffering them
	// until it is back: for the apiserver, which would otherwise answer
	// 503 after its request timeout for a write the buffer then applies
	// when NATS returns.
	NoReconnectBuffer bool
}

// PingInterval and MaxPingsOut bound how long a connection stays on a
// silent server: about 6 s.
const (
	PingInterval = 2 * time.Second
	MaxPingsOut  = 2
)

// Conn is a NATS connection with JetStream and the MiniKu buckets.
type Conn struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	log *slog.Logger
	// bind: never create buckets or streams (Options.Bind).
	bind bool
	// user is Options.User: a kubelet's writes go through the node API.
	user string

	mu sync.Mutex
	// reconnected is closed and replaced at every reconnect, so any number
	// of watchers can wait for "the connection came back" without a
	// registration API.
	reconnected chan struct{}

	events jetstream.Stream
	// secretsKey is Options.SecretsKey.
	secretsKey Sealer
	// compactables are the object buckets, for the compactor.
	compactables []compactable
	// replicas of the buckets this connection creates (leases too).
	replicas int

	// Pods is nil on a kubelet's connection (IsNodeUser): it reads its
	// own pods through the node API (NewNodePodsInformer, GetNodePod).
	Pods        *Bucket[schemas.Pod, *schemas.Pod]
	ReplicaSets *Bucket[schemas.ReplicaSet, *schemas.ReplicaSet]
	Nodes       *Bucket[schemas.Node, *schemas.Node]

	ConfigMaps      *Bucket[schemas.ConfigMap, *schemas.ConfigMap]
	ServiceAccounts *Bucket[schemas.ServiceAccount, *schemas.ServiceAccount]
	// Secrets is nil unless Options.SecretsKey is set.
	Secrets    *Bucket[schemas.Secret, *schemas.Secret]
	Namespaces *Bucket[schemas.Namespace, *schemas.Namespace]
}

// Connect dials NATS, retrying until ctx ends, and makes sure the buckets
// exist. It never gives up on a dropped connection afterwards: components
// must outlive a NATS restart.
func Connect(ctx context.Context, o Options) (*Conn, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	c := &Conn{log: log, bind: o.Bind, user: o.User, reconnected: make(chan struct{})}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		// A server that goes silent (a partition, a hung host) is noticed
		// after PingInterval × (MaxPingsOut+1), not the library's 2
		// minutes × 2, and the client moves to another server.
		nats.PingInterval(PingInterval),
		nats.MaxPingsOutstanding(MaxPingsOut),
		// A stalled server must not block publishers forever.
		nats.Timeout(5 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
			c.notifyReconnect()
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("nats async error", "subject", subj, "err", err)
		}),
	}
	if o.NoReconnectBuffer {
		opts = append(opts, nats.ReconnectBufSize(-1))
	}
	opts = append(opts, o.securityOptions()...)
	opts = append(opts, nats.ReconnectErrHandler(connectFailed(log, o.TLSCA)))
	url := o.URL
	if o.InProcess != nil {
		opts = append(opts, nats.InProcessServer(o.InProcess))
		url = ""
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", url, err)
	}
	c.nc = nc
	if err := c.waitConnected(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("connect to nats %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	c.js = js
	replicas := max(o.Replicas, 1)
	c.replicas = replicas
	if err := c.ensureBuckets(ctx, replicas, o.SecretsKey); err != nil {
		nc.Close()
		return nil, err
	}
	if err := c.ensureEventStream(ctx, replicas); err != nil {
		nc.Close()
		return nil, fmt.Errorf("create stream %s: %w", StreamEvents, err)
	}
	if !c.bind {
		for _, s := range kvStreams(c.objectBuckets()...) {
			// Retried like the buckets: on a cluster a server's death
			// leaves the stream without a leader for a few seconds, and
			// a component starting then must wait, not fail.
			if err := retry(ctx, func() error { return c.limitConsumers(ctx, s) }); err != nil {
				nc.Close()
				return nil, err
			}
		}
	}
	return c, nil
}

// connectFailed logs why (re)connecting fails, at most every 10 s, with
// what to do about the TLS failures a missing or wrong CA causes: the
// client retries forever, so nothing else would say it.
func connectFailed(log *slog.Logger, ca string) nats.ConnErrHandler {
	var last atomic.Int64
	return func(_ *nats.Conn, err error) {
		now := time.Now().UnixNano()
		if l := last.Load(); (l != 0 && now-l < int64(10*time.Second)) || !last.CompareAndSwap(l, now) {
			return
		}
		var unknownCA x509.UnknownAuthorityError
		var hostErr x509.HostnameError
		switch {
		case errors.As(err, &unknownCA) || errors.As(err, &hostErr):
			hint := "pass the NATS server's CA with --nats-ca (<its data dir>/tls/ca.crt)"
			if ca != "" {
				hint = fmt.Sprintf("the CA %s did not sign the server's certificate, or not for this address; pass the server's <data dir>/tls/ca.crt with --nats-ca", ca)
			}
			log.Warn("nats TLS failed, retrying", "err", err, "hint", hint)
		case errors.Is(err, nats.ErrSecureConnWanted):
			// A CA means TLS only: the password must not go out in clear.
			log.Warn("nats server does not offer TLS, retrying", "err", err, "hint", "run the server with TLS (miniku up and miniku nats do by default), or drop --nats-ca to connect without it")
		default:
			log.Warn("nats connect failed, retrying", "err", err)
		}
	}
}

func (c *Conn) waitConnected(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !c.nc.IsConnected() {
		if c.nc.IsClosed() {
			// The client gave up, e.g. after repeated authorization
			// violations without credentials.
			if err := c.nc.LastError(); err != nil {
				return fmt.Errorf("connection closed: %w", err)
			}
			return errors.New("connection closed")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the server: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// objectBuckets are the buckets of objects this connection uses
// (schemas.Stores): the private ones (secrets) only with a key.
func (c *Conn) objectBuckets() []string {
	return schemas.StoreBuckets(func(s schemas.Store) bool { return s.Objects && (!s.Private || c.secretsKey != nil) })
}

// attach sets the typed field of object bucket name; a bucket of the
// table without one is a programming error, reported at Connect.
func (c *Conn) attach(name string, kv jetstream.KeyValue) (compactable, error) {
	switch name {
	case BucketPods:
		c.Pods = newBucket[schemas.Pod](kv, c.js)
		return c.Pods, nil
	case BucketReplicaSets:
		c.ReplicaSets = newBucket[schemas.ReplicaSet](kv, c.js)
		return c.ReplicaSets, nil
	case BucketNodes:
		c.Nodes = newBucket[schemas.Node](kv, c.js)
		return c.Nodes, nil
	case BucketNamespaces:
		c.Namespaces = newBucket[schemas.Namespace](kv, c.js)
		return c.Namespaces, nil
	case BucketConfigMaps:
		c.ConfigMaps = newBucket[schemas.ConfigMap](kv, c.js)
		return c.ConfigMaps, nil
	case BucketServiceAccounts:
		c.ServiceAccounts = newBucket[schemas.ServiceAccount](kv, c.js)
		return c.ServiceAccounts, nil
	case BucketSecrets:
		c.Secrets = sealedBucket[schemas.Secret](kv, c.js, c.secretsKey)
		return c.Secrets, nil
	}
	return nil, fmt.Errorf("bus: bucket %s of schemas.Stores has no field on Conn", name)
}

func (c *Conn) ensureBuckets(ctx context.Context, replicas int, secretsKey Sealer) error {
	c.secretsKey = secretsKey
	c.compactables = nil
	for _, name := range c.objectBuckets() {
		if name == BucketPods && c.IsNodeUser() {
			// A node's credentials may not read the pods bucket; its
			// pods come through the node API (nodepods.go).
			continue
		}
		var kv jetstream.KeyValue
		// The server may still be electing JetStream leaders right after a
		// start; retry for as long as the caller lets us.
		err := retry(ctx, func() error {
			var err error
			kv, err = c.keyValue(ctx, jetstream.KeyValueConfig{
				Bucket:   name,
				History:  1,
				Storage:  jetstream.FileStorage,
				Replicas: replicas,
				// Updating the bucket must not forget its compaction.
				Metadata: c.keptMetadata(ctx, name),
			})
			return err
		})
		if err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
		b, err := c.attach(name, kv)
		if err != nil {
			return err
		}
		c.compactables = append(c.compactables, b)
	}
	return nil
}

// keptMetadata is the metadata of an existing bucket that its re-creation
// (an update of its stream) must carry over: the compacted revision, below
// which watches may not resume (compact.go).
func (c *Conn) keptMetadata(ctx context.Context, name string) map[string]string {
	if c.bind {
		return nil
	}
	kv, err := c.js.KeyValue(ctx, name)
	if err != nil {
		return nil // a new bucket (or the next attempt will tell)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil
	}
	if v, ok := st.Metadata()[compactedKey]; ok {
		return map[string]string{compactedKey: v}
	}
	return nil
}

func retry(ctx context.Context, f func() error) error {
	delay := 50 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*2, time.Second)
	}
}

func (c *Conn) notifyReconnect() {
	c.mu.Lock()
	close(c.reconnected)
	c.reconnected = make(chan struct{})
	c.mu.Unlock()
}

// Reconnected returns a channel closed at the next reconnect.
func (c *Conn) Reconnected() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reconnected
}

// NATS exposes the raw connection for request/reply and tests.
func (c *Conn) NATS() *nats.Conn { return c.nc }

// Close drains nothing: state lives in KV, so pending hints may be dropped.
func (c *Conn) Close() { c.nc.Close() }

// Publish sends ev on subject. Events are hints, so a failure is logged by
// the caller at most; it never fails an operation whose KV write succeeded.
func (c *Conn) Publish(subject string, ev schemas.Event) error {
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	data, err := schemas.Marshal(&ev)
	if err != nil {
		return err
	}
	if err := c.nc.Publish(subject, data); err != nil {
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	return nil
}

// Subscription is an event subscription; Unsubscribe ends it.
type Subscription interface{ Unsubscribe() error }

// Subscribe calls fn for every event on subject (wildcards allowed). A
// message that does not decode is logged and dropped: one bad publisher must
// not stop a component.
func (c *Conn) Subscribe(subject string, fn func(subject string, ev schemas.Event)) (Subscription, error) {
	sub, err := c.nc.Subscribe(subject, func(m *nats.Msg) {
		var ev schemas.Event
		if err := schemas.Unmarshal(m.Data, &ev); err != nil {
			c.log.Warn("dropping malformed event", "subject", m.Subject, "bytes", len(m.Data), "err", err)
			return
		}
		fn(m.Subject, ev)
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", subject, err)
	}
	return sub, nil
}
