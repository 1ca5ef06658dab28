// Command nox is the NoxRunner command line: a client for any NoxRunner
// backend, and the nox local backend server.
package main

import (
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println("nox", version)
		return
	}
	fmt.Fprintln(os.Stderr, "usage: nox version")
	os.Exit(2)
}
