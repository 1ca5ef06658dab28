package main

import (
	"io"
	"os"
	"time"
)

// painter colours text for a terminal; its zero value does not colour.
type painter struct{ on bool }

// newPainter colours output written to w when w is a terminal, NO_COLOR
// is unset and --no-color was not given.
func newPainter(w io.Writer, noColor bool) painter {
	noColorEnv := os.Getenv("NO_COLOR") != ""
	return painter{on: !noColor && !noColorEnv && isTerminal(w)}
}

func (p painter) wrap(code, s string) string {
	if !p.on {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (p painter) red(s string) string    { return p.wrap("31", s) }
func (p painter) green(s string) string  { return p.wrap("32", s) }
func (p painter) yellow(s string) string { return p.wrap("33", s) }
func (p painter) bold(s string) string   { return p.wrap("1", s) }
func (p painter) dim(s string) string    { return p.wrap("2", s) }

// timeOrDash formats t in RFC 3339 (UTC), or "-" when zero.
func timeOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// jsonTime formats t for JSON output, or "" when zero.
func jsonTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
