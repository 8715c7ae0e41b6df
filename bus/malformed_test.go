package bus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
)

// Garbage written straight into a bucket — bytes that do not decode, or an
// object under another object's key — is refused by Get, skipped by List
// and never reaches an informer's cache.
func TestMalformedValues(t *testing.T) {
	ns := bustest.Server(t, "", "")
	c := bustest.Conn(t, ns.ClientURL(), bustest.Logger(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inf := bus.NewInformer(c, c.Pods, time.Hour, bustest.Logger(t))
	go func() { _ = inf.Run(ctx) }()

	other, err := schemas.Marshal(&schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "../x"}, NodeName: "n"})
	if err != nil {
		t.Fatal(err)
	}
	garbage := map[string][]byte{"bytes": {0xc1, 0x00}, "empty": {0x80}, "renamed": other}
	for k, v := range garbage {
		if _, err := c.Pods.KV().Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Pods.Get(ctx, k); !errors.Is(err, bus.ErrMalformed) {
			t.Errorf("Get %s: %v, want ErrMalformed", k, err)
		}
	}
	if err := c.Pods.Create(ctx, &schemas.Pod{ObjectMeta: schemas.ObjectMeta{Name: "good"}}); err != nil {
		t.Fatal(err)
	}
	list, err := c.Pods.List(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "good" {
		t.Fatalf("List = %v, %v; want only the pod good", list, err)
	}
	bustest.Eventually(t, 10*time.Second, func() error {
		if _, ok := inf.Get("good"); !ok {
			return errors.New("informer has not seen good yet")
		}
		return nil
	})
	for k := range garbage {
		if p, ok := inf.Get(k); ok {
			t.Errorf("informer cached garbage %s: %+v", k, p)
		}
	}
}
