// Command nox is the NoxRunner command line: a client for any NoxRunner
// backend, the nox local backend server (nox serve) and the backend
// conformance suite (nox conformance).
//
// Run `nox --help` for the commands and the exit-code table.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/noxrunner/nox/localbackend"
)

// defaultVersion is version when the build does not set it.
const defaultVersion = "0.1.0-dev"

// version is set at build time with -ldflags "-X main.version=..."; see
// noxVersion for what nox reports when it is not.
var version = defaultVersion

func main() {
	localbackend.MaybeRunInit() // a re-executed sandbox init never returns
	os.Exit(runMain())
}

// runMain runs nox on the process's arguments and streams with a context
// that SIGINT and SIGTERM cancel, and returns the exit code.
func runMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
}
