// Command k8sapiserver measures the alternative to MiniKu's own Kubernetes
// API handler: k8s.io/apiserver's generic server over NATS KV (server.go),
// side by side with `miniku up` (measure.go). It is a module of its own so
// that the main module never builds or depends on k8s.io/apiserver.
//
//	k8sapiserver serve --addr 127.0.0.1:16443 --dir /tmp/x --token T
//	k8sapiserver measure --miniku ./miniku   (see bench/k8sapiserver/run.sh)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: k8sapiserver serve|measure [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		fs := flag.NewFlagSet("serve", flag.ExitOnError)
		addr := fs.String("addr", "127.0.0.1:16443", "HTTPS listen address")
		dir := fs.String("dir", "", "directory for the NATS store and the self-signed certificate")
		token := fs.String("token", "", "bearer token clients must send")
		_ = fs.Parse(os.Args[2:])
		if *dir == "" || *token == "" {
			fmt.Fprintln(os.Stderr, "serve needs --dir and --token")
			os.Exit(2)
		}
		err = serve(ctx, *addr, *dir, *token)
	case "measure":
		err = measure(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8sapiserver:", err)
		os.Exit(1)
	}
}
