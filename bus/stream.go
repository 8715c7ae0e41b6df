package bus

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/miniku/miniku/schemas"
)

// openStream sends req to subject with a new inbox as reply and waits for
// the kubelet's first chunk, returned with the stream it opens; what names
// the stream in errors ("logs of pod x"). A first chunk with an Error is
// the kubelet's *LogError. On error nothing stays subscribed.
func (c *Conn) openStream(ctx context.Context, subject, what string, req any) (*LogStream, schemas.LogChunk, error) {
	var ch schemas.LogChunk
	data, err := schemas.Marshal(req)
	if err != nil {
		return nil, ch, err
	}
	s := &LogStream{nc: c.nc, reply: c.nc.NewInbox(), msgs: make(chan *nats.Msg, 4*logWindow), next: 1}
	if s.sub, err = c.nc.ChanSubscribe(s.reply, s.msgs); err != nil {
		return nil, ch, fmt.Errorf("%s: subscribe: %w", what, err)
	}
	if err := c.nc.PublishRequest(subject, s.reply, data); err != nil {
		s.sub.Unsubscribe()
		return nil, ch, fmt.Errorf("%s: request %s: %w", what, subject, err)
	}
	ch, err = s.receive(ctx, logFirstTimeout)
	if err == nil && ch.EOF && ch.Error != "" {
		err = &LogError{Code: ch.Code, Msg: ch.Error}
	}
	if err != nil {
		s.sub.Unsubscribe()
		return nil, ch, err
	}
	return s, ch, nil
}
