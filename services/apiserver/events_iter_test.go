package apiserver

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// stuckMessages is a MessagesContext whose Next stays blocked after Stop,
// as nats.go's ordered consumer did once when a Stop raced its reset on a
// reconnect.
type stuckMessages struct{ release chan struct{} }

func (m *stuckMessages) Next(...jetstream.NextOpt) (jetstream.Msg, error) {
	<-m.release
	return nil, jetstream.ErrMsgIteratorClosed
}
func (m *stuckMessages) Stop()  {}
func (m *stuckMessages) Drain() {}

// A consumer stuck in Next must not hang the events watch (and with it
// its handler and the server's shutdown): stop returns, and the watch
// re-subscribes.
func TestEventIterStopDoesNotHangOnAStuckConsumer(t *testing.T) {
	mc := &stuckMessages{release: make(chan struct{})}
	defer close(mc.release) // lets the iterator's goroutine end
	it := newEventIter(mc)
	stopped := make(chan struct{})
	go func() { it.stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(eventIterStopWait + 10*time.Second):
		t.Fatal("stop still waiting for a consumer stuck in Next")
	}
}
