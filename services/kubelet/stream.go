package kubelet

import (
	"context"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/miniku/miniku/schemas"
)

// streamServer describes one kind of stream request a kubelet serves
// (logs, exec): the plumbing around them is the same.
type streamServer struct {
	subject string // where requests come
	queue   string // the queue group, so overlapping kubelets answer once
	what    string // names the request in errors: "log", "exec"
	max     int    // streams served at once
	busy    string // the answer when max streams run already
}

// serveStream answers requests of type R on srv.subject, each in its own
// goroutine running handle, at most srv.max at once, until the returned
// stop is called or ctx ends. stop cancels the handlers' context and waits
// for them. A failure to subscribe is logged, not fatal.
func serveStream[R any, PR interface {
	*R
	Validate() error
}](k *Kubelet, ctx context.Context, srv streamServer, handle func(ctx context.Context, reply string, req R)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var (
		mu      sync.Mutex
		stopped bool
		wg      sync.WaitGroup
	)
	slots := make(chan struct{}, srv.max)
	nc := k.conn.NATS()
	sub, err := nc.QueueSubscribe(srv.subject, srv.queue, func(m *nats.Msg) {
		if m.Reply == "" {
			return
		}
		var req R
		if err := schemas.Unmarshal(m.Data, &req); err != nil {
			k.respondLogError(m.Reply, schemas.LogCodeBadRequest, "malformed "+srv.what+" request: "+err.Error())
			return
		}
		if err := PR(&req).Validate(); err != nil {
			k.respondLogError(m.Reply, schemas.LogCodeBadRequest, err.Error())
			return
		}
		select {
		case slots <- struct{}{}:
		default:
			k.respondLogError(m.Reply, schemas.LogCodeBusy, srv.busy)
			return
		}
		mu.Lock()
		if stopped {
			mu.Unlock()
			<-slots
			return
		}
		wg.Add(1)
		mu.Unlock()
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			handle(ctx, m.Reply, req)
		}()
	})
	if err != nil {
		k.log.Error("cannot serve "+srv.what+" requests", "subject", srv.subject, "err", err)
		cancel()
		return func() {}
	}
	return func() {
		_ = sub.Unsubscribe()
		mu.Lock()
		stopped = true
		mu.Unlock()
		cancel()
		wg.Wait()
	}
}
