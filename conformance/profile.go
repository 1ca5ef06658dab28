package conformance

import (
	"fmt"
	"slices"
	"strings"
)

// Profile selects the checks of a run the way mature conformance programs
// do (Gateway API's Core and Extended support levels, csi-sanity's
// capability skips). A check outside the run's profile is reported as
// skipped, marked outside the profile; a certified run ([Config.Certify])
// fails on any other skip.
type Profile string

// The profiles.
const (
	// ProfileCore is NoxRunner v1: the minimum and recommended checks.
	// It selects what LevelRecommended selects.
	ProfileCore Profile = "core"
	// ProfileExtended is core plus the checks of every extension the
	// backend advertises in GET /v1/info; the others lie outside the
	// profile. It selects what LevelAll selects.
	ProfileExtended Profile = "extended"
	// ProfileAll is every check: an extension the backend does not
	// advertise is a skip inside the profile (a failure when certifying).
	ProfileAll Profile = "all"
)

// Profiles returns the profile names ParseProfile accepts.
func Profiles() []string {
	return []string{string(ProfileCore), string(ProfileExtended), string(ProfileAll)}
}

// ParseProfile parses a profile as given to nox conformance --profile.
func ParseProfile(s string) (Profile, error) {
	if slices.Contains(Profiles(), s) {
		return Profile(s), nil
	}
	return "", fmt.Errorf("profile %q: want %s", s, strings.Join(Profiles(), ", "))
}

// level is the level selection of a profile.
func (p Profile) level() Level {
	if p == ProfileCore {
		return LevelRecommended
	}
	return LevelAll
}

// profileOf is the profile a level selection stands for: recommended is
// core, all is extended; minimum has none ("").
func profileOf(l Level) Profile {
	switch l {
	case LevelRecommended:
		return ProfileCore
	case LevelAll:
		return ProfileExtended
	}
	return ""
}

// skipReason says why c does not run ("" when it runs), and whether it
// lies outside the run's profile (a level not selected, or an extension
// the backend does not advertise under core or extended) rather than
// being skipped inside it.
func (r *runState) skipReason(c Check) (reason string, outside bool) {
	cfg := r.cfg
	switch {
	case !cfg.Level.selects(c.Level):
		return fmt.Sprintf("level %s not selected (%s)", c.Level, r.selection()), true
	case c.Capability != "" && !r.advertises(c.Capability):
		return fmt.Sprintf("backend does not advertise extension %q", c.Capability), cfg.Profile != ProfileAll
	case c.Slow && cfg.SkipSlow:
		return "slow check skipped", false
	}
	return "", false
}

// selection names the run's selection: its profile, or its level.
func (r *runState) selection() string {
	if r.cfg.Profile != "" {
		return "profile " + string(r.cfg.Profile)
	}
	return "level " + string(r.cfg.Level)
}

func (r *runState) advertises(ext string) bool {
	return r.info != nil && slices.Contains(r.info.Extensions, ext)
}
