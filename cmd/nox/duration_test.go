package main

import (
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"0", 0, ""},
		{"5", 5 * time.Second, ""},
		{"300", 5 * time.Minute, ""},
		{" 30 ", 30 * time.Second, ""},
		{"5m", 5 * time.Minute, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"90s", 90 * time.Second, ""},
		{"1.5s", 1500 * time.Millisecond, ""},
		{"-1", 0, "must not be negative"},
		{"-5m", 0, "must not be negative"},
		{"5x", 0, "want seconds (300) or a duration"},
		{"", 0, "want seconds (300) or a duration"},
		{"99999999999999999", 0, "too large"},
	} {
		got, err := parseDuration(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parseDuration(%q) = %v, %v; want an error containing %q", tc.in, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("parseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestLongFlags(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`invalid value "5m" for flag -ttl: parse error`:   `invalid value "5m" for flag --ttl: parse error`,
		`flag provided but not defined: -no-such-flag`:    `flag provided but not defined: --no-such-flag`,
		`flag needs an argument: -e`:                      `flag needs an argument: -e`,
		`flag needs an argument: -cmd-timeout`:            `flag needs an argument: --cmd-timeout`,
		`invalid value "-15" for flag -timeout: negative`: `invalid value "-15" for flag --timeout: negative`,
		`invalid boolean value "x" for -wait: bad`:        `invalid boolean value "x" for --wait: bad`,
	} {
		if got := longFlags(in); got != want {
			t.Errorf("longFlags(%q)\n got %q\nwant %q", in, got, want)
		}
	}
}

// TestLenientDurations checks that a command's cli.DurationFlag, once
// made lenient, takes plain seconds and is still read by c.Duration. Not
// parallel: see nox.
func TestLenientDurations(t *testing.T) {
	for in, want := range map[string]time.Duration{"90": 90 * time.Second, "1h": time.Hour, "": 5 * time.Minute} {
		var got time.Duration
		app := &cli.App{Name: "x", Commands: []*cli.Command{{
			Name:   "serve",
			Flags:  lenientDurations([]cli.Flag{&cli.DurationFlag{Name: "max-ttl", Value: 5 * time.Minute}}),
			Action: func(c *cli.Context) error { got = c.Duration("max-ttl"); return nil },
		}}}
		args := []string{"x", "serve"}
		if in != "" {
			args = append(args, "--max-ttl", in)
		}
		if err := app.Run(args); err != nil || got != want {
			t.Errorf("serve --max-ttl %q: %v, %v; want %v", in, got, err, want)
		}
	}
}
