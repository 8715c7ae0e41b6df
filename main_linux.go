package main

import (
	"os"

	mkrt "github.com/miniku/miniku/runtime"
	"github.com/miniku/miniku/runtime/runtimecmd"
)

// nodeMain runs the runtime's own entry points and does not return for
// them: the runtime re-executes this binary as each container's init,
// which must run before anything else (no flags, no logging setup).
func nodeMain() {
	if len(os.Args) > 1 && os.Args[1] == mkrt.InitArg {
		mkrt.Init()
	}
	if len(os.Args) > 1 && os.Args[1] == "runtime" {
		os.Exit(runtimecmd.Main(os.Args[2:], os.Stdout, os.Stderr))
	}
}
