package controller

import (
	"context"
	"fmt"
)

// Elector runs lead only while this process holds a lease, cancelling its
// context when the lease is lost and calling it again at the next term
// (*bus.Lease does this).
type Elector interface {
	Run(ctx context.Context, lead func(ctx context.Context) error) error
}

// runElected runs the loops only while leading. Two active controllers
// would each count a replicaset's pods before the other's creations reach
// its cache and both create the missing ones; with one leader at a time,
// and a fresh controller loading its caches from KV at each term, the
// count is made on one view.
func (c *Controller) runElected(ctx context.Context) error {
	cfg := c.cfg
	cfg.Elector = nil
	return c.cfg.Elector.Run(ctx, func(ctx context.Context) error {
		term, err := New(cfg, c.conn)
		if err != nil {
			return fmt.Errorf("controller term: %w", err)
		}
		c.log.Info("leading: running the replicaset and node loops")
		return term.Run(ctx)
	})
}
