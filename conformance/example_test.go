package conformance_test

import (
	"context"
	"fmt"
	"os"

	"github.com/noxrunner/nox/conformance"
)

// ExampleRunSuite shows what nox conformance does: run the suite against a
// backend, print the report and exit non-zero unless it is OK.
func ExampleRunSuite() {
	cfg := conformance.NewConfig()
	cfg.BaseURL = "http://127.0.0.1:8080"
	cfg.Level = conformance.LevelRecommended // minimum + recommended
	cfg.SkipSlow = true
	cfg.Logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	rep, err := conformance.RunSuite(context.Background(), cfg)
	if err != nil { // invalid configuration
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := rep.Write(os.Stdout, "text"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if !rep.OK() {
		os.Exit(1)
	}
}

// ExampleChecks lists the registry.
func ExampleChecks() {
	for _, c := range conformance.Checks() {
		if c.ID == "exec/timeout-kills-process-tree" {
			fmt.Println(c.ID, c.Level, c.Capability == "")
		}
	}
	// Output: exec/timeout-kills-process-tree minimum true
}
