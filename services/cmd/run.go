package cmd

import (
	"context"
	"fmt"
	"io"

	"github.com/miniku/miniku/services/cli"
)

// This file and version.go build on every OS: the client commands work
// on macOS and Windows too, and the node commands say they need Linux
// (nodes_other.go).

const usage = `usage: miniku <command> [flags]

commands (the node half: Linux only):
  up          run everything in one process: NATS, apiserver, scheduler, controller, kubelets
  nats        run the embedded NATS server (JetStream) alone
  apiserver   run the HTTP API gateway
  scheduler   run the scheduler
  controller  run the replicaset and node controllers
  kubelet     run a node agent (--node-name), or simulated ones (--hollow --count N)
  runtime     run one container in the foreground (runtime run), list containers (runtime ps)
  down        stop every container of a data dir's pods, keep the data (--purge: remove the data dir too)
  cluster     cluster status: a server's view of the NATS cluster (servers, meta leader, each bucket's replicas and lag)
  images      the node's image store: images import FILE (docker save / OCI tarball), images ls, images rm

client commands (talk to the apiserver; see 'miniku get -h'):
` + cli.Usage + `  kubeconfig  print the kubeconfig up wrote for kubectl, client-go and Helm (<data-dir>/kubeconfig)
  version     print the version of this binary

Run 'miniku <command> -h' for its flags.
`

// command is one subcommand; stdout is for its results, stderr for logs.
type command func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// Run runs the command named by args[0] until ctx ends. Help asked for
// goes to stdout (it is the output asked for); after a mistake, to stderr.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	cmds := nodeCommands()
	cmds["version"] = cmdVersion
	cmds["kubeconfig"] = cmdKubeconfig
	for name, c := range cli.Commands {
		cmds[name] = c
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
	return cmd(ctx, args[1:], stdout, stderr)
}
