package bus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
)

// TestNoReconnectBuffer: with NoReconnectBuffer a write while the server
// is down fails at once and never happens; without it nats.go buffers the
// write, the caller gives up on it, and the buffer applies it when the
// server is back: a write its caller reported as failed.
func TestNoReconnectBuffer(t *testing.T) {
	for _, noBuffer := range []bool{true, false} {
		t.Run(map[bool]string{true: "NoReconnectBuffer", false: "buffered"}[noBuffer], func(t *testing.T) {
			dir := t.TempDir()
			ns := bustest.Server(t, "", dir)
			addr := ns.Addr().String()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := bus.Connect(ctx, bus.Options{URL: ns.ClientURL(), Name: t.Name(), Logger: bustest.Logger(t), NoReconnectBuffer: noBuffer})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()

			ns.Shutdown()
			ns.WaitForShutdown()
			bustest.Eventually(t, 5*time.Second, func() error {
				if c.NATS().IsConnected() {
					return errors.New("still connected")
				}
				return nil
			})
			wctx, wcancel := context.WithTimeout(ctx, time.Second)
			start := time.Now()
			err = c.Pods.Create(wctx, &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "during"}})
			wcancel()
			took := time.Since(start)
			if err == nil {
				t.Fatal("a create with the server down succeeded")
			}
			if noBuffer && (!errors.Is(err, nats.ErrReconnectBufExceeded) || took > 500*time.Millisecond) {
				t.Errorf("create with the server down: %v after %v, want nats.ErrReconnectBufExceeded at once", err, took)
			}

			ns2 := bustest.Server(t, addr, dir)
			c2 := bustest.Conn(t, ns2.ClientURL(), nil)
			bustest.Eventually(t, 10*time.Second, func() error {
				if !c.NATS().IsConnected() {
					return errors.New("not reconnected")
				}
				return nil
			})
			// Give a buffered write the time to land.
			if err := c.NATS().FlushTimeout(5 * time.Second); err != nil {
				t.Fatal(err)
			}
			_, err = c2.Pods.Get(ctx, "during")
			switch {
			case noBuffer && err == nil:
				t.Error("the create refused while the server was down happened once it was back")
			case noBuffer && !errors.Is(err, bus.ErrNotFound):
				t.Errorf("get: %v", err)
			case !noBuffer:
				// What NoReconnectBuffer is for (not asserted: it is
				// nats.go's buffering, not ours).
				t.Logf("without NoReconnectBuffer, the create that failed is there after the restart: %v", err == nil)
			}
		})
	}
}
