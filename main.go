// Command miniku is a small, real Kubernetes in one binary: `miniku up` runs
// everything in one process, `miniku nats|apiserver|scheduler|controller|
// kubelet` run each part alone, `miniku runtime` runs single containers, and
// the client commands (get, apply, logs, exec, ...) drive the API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	mkrt "github.com/miniku/miniku/runtime"
	"github.com/miniku/miniku/runtime/runtimecmd"
	"github.com/miniku/miniku/services/cli"
	"github.com/miniku/miniku/services/cmd"
)

func main() {
	// The runtime re-executes this binary as each container's init; that
	// path must run before anything else (no flags, no logging setup).
	if len(os.Args) > 1 && os.Args[1] == mkrt.InitArg {
		mkrt.Init()
	}
	if len(os.Args) > 1 && os.Args[1] == "runtime" {
		os.Exit(runtimecmd.Main(os.Args[2:], os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := cmd.Run(ctx, os.Args[1:], os.Stderr)
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
