package conformance

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"time"
)

// Level is the specification level of a check, or, in [Config], the highest
// level a run selects.
type Level string

// The levels. A check has LevelMinimum, LevelRecommended or LevelExtension;
// a Config selects LevelMinimum, LevelRecommended or LevelAll.
const (
	// LevelMinimum is behaviour every backend must have.
	LevelMinimum Level = "minimum"
	// LevelRecommended is behaviour backends should have; existing clients
	// rely on it. Selecting it also selects LevelMinimum.
	LevelRecommended Level = "recommended"
	// LevelExtension is an optional nox extension, tested only when the
	// backend advertises it in GET /v1/info.
	LevelExtension Level = "extension"
	// LevelAll selects every level, extensions included.
	LevelAll Level = "all"
)

// ParseLevel parses a level selection as given to nox conformance --level:
// "minimum", "recommended" or "all" ("extension" is accepted as "all").
func ParseLevel(s string) (Level, error) {
	switch Level(s) {
	case LevelMinimum, LevelRecommended, LevelAll:
		return Level(s), nil
	case LevelExtension:
		return LevelAll, nil
	}
	return "", fmt.Errorf("level %q: want minimum, recommended or all", s)
}

// rank orders levels: a check runs when its rank is at most the selection's.
func (l Level) rank() int {
	switch l {
	case LevelMinimum:
		return 0
	case LevelRecommended:
		return 1
	default:
		return 2
	}
}

// selects reports whether a run at selection l runs checks of level c.
func (l Level) selects(c Level) bool { return c.rank() <= l.rank() }

// Config configures a conformance run. Build one with [NewConfig] and set
// BaseURL; the zero values of the other fields mean their defaults.
type Config struct {
	// BaseURL is the backend's base URL, for example "http://127.0.0.1:8080".
	// Paths such as /v1/sandboxes are appended to it. Required.
	BaseURL string

	// Token is the bearer token sent as "Authorization: Bearer <Token>" on
	// every /v1/ request. Empty sends no Authorization header. When set, the
	// auth checks also verify that requests without it are refused.
	Token string

	// HTTPClient sends the requests. Nil means a client of its own with no
	// overall timeout (RequestTimeout bounds each request instead).
	HTTPClient *http.Client

	// Level is the highest level to test: LevelMinimum, LevelRecommended or
	// LevelAll (the default). Checks above it are reported as skipped,
	// outside the run's selection. Profile, when set, decides it instead.
	Level Level

	// Profile, when set, selects the checks instead of Level: ProfileCore
	// (what LevelRecommended selects), ProfileExtended (what LevelAll
	// selects) or ProfileAll (every check; an extension the backend does
	// not advertise is a skip inside the profile). Empty means the profile
	// Level stands for: recommended is core, all is extended, minimum has
	// none.
	Profile Profile

	// Certify makes the run a certification: a skip of a check inside the
	// run's profile (a slow check, a check that cannot judge this backend
	// or configuration, an extension not advertised under ProfileAll)
	// fails the run, as in Kubernetes' no-skip certified runs. A certified
	// run runs the whole profile: Run and SkipSlow must be unset.
	Certify bool

	// Run, when non-empty, is a regular expression; only checks whose id it
	// matches run (like go test -run, but unanchored and over the whole id).
	// The others are left out of the report.
	Run string

	// SkipSlow skips checks marked slow: sandbox/ttl-expiry waits for a
	// sandbox to expire, exec/stream-heartbeat for a silent command to
	// outlast the heartbeat interval, exec/output-not-blocking has a
	// command write 50 MB.
	SkipSlow bool

	// Parallelism bounds how many parallel-safe checks run at once in
	// RunSuite. Default 4. Under go test, -parallel bounds it as well.
	Parallelism int

	// RequestTimeout bounds each HTTP request. Default 2 minutes.
	RequestTimeout time.Duration

	// CheckTimeout bounds each check, including its cleanup. Default 3
	// minutes.
	CheckTimeout time.Duration

	// TimeoutGrace is how long after its timeoutSeconds an exec may still
	// answer, and how long its processes may take to die. Default 5s.
	TimeoutGrace time.Duration

	// ExpiryGrace is how long after its expiresAt an idle sandbox may still
	// exist before the TTL check fails. Default 30s. Without extension
	// sandboxes.get the check cannot look without refreshing the TTL, so
	// it waits the whole grace before its one probe.
	ExpiryGrace time.Duration

	// ClockSkew is the tolerated difference between the backend's clock and
	// this machine's when timestamps are compared. Default 5s.
	ClockSkew time.Duration

	// Image, when set, is sent as "image" in every create the suite makes
	// (the commands need sh and the usual POSIX tools: sleep, head, tr,
	// stat, sha256sum, cat, ls, mv, wc; the terminal checks also stty,
	// and skip without it). Empty uses the backend's default image.
	Image string

	// EgressTarget is an http URL whose host (a name, ideally) the
	// backend's sandboxes can reach when a network policy allows it, for
	// the network.egress checks that need a reachable destination
	// (net/allowlist, net/change-running skip without one). It must answer
	// GET with 200.
	EgressTarget string

	// IDPrefix starts every session id the suite creates. Empty means
	// "nox-conf-" plus random hex characters, new for every run, so runs
	// against a shared backend do not collide.
	IDPrefix string

	// Logf, when set, receives progress messages (one per check end).
	Logf func(format string, args ...any)

	// ExtraChecks are checks of a third party's own, run after the suite's
	// checks ([Checks]) under the same rules: Run, Level and SkipSlow
	// select them, and their ids must differ from every other check's.
	ExtraChecks []Check
}

