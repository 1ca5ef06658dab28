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
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/gen/noxapi"
)

// skipError is returned by Skip and SkipUnclaimed.
type skipError struct {
	reason string
	// unclaimed: the backend declares it lacks what the check tests.
	unclaimed bool
}

func (s *skipError) Error() string { return "skipped: " + s.reason }

// Skip returns an error a check returns to say it cannot judge this backend
// (for example, a needed tool is missing in the sandbox); the check is
// reported as skipped with reason. A certified run fails on it.
func Skip(reason string) error { return &skipError{reason: reason} }

// SkipUnclaimed returns an error a check returns when the backend declares
// it lacks what the check tests, as csi-sanity skips a capability a driver
// does not claim: a limit it does not advertise, a resource limit it
// declares unenforced. The check is reported as skipped with reason,
// outside the run's profile, so a certified run does not fail on it.
func SkipUnclaimed(reason string) error { return &skipError{reason: reason, unclaimed: true} }

// plan checks cfg, fills in its defaults, loads the contract and selects
// the checks cfg.Run matches from the suite's own and cfg.ExtraChecks,
// after validating all of them.
func plan(ctx context.Context, cfg Config) (Config, *spec, []Check, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return cfg, nil, nil, err
	}
	c, err := loadContract(ctx)
	if err != nil {
		return cfg, nil, nil, fmt.Errorf("%w: %w", ErrSuite, err)
	}
	all := append(Checks(), cfg.ExtraChecks...)
	if err := validateChecks(all, c.operationIDs()); err != nil {
		return cfg, nil, nil, fmt.Errorf("%w: checks: %w", ErrSuite, err)
	}
	if cfg.Run == "" {
		return cfg, c, all, nil
	}
	re, err := regexp.Compile(cfg.Run)
	if err != nil {
		return cfg, nil, nil, fmt.Errorf("run pattern: %w", err)
	}
	var out []Check
	for _, ch := range all {
		if re.MatchString(ch.ID) {
			out = append(out, ch)
		}
	}
	return cfg, c, out, nil
}

// prepare asks the backend what it is. A backend that cannot be reached,
// or refuses the configured token, is an error.
func prepare(ctx context.Context, cfg Config, c *spec) (*runState, error) {
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

// resultOf returns the result of c with what the check says about itself
// filled in.
func resultOf(c Check, status Status, msg string) Result {
	return Result{
		ID: c.ID, Level: c.Level, Requirement: c.Requirement,
		Operations: slices.Clone(c.Operations), Extensions: slices.Clone(c.Extensions),
		Capability: c.Capability, Spec: c.Spec, Anchor: c.Anchor,
		Status: status, Message: msg,
	}
}

// runCheck runs one check with its own Env and cleans up after it.
func (r *runState) runCheck(ctx context.Context, c Check) (res Result) {
	res = resultOf(c, "", "")
	start := time.Now()
	defer func() { res.Duration = time.Since(start) }()
	env, err := newEnv(r)
	if err != nil {
		res.Status, res.Message = StatusError, err.Error()
		return res
	}
	cctx, cancel := context.WithTimeout(ctx, r.cfg.CheckTimeout)
	defer cancel()
	runErr := runGuarded(cctx, c, env)
	if runErr != nil && cctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
		runErr = fmt.Errorf("check did not finish within %s (the backend is too slow or hangs): %w", r.cfg.CheckTimeout, runErr)
	}
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer dcancel()
	cleanupErr := env.cleanup(dctx)
	env.mu.Lock()
	res.Notes = slices.Clone(env.notes)
	env.mu.Unlock()
	explicit, _, _ := collect(errors.Join(runErr, cleanupErr))
	violations := env.violations(explicit)

	var skip *skipError
	if errors.As(runErr, &skip) && len(violations) == 0 && cleanupErr == nil {
		res.Status, res.Message, res.OutsideProfile = StatusSkip, skip.reason, skip.unclaimed
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
		res.found = deviationsOf(c, err)
		for _, d := range res.found {
			res.Deviations = append(res.Deviations, d.ID)
		}
	}
	return res
}

// runGuarded runs c, turning a panic into a suite error.
func runGuarded(ctx context.Context, c Check, env *Env) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: check panicked: %v\n%s", ErrSuite, p, debug.Stack())
		}
	}()
	return c.Run(ctx, env)
}

// RunSuite runs the checks selected by cfg against the backend at
// cfg.BaseURL and returns the report. It returns an error only when cfg or
// a check is invalid; a backend that cannot be reached gives a report whose
// checks all have StatusError. Parallel-safe checks run first, at most
// cfg.Parallelism at a time, then the others one by one.
func RunSuite(ctx context.Context, cfg Config) (*Report, error) {
	cfg, doc, checks, err := plan(ctx, cfg)
	if err != nil {
		return nil, err
	}
	rep := &Report{BaseURL: cfg.BaseURL, SpecVersion: doc.version(), Level: cfg.Level, Profile: cfg.Profile, Certify: cfg.Certify,
		IDPrefix: cfg.IDPrefix, Started: time.Now(), Extensions: []string{}, Deviations: []Deviation{}}
	defer func() {
		rep.Duration = time.Since(rep.Started)
		rep.Deviations = Summarize(rep.Results)
	}()
	rep.Results = make([]Result, len(checks))
	run, err := prepare(ctx, cfg, doc)
	if err != nil {
		rep.Backend = "unknown backend"
		for i, c := range checks {
			rep.Results[i] = resultOf(c, StatusError, err.Error())
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
		if why, outside := run.skipReason(c); why != "" {
			rep.Results[i] = resultOf(c, StatusSkip, why)
			rep.Results[i].OutsideProfile = outside
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
