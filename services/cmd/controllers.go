//go:build linux

package cmd

import "context"

type runner interface{ Run(context.Context) error }

// controllers run together until one ends, then stop the others: the
// controller process runs the replicaset/node controller, the
// serviceaccounts one and the garbage collector.
type controllers []struct {
	name string
	run  runner
}

func (cs controllers) Run(ctx context.Context) error {
	g, gctx := newGroup(ctx)
	for _, c := range cs {
		g.Go(c.name, func() error { return c.run.Run(gctx) })
	}
	return g.Wait()
}
