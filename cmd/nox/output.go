package main

import (
	"bytes"
	"encoding/json"
	"fmt"
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

// expiresSuffix is ", expires <time>" for a known expiry, else nothing: a
// plain v1 backend may not say.
func expiresSuffix(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return ", expires " + timeOrDash(t)
}

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

// aboutSandbox is printed as the JSON object of v with "sessionId": id as
// its first member: how nox prints a result about one sandbox.
type aboutSandbox struct {
	id string
	v  any
}

// MarshalJSON encodes s, leaving HTML characters as they are (printJSON
// does not escape them either).
func (s aboutSandbox) MarshalJSON() ([]byte, error) {
	id, err := compactJSON(s.id)
	if err != nil {
		return nil, err
	}
	obj, err := compactJSON(s.v)
	if err != nil {
		return nil, err
	}
	if len(obj) < 2 || obj[0] != '{' {
		return nil, fmt.Errorf("the JSON form of %T is not an object", s.v)
	}
	out := append([]byte(`{"sessionId":`), id...)
	if len(obj) > 2 {
		out = append(out, ',')
	}
	return append(out, obj[1:]...), nil
}

// compactJSON encodes v without escaping HTML characters.
func compactJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
