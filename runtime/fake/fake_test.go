package fake

import (
	"context"
	"errors"
	"testing"
	"time"

	ctr "github.com/miniku/miniku/runtime"
)

func TestLifecycle(t *testing.T) {
	r := New()
	ctx := context.Background()
	c, err := r.Start(ctx, ctr.Spec{ID: "a1", Labels: map[string]string{"miniku.pod": "p"}})
	if err != nil || c.Status != ctr.StatusRunning {
		t.Fatalf("Start: %+v %v, want Running", c, err)
	}
	if _, err := r.Start(ctx, ctr.Spec{ID: "a1"}); !errors.Is(err, ctr.ErrExists) {
		t.Fatalf("second Start: %v, want ErrExists", err)
	}
	if err := r.Remove("a1"); !errors.Is(err, ctr.ErrRunning) {
		t.Fatalf("Remove of a running container: %v, want ErrRunning", err)
	}
	waited := make(chan ctr.Container)
	go func() { c, _ := r.Wait(ctx, "a1"); waited <- c }()
	if err := r.Stop(ctx, "a1", time.Second); err != nil {
		t.Fatal(err)
	}
	if c := <-waited; c.Status != ctr.StatusExited || !c.ExitKnown || c.ExitCode != 0 {
		t.Fatalf("Wait returned %+v, want exited with code 0", c)
	}
	if l, _ := r.List(); len(l) != 1 || l[0].Labels["miniku.pod"] != "p" {
		t.Fatalf("List: %+v", l)
	}
	if err := r.Remove("a1"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get("a1"); !errors.Is(err, ctr.ErrNotFound) {
		t.Fatalf("Get after Remove: %v, want ErrNotFound", err)
	}
}
