package serviceaccounts

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/bustest"
	"github.com/miniku/miniku/schemas"
)

func TestMissing(t *testing.T) {
	have := map[string]bool{"default/default": true, "kube-system/other": true}
	exists := func(ns, name string) bool { return have[ns+"/"+name] }
	got := Missing([]string{"default", "kube-system", "kube-public"}, exists)
	if !slices.Equal(got, []string{"kube-system", "kube-public"}) {
		t.Fatalf("Missing = %v", got)
	}
	if got := Missing(nil, exists); got != nil {
		t.Fatalf("Missing(nil) = %v", got)
	}
}

func TestDefaultServiceAccount(t *testing.T) {
	ns := bustest.Server(t, "", "")
	conn := bustest.Conn(t, ns.ClientURL(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := New(Config{Logger: bustest.Logger(t), Resync: time.Hour}, conn)
	if err != nil {
		t.Fatal(err)
	}
	// Two at once (up and a separate controller, say): one default.
	c2, _ := New(Config{Logger: bustest.Logger(t), Resync: time.Hour}, bustest.Conn(t, ns.ClientURL(), nil))
	done := make(chan error, 2)
	go func() { done <- c.Run(ctx) }()
	go func() { done <- c2.Run(ctx) }()
	defer func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}()

	var first *schemas.ServiceAccount
	bustest.Eventually(t, 10*time.Second, func() error {
		first, err = conn.ServiceAccounts.Get(ctx, schemas.DefaultServiceAccount)
		return err
	})
	if first.UID == "" || first.CreatedAt.IsZero() {
		t.Fatalf("default service account not prepared for create: %+v", first)
	}

	// An edit is kept, not overwritten.
	first.Labels = map[string]string{"edited": "yes"}
	if err := conn.ServiceAccounts.Update(ctx, first); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // both controllers see the change
	if got, err := conn.ServiceAccounts.Get(ctx, schemas.DefaultServiceAccount); err != nil || got.Labels["edited"] != "yes" {
		t.Fatalf("after an edit: %+v, %v", got, err)
	}

	// Deleted: it comes back, a new object.
	if err := conn.ServiceAccounts.Delete(ctx, schemas.DefaultServiceAccount, first.ResourceVersion); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 10*time.Second, func() error {
		got, err := conn.ServiceAccounts.Get(ctx, schemas.DefaultServiceAccount)
		if err != nil {
			return err
		}
		if got.UID == first.UID {
			return errors.New("same uid")
		}
		return nil
	})
}

func TestNewNeedsTheBucket(t *testing.T) {
	if _, err := New(Config{}, nil); err == nil {
		t.Fatal("New without a connection")
	}
	if _, err := New(Config{}, &bus.Conn{}); err == nil {
		t.Fatal("New without the serviceaccounts bucket")
	}
}
