package conformance

import (
	"fmt"
	"slices"
	"strings"
)

// Deviation is one way a backend departs from the contract. A report
// names each deviation once, with every check it made fail: a backend
// whose timestamps are not RFC 3339 has one deviation, whichever checks
// saw such timestamps. Each check fails only on its own subject: what a
// check's set-up steps run into (creating its sandbox, running helper
// commands) is left to the checks of those operations.
type Deviation struct {
	// ID names the deviation. A deviation of one check's own subject has
	// the id "check:" and the check's id; one that several checks can see
	// has an id of its own, e.g. "timestamps" (timestamps that are not
	// RFC 3339 strings), "unknown-sandbox" (requests naming an unknown
	// sandbox not answered 404), "upload-chunked" (uploads without
	// Content-Length refused), "status:createSandbox:201" (an operation
	// answering a status other than the contract's),
	// "schema:execInSandbox:/durationMs" (a field of an answer not matching
	// its schema) or "error-body:404" (errors that are not JSON Errors).
	ID string `json:"id"`
	// Requirement is how strongly the contract asks for what the backend
	// does not do: the strongest requirement among the checks' findings.
	Requirement Requirement `json:"requirement"`
	// Title describes the deviation in one line.
	Title string `json:"title"`
	// Anchor points to the clause of the specification departed from.
	Anchor string `json:"anchor"`
	// Checks are the ids of the checks the deviation made fail, in check
	// order.
	Checks []string `json:"checks"`
	// Repro is a one-line reproduction: the request (method, path, body)
	// and what was observed against what was expected.
	Repro string `json:"repro"`
}

// ownPrefix starts the id of a deviation of one check's own subject.
const ownPrefix = "check:"

// deviationsOf names the deviations err (the failure of check c) shows:
// one per key its findings carry, and one for the rest, the check's own
// subject.
func deviationsOf(c Check, err error) []Deviation {
	fs, tops, plain := collect(err)
	var out []Deviation
	seen := map[string]bool{}
	var ownTitles []string
	ownRepro := ""
	for i, f := range fs {
		if f.key == "" {
			ownTitles = append(ownTitles, firstLine(tops[i].Error()))
			if ownRepro == "" && f.x != nil {
				ownRepro = repro(f)
			}
			continue
		}
		if seen[f.key] {
			continue
		}
		seen[f.key] = true
		d := Deviation{ID: f.key, Requirement: f.req, Title: f.title, Anchor: f.anchor, Checks: []string{c.ID}}
		if d.Requirement == "" {
			d.Requirement = c.Requirement
		}
		if d.Anchor == "" {
			d.Anchor = c.Anchor
		}
		if f.x != nil {
			d.Repro = repro(f)
		}
		out = append(out, d)
	}
	for _, p := range plain {
		ownTitles = append(ownTitles, firstLine(p.Error()))
	}
	if len(ownTitles) == 0 {
		return out
	}
	title := ownTitles[0]
	if n := len(ownTitles) - 1; n > 0 {
		title += fmt.Sprintf(" (and %d more)", n)
	}
	if ownRepro == "" {
		ownRepro = "run the check alone: nox conformance --run '^" + c.ID + "$'"
	}
	own := Deviation{ID: ownPrefix + c.ID, Requirement: c.Requirement, Title: title, Anchor: c.Anchor,
		Checks: []string{c.ID}, Repro: ownRepro}
	return append([]Deviation{own}, out...)
}

// Summarize merges the deviations of results (in order) into the run's
// deviation summary: each deviation once, with every check it affected.
func Summarize(results []Result) []Deviation {
	out := []Deviation{}
	at := map[string]int{}
	for _, r := range results {
		for _, d := range r.found {
			i, ok := at[d.ID]
			if !ok {
				at[d.ID] = len(out)
				d.Checks = slices.Clone(d.Checks)
				out = append(out, d)
				continue
			}
			m := &out[i]
			if !slices.Contains(m.Checks, r.ID) {
				m.Checks = append(m.Checks, r.ID)
			}
			if d.Requirement == Must {
				m.Requirement = Must
			}
		}
	}
	return out
}

// reproLimit bounds the request body shown in a reproduction.
const reproLimit = 120

// repro is f's one-line reproduction.
func repro(f *finding) string {
	x := f.x
	var b strings.Builder
	b.WriteString(x.Method + " " + x.URL)
	switch {
	case len(x.ReqBody) > 0:
		b.WriteString(" " + clip(showBody(x.ReqHeader.Get("Content-Type"), x.ReqBody), reproLimit))
	case x.sent != nil:
		fmt.Fprintf(&b, " <streamed body, %d bytes>", x.sent.Load())
	}
	obs := f.observed
	switch {
	case x.Err != nil && obs == "":
		obs = "no response: " + x.Err.Error()
	case obs == "":
		obs = fmt.Sprintf("status %d %s", x.Status, bodyExcerpt(x))
	}
	b.WriteString(": observed " + obs)
	if f.expected != "" {
		b.WriteString("; expected " + f.expected)
	}
	return b.String()
}
