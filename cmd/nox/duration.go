package main

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// durationHint is how every time flag of the client commands is written.
const durationHint = "want seconds (300) or a duration (90s, 5m, 1h30m)"

// duration is the value of a time flag: a plain integer is a number of
// seconds (what --ttl and --timeout-seconds always took), anything else a
// Go duration such as 90s, 5m or 1h30m. Negative values are refused.
type duration struct{ d time.Duration }

// Set parses s.
func (v *duration) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return err
	}
	v.d = d
	return nil
}

// String formats the value the way it is accepted.
func (v *duration) String() string {
	if v == nil || v.d == 0 {
		return "0"
	}
	return v.d.String()
}

// parseDuration parses a time flag's value.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, errors.New("must not be negative")
		}
		if n > int64(time.Duration(1<<63-1)/time.Second) {
			return 0, errors.New("too large")
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New(durationHint)
	}
	if d < 0 {
		return 0, errors.New("must not be negative")
	}
	return d, nil
}

// durationFlag is a time flag (see duration). def is its default; when it
// is zero the flag shows defText (e.g. "the backend's") as its default.
func durationFlag(name string, aliases []string, def time.Duration, defText, usage string) *cli.GenericFlag {
	f := &cli.GenericFlag{Name: name, Aliases: aliases, Value: &duration{d: def}, DefaultText: defText,
		Usage: usage + " (seconds or a duration: 90s, 5m)"}
	if defText == "" {
		f.DefaultText = (&duration{d: def}).String()
	}
	return f
}

// durationOf returns the value of the time flag name, looked up in c and
// its parents.
func durationOf(c *cli.Context, name string) time.Duration {
	if v, ok := c.Generic(name).(*duration); ok && v != nil {
		return v.d
	}
	return 0
}

// lenientDurations returns flags with every cli.DurationFlag replaced by
// a time flag that also takes plain seconds, so that all of nox's time
// flags read alike (serve --max-ttl 3600 or 1h). c.Duration still reads
// them: it parses the value's String, a Go duration.
func lenientDurations(flags []cli.Flag) []cli.Flag {
	out := make([]cli.Flag, len(flags))
	for i, f := range flags {
		df, ok := f.(*cli.DurationFlag)
		if !ok {
			out[i] = f
			continue
		}
		g := &cli.GenericFlag{Name: df.Name, Aliases: df.Aliases, Usage: df.Usage, Category: df.Category,
			EnvVars: df.EnvVars, Hidden: df.Hidden, Required: df.Required, DefaultText: df.DefaultText,
			Value: &duration{d: df.Value}}
		if g.DefaultText == "" {
			g.DefaultText = g.Value.String()
		}
		out[i] = g
	}
	return out
}
