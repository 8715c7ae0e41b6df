// Package serviceaccounts keeps a "default" ServiceAccount in every
// namespace, as kube-controller-manager's serviceaccounts controller does:
// created if absent at start, and again whenever it is deleted. Pods that
// name no service account run as it (the Pod declaration's default).
//
// Creation is create-if-absent (a compare-and-swap on "no revision"), so
// any number of these may run, leader or not, and none overwrites a
// default someone edited.
package serviceaccounts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/registry"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/schemas/kinds"
)

// Config of the controller.
type Config struct {
	Logger *slog.Logger
	// Resync is how often it checks even without a change (default 30 s):
	// a create that failed while NATS was away is retried then.
	Resync time.Duration
	// Now is the clock (time.Now by default).
	Now func() time.Time
}

// Controller ensures the default ServiceAccounts.
type Controller struct {
	cfg  Config
	conn *bus.Conn
	// writes creates through the ServiceAccount's rules, the API's.
	writes saWriter
	log    *slog.Logger
}

// saWriter creates service accounts (bus/registry's store).
type saWriter interface {
	Create(ctx context.Context, sa *schemas.ServiceAccount) error
}

// New returns a controller writing through conn (a user that may write
// the serviceaccounts bucket: the controller's or the apiserver's).
func New(cfg Config, conn *bus.Conn) (*Controller, error) {
	if conn == nil || conn.ServiceAccounts == nil {
		return nil, errors.New("serviceaccounts: no serviceaccounts bucket")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Controller{cfg: cfg, conn: conn, writes: registry.For(conn, cfg.Now).ServiceAccounts,
		log: cfg.Logger.With("component", "serviceaccounts")}, nil
}

// Namespaces that get a default ServiceAccount. Objects are keyed by name
// alone while they live only in kinds.DefaultNamespace; kube-system and
// kube-public get theirs when keys carry the namespace.
func Namespaces() []string { return []string{kinds.DefaultNamespace} }

// Missing is the decision: the namespaces of namespaces lacking a default
// ServiceAccount, given whether one exists.
func Missing(namespaces []string, exists func(namespace, name string) bool) []string {
	var out []string
	for _, ns := range namespaces {
		if !exists(ns, schemas.DefaultServiceAccount) {
			out = append(out, ns)
		}
	}
	return out
}

// Run ensures the defaults at once, then at every change of the bucket
// and every Resync, until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	inf := bus.NewInformer(c.conn, c.conn.ServiceAccounts, c.cfg.Resync, c.log)
	changed := make(chan struct{}, 1)
	inf.AddEventHandler(bus.KeyHandler[schemas.ServiceAccount](func(name string) {
		if name != schemas.DefaultServiceAccount {
			return
		}
		select {
		case changed <- struct{}{}:
		default:
		}
	}))
	ictx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- inf.Run(ictx) }()
	stopped := false // the informer's result was received
	defer func() {
		cancel()
		if !stopped {
			<-done
		}
	}()
	if err := inf.WaitSynced(ctx); err != nil {
		return nil // ctx ended
	}
	t := time.NewTicker(c.cfg.Resync)
	defer t.Stop()
	for {
		exists := func(_, name string) bool { _, ok := inf.Get(name); return ok }
		for _, ns := range Missing(Namespaces(), exists) {
			if err := c.ensure(ctx, ns); err != nil && ctx.Err() == nil {
				// Retried at the next change or resync.
				c.log.Warn("create default service account", "namespace", ns, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-done:
			stopped = true
			if ctx.Err() != nil {
				// Both were ready at shutdown; select chose this one.
				return nil
			}
			if err == nil {
				err = errors.New("ended without an error")
			}
			return fmt.Errorf("serviceaccounts informer stopped: %w", err)
		case <-changed:
		case <-t.C:
		}
	}
}

// ensure creates the namespace's default ServiceAccount unless it exists.
func (c *Controller) ensure(ctx context.Context, ns string) error {
	err := c.writes.Create(ctx, kinds.NewDefaultServiceAccount(c.cfg.Now()))
	switch {
	case errors.Is(err, bus.ErrAlreadyExists):
		return nil // someone else's, perhaps edited: kept
	case err != nil:
		return err
	}
	c.log.Info("created default service account", "namespace", ns)
	return nil
}
