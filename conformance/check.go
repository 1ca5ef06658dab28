package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Check is one conformance check. The suite's own checks come from
// [Checks]; a third party adds its own through [Config.ExtraChecks].
type Check struct {
	// ID names the check as "area/behaviour", e.g.
	// "exec/timeout-kills-process-tree". Unique in a run.
	ID string
	// Level is the specification level of the behaviour tested; it decides
	// which runs select the check (see [Config.Level]).
	Level Level
	// Requirement is how strongly the contract asks for the behaviour of a
	// backend that implements the operation or advertises the extension:
	// [Must] or [Should].
	Requirement Requirement
	// Operations are the ids of the contract operations whose behaviour the
	// check tests (operationId in api/openapi.yaml, e.g. "execInSandbox").
	Operations []string
	// Extensions are the extensions whose behaviour the check tests (names
	// from Info.extensions, e.g. api.ExtExecFlags) beyond those its
	// operations belong to. A check names at least one operation or
	// extension.
	Extensions []string
	// Capability is the extension (a name from GET /v1/info extensions,
	// e.g. "exec.stream") the check needs; "" for plain v1 behaviour.
	Capability string
	// Spec states the behaviour the check tests, e.g.
	// "POST /v1/sandboxes/{sessionId}/exec: timeoutSeconds".
	Spec string
	// Anchor points to the section of the specification the check tests.
	// The suite's own checks use a JSON pointer into the contract
	// ("api/openapi.yaml#/paths/~1healthz/get") or a section of the
	// NoxRunner v1 specification ("noxrunner-v1.md#general"); a third
	// party's check may use a URL of its own documentation.
	Anchor string
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

// Requirement is the strength of the requirement a check tests, in the
// sense of RFC 2119.
type Requirement string

// The requirement strengths.
const (
	// Must is an absolute requirement: a backend that fails the check does
	// not conform.
	Must Requirement = "MUST"
	// Should is a recommendation: a backend may have reasons to differ, but
	// clients are better served when it does not. A failure still fails
	// the run.
	Should Requirement = "SHOULD"
)

// ErrSuite marks errors of the suite itself, not of the backend under test:
// the backend is unreachable, the run was cancelled, a check's own setup
// broke. A check whose error wraps it is reported with StatusError.
var ErrSuite = errors.New("conformance suite error")

// Checks returns the suite's own checks, in a stable order (by area, then as
// written). It builds a new slice on each call, which the caller may change
// freely; there is no package-level registry.
func Checks() []Check {
	var all []Check
	all = append(all, healthChecks()...)
	all = append(all, sandboxChecks()...)
	all = append(all, execChecks()...)
	all = append(all, filesChecks()...)
	all = append(all, fsChecks()...)
	all = append(all, extChecks()...)
	all = append(all, procChecks()...)
	all = append(all, portsChecks()...)
	all = append(all, netChecks()...)
	all = append(all, metricsChecks()...)
	return all
}

// validateChecks reports duplicate ids and incomplete checks. operations
// holds the operation ids of the contract.
func validateChecks(cs []Check, operations map[string]bool) error {
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
		if c.Requirement != Must && c.Requirement != Should {
			errs = append(errs, fmt.Errorf("check %q: requirement %q, want MUST or SHOULD", c.ID, c.Requirement))
		}
		if c.Level == LevelExtension && c.Capability == "" {
			errs = append(errs, fmt.Errorf("check %q: an extension check needs a capability", c.ID))
		}
		if c.Run == nil || c.Spec == "" || c.Anchor == "" {
			errs = append(errs, fmt.Errorf("check %q: Run, Spec and Anchor are required", c.ID))
		}
		errs = append(errs, validateCovers(c, operations)...)
	}
	return errors.Join(errs...)
}

// validateCovers checks what c says it covers.
func validateCovers(c Check, operations map[string]bool) []error {
	var errs []error
	if len(c.Operations) == 0 && len(c.Extensions) == 0 {
		errs = append(errs, fmt.Errorf("check %q: names no operation and no extension it covers", c.ID))
	}
	for _, op := range c.Operations {
		if !operations[op] {
			errs = append(errs, fmt.Errorf("check %q: operation %q is not in the contract", c.ID, op))
		}
	}
	for _, ext := range c.Extensions {
		if ext == "" || strings.ContainsFunc(ext, func(r rune) bool { return r <= ' ' }) {
			errs = append(errs, fmt.Errorf("check %q: extension name %q", c.ID, ext))
		}
	}
	return errs
}
