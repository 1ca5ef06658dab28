package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"runtime/debug"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/gen/noxapi"
)

// skipError is returned by Skip.
type skipError struct{ reason string }

func (s *skipError) Error() string { return "skipped: " + s.reason }

// Skip returns an error a check returns to say it cannot judge this backend
// (for example, a needed tool is missing in the sandbox); the check is
// reported as skipped with reason.
func Skip(reason string) error { return &skipError{reason: reason} }

// prepare loads the contract and asks the backend what it is. A backend
// that cannot be reached, or refuses the configured token, is an error.
func prepare(ctx context.Context, cfg Config) (*runState, error) {
	c, err := loadContract(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSuite, err)
	}
	run := &runState{cfg: cfg, contract: c}
	env, err := newEnv(run)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSuite, err)
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
	defer cancel()
	resp, err := env.NoAuthClient.Healthz(pctx)
	if _, err := env.do(pctx, "GET /healthz", resp, err); err != nil {
		return nil, fmt.Errorf("backend %s unreachable: %w", cfg.BaseURL, err)
	}
	resp, err = env.Client.GetInfo(pctx)
	x, err := env.do(pctx, "GET /v1/info", resp, err)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", cfg.BaseURL, err)
	}
	switch x.Status {
	case http.StatusOK:
		var info noxapi.Info
		if err := json.Unmarshal(x.Body, &info); err == nil {
			run.info = &info
		} else {
			// Unreadable: test as a plain v1 backend; info/shape fails.
			run.info = &noxapi.Info{Extensions: []string{api.ExtInfo}}
		}
	case http.StatusUnauthorized:
		if cfg.Token == "" {
			return nil, fmt.Errorf("%w: backend %s requires a bearer token (GET /v1/info answered 401); configure one", ErrSuite, cfg.BaseURL)
		}
		return nil, fmt.Errorf("%w: backend %s refused the configured token (GET /v1/info answered 401)", ErrSuite, cfg.BaseURL)
	}
	return run, nil
}

// backendName describes the backend for reports.
func (r *runState) backendName() string {
	if r == nil {
		return "unknown backend"
	}
	if r.info == nil {
		return "plain v1 backend (no /v1/info)"
	}
	if r.info.Backend.Name == "" {
		return "backend with unreadable /v1/info"
	}
	return r.info.Backend.Name + " " + r.info.Backend.Version
}

func (r *runState) extensions() []string {
	if r == nil || r.info == nil {
		return []string{}
	}
	return slices.Clone(r.info.Extensions)
}

// selected returns the checks whose id matches cfg.Run.
func selected(cfg Config) ([]Check, error) {
	all := Checks()
	if err := validateRegistry(all); err != nil {
		return nil, fmt.Errorf("%w: registry: %w", ErrSuite, err)
	}
	if cfg.Run == "" {
		return all, nil
	}
	re, err := regexp.Compile(cfg.Run)
	if err != nil {
		return nil, fmt.Errorf("run pattern: %w", err)
	}
	var out []Check
	for _, c := range all {
		if re.MatchString(c.ID) {
			out = append(out, c)
		}
	}
	return out, nil
}

// skipReason says why c does not run, or "" when it runs.
func (r *runState) skipReason(c Check) string {
	cfg := r.cfg
	switch {
	case !cfg.Level.selects(c.Level):
		return fmt.Sprintf("level %s not selected (--level %s)", c.Level, cfg.Level)
	case c.Capability != "" && (r.info == nil || !slices.Contains(r.info.Extensions, c.Capability)):
		return fmt.Sprintf("backend does not advertise extension %q", c.Capability)
	case c.Slow && cfg.SkipSlow:
		return "slow check skipped"
	}
	return ""
}

