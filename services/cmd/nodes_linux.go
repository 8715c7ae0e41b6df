package cmd

import (
	"context"
	"io"
)

// nodeCommands are the commands that run parts of the cluster.
func nodeCommands() map[string]command {
	cmds := map[string]command{}
	for name, c := range map[string]func(context.Context, []string, io.Writer) error{
		"up":         cmdUp,
		"nats":       cmdNATS,
		"apiserver":  cmdAPIServer,
		"scheduler":  cmdScheduler,
		"controller": cmdController,
		"kubelet":    cmdKubelet,
		"images":     cmdImages,
		"down":       cmdDown,
	} {
		cmds[name] = func(ctx context.Context, args []string, _, stderr io.Writer) error { return c(ctx, args, stderr) }
	}
	cmds["cluster"] = cmdCluster
	return cmds
}
