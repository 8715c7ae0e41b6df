package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/miniku/miniku/schemas"
)

// StreamInbox turns inbox (<prefix>.<id>) into the reply subject of a
// stream with node's kubelet, <prefix>.node.<node>.<id>: the requester may
// subscribe to it (it is below its prefix), and the stream's other
// subjects (<reply>.ctl, <reply>.stdin) carry the node, so only that
// node's kubelet may subscribe to them (Permissions): no other kubelet
// reads an exec's stdin or forges its acks.
func StreamInbox(inbox, node string) string {
	i := strings.LastIndexByte(inbox, '.')
	return inbox[:i] + ".node." + node + inbox[i:]
}

// openStream sends req to subject with a new inbox as reply and waits for
// the kubelet's first chunk, returned with the stream it opens; what names
// the stream in errors ("logs of pod x"). A first chunk with an Error is
// the kubelet's *LogError. On error nothing stays subscribed.
func (c *Conn) openStream(ctx context.Context, node, subject, what string, req any) (*LogStream, schemas.LogChunk, error) {
	var ch schemas.LogChunk
	data, err := schemas.Marshal(req)
	if err != nil {
		return nil, ch, err
	}
	s := &LogStream{nc: c.nc, reply: StreamInbox(c.nc.NewInbox(), node), msgs: make(chan *nats.Msg, 4*logWindow), next: 1}
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

// newLogSender starts the kubelet's end of a stream to reply (logs, exec):
// its ctx ends when the requester cancels or stops acking, or when ctx
// ends; what names the stream in errors ("log stream"). Call close when
// the stream is over.
func newLogSender(ctx context.Context, nc *nats.Conn, reply, what string) (*logSender, error) {
	ctx, cancel := context.WithCancel(ctx)
	ls := &logSender{nc: nc, reply: reply, ctx: ctx, cancel: cancel, acks: make(chan struct{}, 1), waitingSince: time.Now()}
	ctl, err := nc.Subscribe(LogControlSubject(reply), ls.control)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%s: subscribe: %w", what, err)
	}
	ls.ctl = ctl
	return ls, nil
}

func (ls *logSender) close() {
	_ = ls.ctl.Unsubscribe()
	ls.cancel()
}

// finish ends the stream: with last (EOF, and err's message and code if
// err is not nil), or, when the stream was stopped from the kubelet's side
// (it is shutting down), with stopped as the error rather than leave the
// requester to time out.
func (ls *logSender) finish(last schemas.LogChunk, err error, stopped string) error {
	ctx := ls.ctx
	if ctx.Err() != nil {
		if !ls.requesterGone.Load() {
			// No window wait: this is the last message either way.
			ls.mu.Lock()
			_ = ls.publishLocked(schemas.LogChunk{EOF: true, Error: stopped})
			ls.mu.Unlock()
		}
		return nil
	}
	last.EOF = true
	if err != nil {
		last.Error = err.Error()
		var le *LogError
		if errors.As(err, &le) {
			last.Code = le.Code
		}
	}
	if err := ls.send(ctx, last); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}
