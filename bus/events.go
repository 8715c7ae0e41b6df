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
func (c *Conn) Emit(ev schemas.ObjectEvent) {
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	if ev.Type == "" {
		ev.Type = schemas.EventNormal
	}
	data, err := schemas.Marshal(&ev)
	if err != nil {
		c.log.Warn("encode event", "reason", ev.Reason, "err", err)
		return
	}
	if err := c.nc.Publish(EventSubject(ev.Kind, ev.Name), data); err != nil {
		c.log.Debug("emit event", "reason", ev.Reason, "kind", ev.Kind, "name", ev.Name, "err", err)
	}
}

// EventsStream exposes the stream for readers (the apiserver's GET /events).
func (c *Conn) EventsStream() jetstream.Stream { return c.events }