// runCheck runs one check with its own Env and cleans up after it.
func (r *runState) runCheck(ctx context.Context, c Check) (res Result) {
	res = Result{ID: c.ID, Level: c.Level, Capability: c.Capability, Spec: c.Spec}
	start := time.Now()
	defer func() { res.Duration = time.Since(start) }()
	env, err := newEnv(r)
	if err != nil {
		res.Status, res.Message = StatusError, err.Error()
		return res
	}
	cctx, cancel := context.WithTimeout(ctx, r.cfg.CheckTimeout)
	defer cancel()
	var runErr error
	func() {
		defer func() {
			if p := recover(); p != nil {
				runErr = fmt.Errorf("%w: check panicked: %v\n%s", ErrSuite, p, debug.Stack())
			}
		}()
		runErr = c.Run(cctx, env)
	}()
	if runErr != nil && cctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
		runErr = fmt.Errorf("check did not finish within %s (the backend is too slow or hangs): %w", r.cfg.CheckTimeout, runErr)
	}
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer dcancel()
	cleanupErr := env.cleanup(dctx)
	violations := env.takeViolations()

	var skip *skipError
	if errors.As(runErr, &skip) && len(violations) == 0 && cleanupErr == nil {
		res.Status, res.Message = StatusSkip, skip.reason
		return res
	}
	all := append([]error{runErr}, violations...)
	all = append(all, cleanupErr)
	err = errors.Join(all...)
	switch {
	case err == nil:
		res.Status = StatusPass
	case ctx.Err() != nil:
		res.Status, res.Message = StatusError, fmt.Sprintf("run cancelled: %v\n%v", ctx.Err(), err)
	case errors.Is(err, ErrSuite):
		res.Status, res.Message = StatusError, err.Error()
	default:
		res.Status, res.Message = StatusFail, err.Error()
	}
	return res
}

// RunSuite runs the checks selected by cfg against the backend at
// cfg.BaseURL and returns the report. It returns an error only when cfg is
// invalid; a backend that cannot be reached gives a report whose checks all
// have StatusError. Parallel-safe checks run first, at most cfg.Parallelism
// at a time, then the others one by one.
func RunSuite(ctx context.Context, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	checks, err := selected(cfg)
	if err != nil {
		return nil, err
	}
	rep := &Report{BaseURL: cfg.BaseURL, Level: cfg.Level, IDPrefix: cfg.IDPrefix, Started: time.Now(), Extensions: []string{}}
	defer func() { rep.Duration = time.Since(rep.Started) }()
	rep.Results = make([]Result, len(checks))
	run, err := prepare(ctx, cfg)
	if err != nil {
		rep.Backend = "unknown backend"
		for i, c := range checks {
			rep.Results[i] = Result{ID: c.ID, Level: c.Level, Capability: c.Capability, Spec: c.Spec, Status: StatusError, Message: err.Error()}
		}
		return rep, nil
	}
	rep.Backend, rep.Extensions = run.backendName(), run.extensions()

	done := func(i int, res Result) {
		rep.Results[i] = res
		if cfg.Logf != nil {
			cfg.Logf("%-5s %s (%s)", res.Status, res.ID, roundDuration(res.Duration))
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, cfg.Parallelism)
	var serial []int
	for i, c := range checks {
		if why := run.skipReason(c); why != "" {
			rep.Results[i] = Result{ID: c.ID, Level: c.Level, Capability: c.Capability, Spec: c.Spec, Status: StatusSkip, Message: why}
			continue
		}
		if !c.Parallel {
			serial = append(serial, i)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			done(i, run.runCheck(ctx, c))
		}()
	}
	wg.Wait()
	for _, i := range serial {
		done(i, run.runCheck(ctx, checks[i]))
	}
	return rep, nil
}

// Run runs the suite as subtests of t, one per check (named by its id),
// against the backend at cfg.BaseURL: a check that fails is a test error
// listing every misbehaviour; checks the backend lacks the capability for,
// or whose level is not selected, are skipped; parallel-safe checks call
// t.Parallel. It fails t at once when cfg is invalid or the backend cannot
// be reached.
func Run(t *testing.T, cfg Config) {
	t.Helper()
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	checks, err := selected(cfg)
	if err != nil {
		t.Fatal(err)
	}
	run, err := prepare(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("conformance: %s at %s, extensions %v, id prefix %s", run.backendName(), cfg.BaseURL, run.extensions(), cfg.IDPrefix)
	sem := make(chan struct{}, cfg.Parallelism)
	for _, c := range checks {
		t.Run(c.ID, func(t *testing.T) {
			if why := run.skipReason(c); why != "" {
				t.Skip(why)
			}
			if c.Parallel {
				t.Parallel()
				sem <- struct{}{}
				defer func() { <-sem }()
			}
			res := run.runCheck(t.Context(), c)
			switch res.Status {
			case StatusFail:
				t.Errorf("%s (spec: %s):\n%s", c.ID, c.Spec, res.Message)
			case StatusError:
				t.Errorf("suite error in %s:\n%s", c.ID, res.Message)
			case StatusSkip:
				t.Skip(res.Message)
			}
		})
	}
}
