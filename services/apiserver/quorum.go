package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/services/apiserver/quorum"
)

// The quorum gate. On a NATS cluster that lost its majority, the server
// the apiserver is connected to still answers reads from its replica
// (direct gets, and the informers' caches, which simply stop moving) and
// takes writes it cannot commit until a timeout. Kubernetes' choice for
// etcd is the model: without a quorum, refuse rather than serve data that
// may be behind acknowledged writes. Every read and write of a bucket the
// probe finds without quorum gets 503 at once, with Retry-After; writes in
// flight when it is noticed are cut off; open watches end, and clients
// re-list (and get the 503) rather than sit on a silent watch.

// eventsKey is the probe's name for the events stream.
const eventsKey = "events"

// natsSource is the probe's I/O over the apiserver's connection.
type natsSource struct {
	nc *nats.Conn
	js jetstream.JetStream
}

var _ quorum.Source = natsSource{}

func (n natsSource) Clustered() bool { return n.nc.ConnectedClusterName() != "" }

func (n natsSource) MetaLeader(ctx context.Context) error {
	_, err := n.js.AccountInfo(ctx)
	return err
}

func (n natsSource) StreamInfo(ctx context.Context, stream string) (*jetstream.StreamInfo, error) {
	s, err := n.js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	return s.CachedInfo(), nil
}

// newQuorumProbe probes every bucket the API serves, and the events stream.
func newQuorumProbe(s *Server) (*quorum.Probe, error) {
	js, err := jetstream.New(s.conn.NATS())
	if err != nil {
		return nil, fmt.Errorf("apiserver: jetstream for the store probe: %w", err)
	}
	streams := map[string]string{eventsKey: bus.StreamEvents}
	for _, b := range []string{s.conn.Pods.Name(), s.conn.ReplicaSets.Name(), s.conn.Nodes.Name(), s.conn.Namespaces.Name(),
		s.conn.ConfigMaps.Name(), s.conn.ServiceAccounts.Name()} {
		streams[b] = "KV_" + b
	}
	if s.conn.Secrets != nil {
		streams[s.conn.Secrets.Name()] = "KV_" + s.conn.Secrets.Name()
	}
	return quorum.NewProbe(natsSource{nc: s.conn.NATS(), js: js}, streams, s.log), nil
}

// errQuorumLost is the cause of a request context cut off by the probe.
var errQuorumLost = errors.New("store lost its quorum")

// storeUnavailable is nil when bucket may be read and written now, else
// the probe's reason.
func (s *Server) storeUnavailable(bucket string) *quorum.Error {
	var qe *quorum.Error
	if err := s.quorum.Check(bucket); errors.As(err, &qe) {
		return qe
	}
	return nil
}

// untilLost is ctx, ended with errQuorumLost as soon as bucket loses its
// quorum: a write sent just before the probe noticed does not wait for
// the full request timeout, and a watch ends.
func (s *Server) untilLost(ctx context.Context, bucket string) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	lost := s.quorum.Lost(bucket)
	if lost == nil {
		return ctx, func() { cancel(nil) }
	}
	go func() {
		select {
		case <-lost:
			cancel(errQuorumLost)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(nil) }
}

// lostErr replaces err by the probe's reason when ctx was cut off by it.
func (s *Server) lostErr(ctx context.Context, bucket string, err error) *quorum.Error {
	if err == nil || !errors.Is(context.Cause(ctx), errQuorumLost) {
		return nil
	}
	if qe := s.storeUnavailable(bucket); qe != nil {
		return qe
	}
	return &quorum.Error{Bucket: bucket, Reason: "the store lost its quorum while the request ran"}
}

func quorumMessage(qe *quorum.Error) string {
	return fmt.Sprintf("%v; reads and writes of %s are refused rather than served from a replica that may be behind, retry later", qe, qe.Bucket)
}

// quorumStatus is the Kubernetes API's answer: a Status as kube-apiserver
// sends when etcd cannot serve (503 ServiceUnavailable, Retry-After).
func quorumStatus(qe *quorum.Error) *apierrors.StatusError {
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusServiceUnavailable,
		Reason: metav1.StatusReasonServiceUnavailable, Message: quorumMessage(qe),
		Details: &metav1.StatusDetails{RetryAfterSeconds: quorum.RetryAfter}}}
}

// quorumAPIError is the seed API's answer: its usual error JSON.
func quorumAPIError(qe *quorum.Error) *apiError {
	return &apiError{status: http.StatusServiceUnavailable, reason: string(metav1.StatusReasonServiceUnavailable),
		retryAfter: quorum.RetryAfter, msg: quorumMessage(qe)}
}

// seedBuckets are the buckets a seed API path reads or writes.
func seedBuckets(first string) []string {
	switch first {
	case "pods":
		return []string{bus.BucketPods}
	case "replicasets":
		return []string{bus.BucketReplicaSets}
	case "nodes":
		// Node actions (drain) touch the node's pods too.
		return []string{bus.BucketNodes, bus.BucketPods}
	case "events":
		return []string{eventsKey}
	}
	return nil
}
