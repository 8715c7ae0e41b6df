package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// GetCurrent reads name as Get does, from the stream's leader rather than
// whichever replica answers first. Get is a direct get, which any replica
// of a clustered bucket serves (the client's own server's first): a
// follower applies a write only after the leader acknowledged it, so a
// read there right after someone's acknowledged write can return the
// value before it, a stale read (measured: the linearizability test of
// services/apiserver found such reads within seconds once its server was
// a follower). The leader has applied every write it acknowledged. One
// server alone is its own leader: Get.
func (b *Bucket[T, P]) GetCurrent(ctx context.Context, name string) (_ P, err error) {
	if b.js.Conn().ConnectedClusterName() == "" {
		return b.Get(ctx, name) // one server: its replica is the leader
	}
	defer b.observe("get", time.Now(), &err)
	e, err := b.leaderGet(ctx, name)
	if err != nil {
		return nil, b.mapErr("get", name, err)
	}
	return b.decode(e)
}

// msgGetResponse is JetStream's STREAM.MSG.GET answer.
type msgGetResponse struct {
	Error *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
	Message *struct {
		Subject string    `json:"subject"`
		Seq     uint64    `json:"seq"`
		Header  []byte    `json:"hdrs"`
		Data    []byte    `json:"data"`
		Time    time.Time `json:"time"`
	} `json:"message"`
}

func (b *Bucket[T, P]) leaderGet(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	req, err := json.Marshal(map[string]string{"last_by_subj": "$KV." + b.Name() + "." + key})
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	msg, err := b.js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+b.Name(), req)
	if err != nil {
		return nil, err
	}
	var resp msgGetResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, fmt.Errorf("decode message get reply: %w", err)
	}
	if resp.Error != nil {
		if resp.Error.ErrCode == int(jetstream.JSErrCodeMessageNotFound) {
			return nil, jetstream.ErrKeyNotFound
		}
		return nil, fmt.Errorf("message get: %s (code %d, err_code %d)", resp.Error.Description, resp.Error.Code, resp.Error.ErrCode)
	}
	if resp.Message == nil {
		return nil, jetstream.ErrInvalidJetStreamResponse
	}
	m := resp.Message
	if len(m.Header) > 0 {
		h, err := nats.DecodeHeadersMsg(m.Header)
		if err != nil {
			return nil, fmt.Errorf("decode message get headers: %w", err)
		}
		// A delete or purge marker (KV-Operation), or a marker JetStream
		// wrote for a TTL or purge (Nats-Marker-Reason), is no object.
		if h.Get("KV-Operation") != "" || h.Get(jetstream.MarkerReasonHeader) != "" {
			return nil, jetstream.ErrKeyDeleted
		}
	}
	return leaderEntry{bucket: b.Name(), key: key, value: m.Data, rev: m.Seq, created: m.Time}, nil
}

// leaderEntry is a KV entry read by leaderGet.
type leaderEntry struct {
	bucket, key string
	value       []byte
	rev         uint64
	created     time.Time
}

var _ jetstream.KeyValueEntry = leaderEntry{}

func (e leaderEntry) Bucket() string                  { return e.bucket }
func (e leaderEntry) Key() string                     { return e.key }
func (e leaderEntry) Value() []byte                   { return e.value }
func (e leaderEntry) Revision() uint64                { return e.rev }
func (e leaderEntry) Created() time.Time              { return e.created }
func (e leaderEntry) Delta() uint64                   { return 0 }
func (e leaderEntry) Operation() jetstream.KeyValueOp { return jetstream.KeyValuePut }
