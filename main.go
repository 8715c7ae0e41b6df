// Command miniku is a small, real Kubernetes in one binary: `miniku up` runs
// everything in one process, `miniku nats|apiserver|scheduler|controller|
// kubelet` run each part alone, `miniku runtime` runs single containers, and
// the client commands (get, apply, logs, exec, ...) drive the API. The
// client half builds for every OS; the node half (main_linux.go) for Linux.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/miniku/miniku/services/cli"
	"github.com/miniku/miniku/services/cmd"
)

func main() {
	// The runtime's entry points (container init, `miniku runtime`) run
	// before anything else; on other systems there are none.
	nodeMain()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := cmd.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	// miniku exec: the command's exit code, its stderr already printed.
	var ec *cli.ExitCodeError
	if errors.As(err, &ec) {
		os.Exit(ec.Code)
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "miniku:", err)
		os.Exit(1)
	}
}
