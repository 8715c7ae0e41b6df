package bus

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/miniku/miniku/schemas"
)

// The EVENTS stream keeps ObjectEvents for people to read (GET /events,
// `nats sub 'event.>'`). Retention is bounded both by age and count so a
// crash-looping pod cannot fill the disk.
const (
	StreamEvents      = "EVENTS"
	SubjEventPrefix   = "event"
	EventsMaxAge      = time.Hour
	EventsMaxMessages = 100_000
)

// EventSubject is where an event about kind/name is published:
// event.<kind in lowercase>.<name>.
func EventSubject(kind, name string) string {
	return SubjEventPrefix + "." + strings.ToLower(kind) + "." + name
}

func (c *Conn) ensureEventStream(ctx context.Context, replicas int) error {
	return retry(ctx, func() error {
		s, err := c.stream(ctx, jetstream.StreamConfig{
			Name:      StreamEvents,
			Subjects:  []string{SubjEventPrefix + ".>"},
			Storage:   jetstream.FileStorage,
			Replicas:  replicas,
			MaxAge:    EventsMaxAge,
			MaxMsgs:   EventsMaxMessages,
			Discard:   jetstream.DiscardOld,
			Retention: jetstream.LimitsPolicy,
			// consumerlimits.go
			ConsumerLimits: consumerLimits,
		})
		if err == nil {
			c.events = s
		}
		return err
	})
}

// Emit records ev as a plain NATS publish, which the EVENTS stream stores
// without acknowledging: events are for people, and an operation must
// never wait on or fail because of one. A JetStream publish would cost an
// acknowledgement message and its JSON decoding per event, four times a
// pod. Kind and Name must be valid (they form the subject).
func (c *Conn) Emit(ev schemas.ObjectEvent) { c.EmitAll([]schemas.ObjectEvent{ev}) }

// EmitAll records events that happened together, one message per object
// (schemas.MarshalEvents): a kubelet starting a pod reports Pulled, Created
// and Started at once, and one stored message costs the stream a third of
// three.
func (c *Conn) EmitAll(evs []schemas.ObjectEvent) {
	now := time.Now().UTC()
	for i := range evs {
		if evs[i].Time.IsZero() {
			evs[i].Time = now
		}
		if evs[i].Type == "" {
			evs[i].Type = schemas.EventNormal
		}
	}
	if c.relayEvents() {
		c.sendEventsToNodeAPI(evs)
		return
	}
	c.publishEvents(evs)
}

// relayEvents: the connection is a kubelet's, whose events go through the
// node API (nodeapi.go), which records them with the node as their source.
func (c *Conn) relayEvents() bool {
	return c.user == UserHollow || strings.HasPrefix(c.user, kubeletPrefix)
}

func (c *Conn) sendEventsToNodeAPI(evs []schemas.ObjectEvent) {
	own := strings.TrimPrefix(c.user, kubeletPrefix)
	for len(evs) > 0 {
		n := 1
		for n < len(evs) && evs[n].Node == evs[0].Node {
			n++
		}
		group := evs[:n]
		evs = evs[n:]
		node := group[0].Node
		if c.user != UserHollow {
			node = own // what the server stamps anyway
		}
		data, err := schemas.MarshalEvents(group)
		if err != nil {
			c.log.Warn("encode event", "reason", group[0].Reason, "err", err)
			continue
		}
		if err := c.nc.Publish(NodeAPISubject(node, nodeOpEvents), data); err != nil {
			c.log.Debug("emit event", "reason", group[0].Reason, "node", node, "err", err)
		}
	}
}

// publishEvents stores events, one message per object, on its subject.
func (c *Conn) publishEvents(evs []schemas.ObjectEvent) {
	for len(evs) > 0 {
		// The events of one object up to the next one of another.
		n := 1
		for n < len(evs) && evs[n].Kind == evs[0].Kind && evs[n].Name == evs[0].Name {
			n++
		}
		group := evs[:n]
		evs = evs[n:]
		data, err := schemas.MarshalEvents(group)
		if err != nil {
			c.log.Warn("encode event", "reason", group[0].Reason, "err", err)
			continue
		}
		if err := c.nc.Publish(EventSubject(group[0].Kind, group[0].Name), data); err != nil {
			c.log.Debug("emit event", "reason", group[0].Reason, "kind", group[0].Kind, "name", group[0].Name, "err", err)
		}
	}
}

// EventsStream exposes the stream for readers (the apiserver's GET /events).
func (c *Conn) EventsStream() jetstream.Stream { return c.events }
