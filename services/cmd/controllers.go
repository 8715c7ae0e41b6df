//go:build linux

package cmd

import "context"

type runner interface{ Run(context.Context) error }

// both runs two services until either ends, then stops the other: the
// controller process runs the replicaset/node controller and the
// serviceaccounts one.
type both [2]runner

func (b both) Run(ctx context.Context) error {
	g, gctx := newGroup(ctx)
	g.Go("controller", func() error { return b[0].Run(gctx) })
	g.Go("serviceaccounts", func() error { return b[1].Run(gctx) })
	return g.Wait()
}
