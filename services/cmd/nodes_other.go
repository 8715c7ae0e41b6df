//go:build !linux

package cmd

import (
	"context"
	"fmt"
	"io"
	"runtime"
)

// nodeCommands on other systems only say why they cannot run: nodes need
// Linux namespaces and cgroups, and the server half is built for Linux
// only so that the client half builds anywhere.
func nodeCommands() map[string]command {
	cmds := map[string]command{}
	for _, name := range []string{"up", "nats", "apiserver", "scheduler", "controller", "kubelet", "runtime", "images", "down", "cluster"} {
		cmds[name] = func(context.Context, []string, io.Writer, io.Writer) error {
			return fmt.Errorf("%s needs Linux (this is %s/%s): run it on a Linux host and point the client commands at it with --server", name, runtime.GOOS, runtime.GOARCH)
		}
	}
	return cmds
}