// NewConfig returns a Config with every default filled in; set BaseURL (and
// Token when the backend requires one) before use.
func NewConfig() Config {
	return Config{
		Level:          LevelAll,
		Parallelism:    4,
		RequestTimeout: 2 * time.Minute,
		CheckTimeout:   3 * time.Minute,
		TimeoutGrace:   5 * time.Second,
		ExpiryGrace:    30 * time.Second,
		ClockSkew:      5 * time.Second,
	}
}

// withDefaults returns c with zero fields replaced by the defaults of
// NewConfig and a fresh IDPrefix, or an error when c is unusable.
func (c Config) withDefaults() (Config, error) {
	d := NewConfig()
	if c.Level == "" {
		c.Level = d.Level
	}
	if c.Parallelism <= 0 {
		c.Parallelism = d.Parallelism
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.CheckTimeout <= 0 {
		c.CheckTimeout = d.CheckTimeout
	}
	if c.TimeoutGrace <= 0 {
		c.TimeoutGrace = d.TimeoutGrace
	}
	if c.ExpiryGrace <= 0 {
		c.ExpiryGrace = d.ExpiryGrace
	}
	if c.ClockSkew <= 0 {
		c.ClockSkew = d.ClockSkew
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.IDPrefix == "" {
		b := make([]byte, 4)
		if _, err := rand.Read(b); err != nil {
			return c, fmt.Errorf("random id prefix: %w", err)
		}
		c.IDPrefix = "nox-conf-" + hex.EncodeToString(b)
	}
	var errs []error
	if c.BaseURL == "" {
		errs = append(errs, errors.New("BaseURL: required"))
	} else if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("BaseURL %q: want an absolute http or https URL", c.BaseURL))
	}
	if l, err := ParseLevel(string(c.Level)); err != nil {
		errs = append(errs, fmt.Errorf("Level: %w", err))
	} else {
		c.Level = l
	}
	if c.Profile != "" {
		if _, err := ParseProfile(string(c.Profile)); err != nil {
			errs = append(errs, fmt.Errorf("Profile: %w", err))
		}
		c.Level = c.Profile.level()
	} else {
		c.Profile = profileOf(c.Level)
	}
	if c.Certify && (c.Run != "" || c.SkipSlow) {
		errs = append(errs, errors.New("certify: a certified run runs every check of its profile; unset Run and SkipSlow"))
	}
	if c.Run != "" {
		if _, err := regexp.Compile(c.Run); err != nil {
			errs = append(errs, fmt.Errorf("run pattern: %w", err))
		}
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("conformance config: %w", errors.Join(errs...))
	}
	return c, nil
}
