package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Check is one conformance check.
type Check struct {
	// ID names the check as "area/behaviour", e.g.
	// "exec/timeout-kills-process-tree". Unique in the registry.
	ID string
	// Level is the specification level of the behaviour tested.
	Level Level
	// Capability is the extension (a name from GET /v1/info extensions,
	// e.g. "exec.stream") the check needs; "" for plain v1 behaviour.
	Capability string
	// Spec names the part of the specification the check tests, e.g.
	// "POST /v1/sandboxes/{sessionId}/exec: timeoutSeconds".
	Spec string
	// Slow marks checks that take long (seconds of waiting);
	// Config.SkipSlow skips them.
	Slow bool
	// Parallel marks checks that may run at the same time as other parallel
	// checks.
	Parallel bool
	// Run performs the check. It returns nil when the backend behaved, or an
	// error describing every misbehaviour seen (joined with errors.Join),
	// each with the request made and the response got. An error wrapping
	// ErrSuite means the suite could not do its work (status error) rather
	// than that the backend misbehaved.
	Run func(ctx context.Context, env *Env) error
}

// ErrSuite marks errors of the suite itself, not of the backend under test:
// the backend is unreachable, the run was cancelled, a check's own setup
// broke. A check whose error wraps it is reported with StatusError.
var ErrSuite = errors.New("conformance suite error")

// Checks returns the registry: every check of the suite, in a stable order
// (by area, then as written). It builds a new slice on each call.
func Checks() []Check {
	var all []Check
	all = append(all, healthChecks()...)
	all = append(all, sandboxChecks()...)
	all = append(all, execChecks()...)
	all = append(all, filesChecks()...)
	all = append(all, extChecks()...)
	return all
}

// validateRegistry reports duplicate ids and incomplete checks.
func validateRegistry(cs []Check) error {
	var errs []error
	seen := map[string]bool{}
	for _, c := range cs {
		switch {
		case c.ID == "" || !strings.Contains(c.ID, "/"):
			errs = append(errs, fmt.Errorf("check %q: id must be area/name", c.ID))
		case seen[c.ID]:
			errs = append(errs, fmt.Errorf("check %q: duplicate id", c.ID))
		}
		seen[c.ID] = true
		if !slices.Contains([]Level{LevelMinimum, LevelRecommended, LevelExtension}, c.Level) {
			errs = append(errs, fmt.Errorf("check %q: level %q", c.ID, c.Level))
		}
		if c.Level == LevelExtension && c.Capability == "" {
			errs = append(errs, fmt.Errorf("check %q: an extension check needs a capability", c.ID))
		}
		if c.Run == nil || c.Spec == "" {
			errs = append(errs, fmt.Errorf("check %q: Run and Spec are required", c.ID))
		}
	}
	return errors.Join(errs...)
}
