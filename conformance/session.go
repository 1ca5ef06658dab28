package conformance

import (
	"context"
	"slices"
)

// Session is one prepared run of the suite against one backend, for
// drivers other than [RunSuite] (package conformancetest runs each check
// as a Go subtest through it). Its methods are safe for concurrent use.
type Session struct {
	run    *runState
	checks []Check
}

// NewSession validates cfg, fills in its defaults, selects the checks and
// asks the backend what it is (GET /healthz, GET /v1/info). It returns an
// error when cfg or a check is invalid, or when the backend cannot be
// reached or refuses the configured token.
func NewSession(ctx context.Context, cfg Config) (*Session, error) {
	cfg, doc, checks, err := plan(ctx, cfg)
	if err != nil {
		return nil, err
	}
	run, err := prepare(ctx, cfg, doc)
	if err != nil {
		return nil, err
	}
	return &Session{run: run, checks: checks}, nil
}

// Config returns the session's configuration, defaults filled in.
func (s *Session) Config() Config { return s.run.cfg }

// Checks returns the checks the configuration selects, in order: the
// suite's own, then Config.ExtraChecks.
func (s *Session) Checks() []Check { return slices.Clone(s.checks) }

// Backend describes the backend: its name and version from GET /v1/info,
// or that it is a plain v1 backend.
func (s *Session) Backend() string { return s.run.backendName() }

// SpecVersion is the version of the contract the session tests
// (info.version of api/openapi.yaml).
func (s *Session) SpecVersion() string { return s.run.contract.version() }

// Extensions returns the extensions the backend advertises.
func (s *Session) Extensions() []string { return s.run.extensions() }

// SkipReason says why c does not run against this backend (its level is
// not selected, the backend does not advertise its capability, or it is
// slow and Config.SkipSlow is set), or "" when it runs.
func (s *Session) SkipReason(c Check) string {
	why, _ := s.run.skipReason(c)
	return why
}

// OutsideProfile reports whether c lies outside the run's profile (its
// level is not selected, or it needs an extension the backend does not
// advertise and the profile is not ProfileAll). A certified run fails on
// every other skip.
func (s *Session) OutsideProfile(c Check) bool {
	why, outside := s.run.skipReason(c)
	return why != "" && outside
}

// RunCheck runs c with an Env of its own, bounded by Config.CheckTimeout,
// deletes every sandbox it created and returns its result: pass, fail,
// skip (the check called [Skip]) or error (the suite broke). It does not
// look at SkipReason.
func (s *Session) RunCheck(ctx context.Context, c Check) Result { return s.run.runCheck(ctx, c) }
