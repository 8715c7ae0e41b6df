package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/apiserver/kube"
)

// eventsBucket serves v1 Events from the EVENTS stream: read-only, the
// stream sequence as resource version. A list reads the whole stream (it
// is bounded by its retention, bus.EventsMaxMessages); field selectors
// are applied by the generic handler on the wire form.
type eventsBucket struct{ s *Server }

var errEventsReadOnly = &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusMethodNotAllowed,
	Reason: metav1.StatusReasonMethodNotAllowed, Message: "events are written by MiniKu's components on the bus, not through the API"}}

const allEvents = bus.SubjEventPrefix + ".*.*"

func (e eventsBucket) get(ctx context.Context, name string) (kube.Object, error) {
	// name is <object>.<seq in hex>[-<index>]: one read of that message.
	notFound := fmt.Errorf("event %s: %w", name, bus.ErrNotFound)
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return nil, notFound
	}
	seqS, _, _ := strings.Cut(name[i+1:], "-")
	seq, err := strconv.ParseUint(seqS, 16, 64)
	if err != nil {
		return nil, notFound
	}
	msg, err := e.s.conn.EventsStream().GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, fmt.Errorf("read event %s: %w", name, err)
	}
	evs, err := schemas.UnmarshalEvents(msg.Data)
	if err != nil {
		return nil, fmt.Errorf("read event %s: %w", name, err)
	}
	for j := range evs {
		evs[j].Seq, evs[j].Index = seq, j
		if evs[j].MetaName() == name {
			return &evs[j], nil
		}
	}
	return nil, notFound
}

func (e eventsBucket) list(ctx context.Context) ([]kube.Object, uint64, error) {
	evs, rev, err := readEvents(ctx, e.s.conn.EventsStream(), allEvents, bus.EventsMaxMessages, e.s.decodeEvents)
	if err != nil {
		return nil, 0, err
	}
	out := make([]kube.Object, len(evs))
	for i := range evs {
		out[i] = &evs[i]
	}
	return out, rev, nil
}

func (eventsBucket) create(context.Context, kube.Object) error { return errEventsReadOnly }
func (eventsBucket) update(context.Context, kube.Object) (bool, error) {
	return false, errEventsReadOnly
}
func (eventsBucket) remove(context.Context, string, uint64, metav1.DeletionPropagation) (kube.Object, error) {
	return nil, errEventsReadOnly
}

// watch follows the stream after from (from 0: the list, then what
// comes after it). Events are only ever added.
func (e eventsBucket) watch(ctx context.Context, from uint64) (*kube.Watch, error) {
	stream := e.s.conn.EventsStream()
	out := &kube.Watch{Rev: from}
	if from == 0 {
		snap, rev, err := e.list(ctx)
		if err != nil {
			return nil, err
		}
		out.Snapshot, out.Rev = snap, rev
	} else if info, err := stream.Info(ctx); err != nil {
		return nil, fmt.Errorf("watch events: %w", err)
	} else if first := info.State.FirstSeq; from+1 < first {
		return nil, fmt.Errorf("%w: %d (the oldest event kept is %d)", kube.ErrExpired, from, first)
	}
	it, err := eventIterator(ctx, stream, allEvents, out.Rev)
	if err != nil {
		return nil, fmt.Errorf("watch events: %w", err)
	}
	c := make(chan kube.Change)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(c)
		defer it.stop()
		for {
			select {
			case <-wctx.Done():
				return
			case m, ok := <-it.msgs:
				if !ok {
					return // the client re-watches from the last revision it saw
				}
				meta, err := m.Metadata()
				if err != nil {
					continue
				}
				for _, ev := range e.s.decodeEvents(m, meta) {
					select {
					case c <- kube.Change{Rev: ev.Seq, Name: ev.MetaName(), Obj: &ev}:
					case <-wctx.Done():
						return
					}
				}
			}
		}
	}()
	out.C = c
	out.Stop = func() { cancel(); <-done }
	return out, nil
}
