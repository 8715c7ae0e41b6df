package scheduler

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

// runElected schedules only while leading. Each term starts a fresh
// scheduler whose caches are loaded from KV after the lease is acquired, so
// it sees every bind the previous leader made: two leaders never decide on
// different views, which is what keeps nodes from being overcommitted (CAS
// on the pod alone only prevents double binds).
func (s *Scheduler) runElected(ctx context.Context) error {
	cfg := s.cfg
	cfg.Elector = nil
	return s.cfg.Elector.Run(ctx, func(ctx context.Context) error {
		term, err := New(cfg, s.conn)
		if err != nil {
			return fmt.Errorf("scheduler term: %w", err)
		}
		s.log.Info("leading: scheduling")
		return term.Run(ctx)
	})
}
