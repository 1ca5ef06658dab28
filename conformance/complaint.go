package conformance

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// aspect is the part of a response a finding is about. An explicit
// finding of a check about one aspect of a response replaces the
// validator's complaints about the same aspect of it.
type aspect string

const (
	aspectNone   aspect = ""
	aspectStatus aspect = "status"
	aspectBody   aspect = "body"
	aspectHeader aspect = "header"
)

// complaint is one way a response breaks the contract, as the validator
// found it. Its key names the deviation across checks (see [Deviation]).
type complaint struct {
	aspect             aspect
	key, title, anchor string
	observed, expected string
	// text is the validator's message.
	text string
}

// Keys of the deviations the suite names wherever they are seen.
const (
	// keyTimestamps: timestamps that are not RFC 3339 strings.
	keyTimestamps = "timestamps"
	// keyUnknownSandbox: a request for an unknown sandbox not answered 404.
	keyUnknownSandbox = "unknown-sandbox"
	// keyUploadChunked: uploads without Content-Length refused.
	keyUploadChunked = "upload-chunked"
)

// statusKey names a status deviation of an operation.
func statusKey(op string, status int) string { return fmt.Sprintf("status:%s:%d", op, status) }

// errorBodyKey names error answers with status that are not JSON Errors.
func errorBodyKey(status int) string { return fmt.Sprintf("error-body:%d", status) }

// timestampFields are the response fields holding timestamps.
var timestampFields = []string{"expiresAt", "createdAt", "lastActiveAt"}

// exampleTimestamp is what a timestamp should look like.
const exampleTimestamp = "an RFC 3339 date-time string such as \"2026-12-02T01:17:27.883767Z\""

// violationOf classifies the validator's findings about one response.
type violationOf struct {
	op     operation
	status int
	header http.Header
	route  *routers.Route
}

// classify turns a validation error into complaints.
func (v violationOf) classify(err error) []complaint {
	if me, ok := err.(openapi3.MultiError); ok {
		var out []complaint
		for _, e := range me {
			out = append(out, v.classify(e)...)
		}
		return out
	}
	var re *openapi3filter.ResponseError
	if !errors.As(err, &re) {
		return []complaint{v.other(err.Error())}
	}
	switch {
	case re.Reason == "status is not supported":
		return []complaint{v.undeclaredStatus()}
	case strings.Contains(re.Reason, "Content-Type has unexpected value"):
		return []complaint{v.contentType(re.Reason, v.header.Get("Content-Type"))}
	case strings.HasPrefix(re.Reason, "response body doesn't match schema") && re.Err != nil:
		var inner openapi3.MultiError
		if !errors.As(re.Err, &inner) {
			inner = openapi3.MultiError{re.Err}
		}
		var out []complaint
		for _, e := range inner {
			var se *openapi3.SchemaError
			if errors.As(e, &se) {
				out = append(out, v.schema(re.Reason, se))
			} else {
				out = append(out, v.other(re.Reason+": "+e.Error()))
			}
		}
		return out
	case strings.HasPrefix(re.Reason, "response header"):
		return []complaint{v.headerComplaint(re)}
	case re.Err != nil:
		return []complaint{v.other(re.Reason + ": " + re.Err.Error())}
	}
	return []complaint{v.other(re.Reason)}
}

func (v violationOf) prefix(text string) string { return v.op.name + ": " + text }

func (v violationOf) undeclaredStatus() complaint {
	var declared []string
	for code := range v.route.Operation.Responses.Map() {
		declared = append(declared, code)
	}
	slices.Sort(declared)
	return complaint{
		aspect: aspectStatus, key: statusKey(v.op.id, v.status),
		title:    fmt.Sprintf("%s answers %d, which the contract does not declare", v.op.name, v.status),
		anchor:   v.op.anchor + "/responses",
		observed: fmt.Sprintf("status %d", v.status), expected: "a declared status (" + strings.Join(declared, ", ") + ")",
		text: v.prefix("status is not supported"),
	}
}

func (v violationOf) contentType(text, ct string) complaint {
	c := complaint{
		aspect: aspectBody, key: fmt.Sprintf("content-type:%s:%d", v.op.id, v.status),
		title:    fmt.Sprintf("%s answers %d with Content-Type %q, which the contract does not declare", v.op.name, v.status, ct),
		anchor:   fmt.Sprintf("%s/responses/%d", v.op.anchor, v.status),
		observed: fmt.Sprintf("Content-Type %q", ct), expected: "the declared Content-Type",
		text: v.prefix(text),
	}
	if v.status >= 400 {
		c.key, c.title, c.anchor = errorBodyKey(v.status), errorBodyTitle(v.status), anchorError
		c.expected = `application/json {"error": "<message>"}`
	}
	return c
}

func (v violationOf) schema(reason string, se *openapi3.SchemaError) complaint {
	ptr := "/" + strings.Join(se.JSONPointer(), "/")
	c := complaint{
		aspect: aspectBody, key: "schema:" + v.op.id + ":" + withoutIndexes(ptr),
		title:    fmt.Sprintf("%s %d: %s: %s", v.op.name, v.status, withoutIndexes(ptr), se.Reason),
		anchor:   fmt.Sprintf("%s/responses/%d", v.op.anchor, v.status),
		observed: ptr + " = " + jsonText(se.Value), expected: se.Reason,
		text: v.prefix(reason + ": " + se.Error()),
	}
	switch {
	case v.status >= 400:
		c.key, c.title, c.anchor = errorBodyKey(v.status), errorBodyTitle(v.status), anchorError
	case se.Schema != nil && se.Schema.Format == "date-time":
		c.key, c.title, c.expected = keyTimestamps, timestampsTitle, exampleTimestamp
	}
	return c
}

func (v violationOf) headerComplaint(re *openapi3filter.ResponseError) complaint {
	name := re.Reason
	if i, j := strings.IndexByte(name, '"'), strings.LastIndexByte(name, '"'); i >= 0 && j > i {
		name = name[i+1 : j]
	}
	text := re.Reason
	if re.Err != nil {
		text += ": " + re.Err.Error()
	}
	return complaint{
		aspect: aspectHeader, key: "header:" + v.op.id + ":" + name,
		title:    fmt.Sprintf("%s %d: %s", v.op.name, v.status, re.Reason),
		anchor:   fmt.Sprintf("%s/responses/%d/headers", v.op.anchor, v.status),
		observed: fmt.Sprintf("%s: %q", name, v.header.Get(name)), expected: "the declared header",
		text: v.prefix(text),
	}
}

func (v violationOf) other(text string) complaint {
	c := complaint{
		aspect: aspectBody, key: fmt.Sprintf("contract:%s:%d", v.op.id, v.status),
		title:    fmt.Sprintf("%s %d: %s", v.op.name, v.status, firstLine(text)),
		anchor:   fmt.Sprintf("%s/responses/%d", v.op.anchor, v.status),
		observed: firstLine(text), expected: "a response matching the contract",
		text: v.prefix(text),
	}
	if v.status >= 400 {
		c.key, c.title, c.anchor = errorBodyKey(v.status), errorBodyTitle(v.status), anchorError
	}
	return c
}

const timestampsTitle = "timestamps are not RFC 3339 date-time strings"

func errorBodyTitle(status int) string {
	return fmt.Sprintf(`error answers (%d) are not JSON Error bodies {"error": "<message>"}`, status)
}

// timestamps checks the timestamp fields of a JSON body: each must be an
// RFC 3339 string. It reports the first that is not.
func (v violationOf) timestamps(body []byte) []complaint {
	var doc any
	if json.Unmarshal(body, &doc) != nil {
		return nil
	}
	field, val, ok := badTimestamp(doc)
	if !ok {
		return nil
	}
	return []complaint{{
		aspect: aspectBody, key: keyTimestamps, title: timestampsTitle,
		anchor:   fmt.Sprintf("%s/responses/%d", v.op.anchor, v.status),
		observed: field + " " + jsonText(val), expected: exampleTimestamp,
		text: v.prefix(fmt.Sprintf("%s is not RFC 3339 (want %s)", field, exampleTimestamp)),
	}}
}

// badTimestamp finds, depth first, a timestamp field of doc whose value is
// not an RFC 3339 string.
func badTimestamp(doc any) (string, any, bool) {
	switch d := doc.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(d)) {
			v := d[k]
			if slices.Contains(timestampFields, k) && v != nil {
				s, isString := v.(string)
				if _, err := time.Parse(time.RFC3339Nano, s); !isString || err != nil {
					return k, v, true
				}
				continue
			}
			if f, bad, ok := badTimestamp(v); ok {
				return f, bad, true
			}
		}
	case []any:
		for _, v := range d {
			if f, bad, ok := badTimestamp(v); ok {
				return f, bad, true
			}
		}
	}
	return "", nil, false
}

// withoutIndexes drops the array indexes of a JSON pointer:
// /items/3/expiresAt becomes /items/expiresAt.
func withoutIndexes(ptr string) string {
	parts := strings.Split(ptr, "/")
	out := parts[:0]
	for _, p := range parts {
		if _, err := strconv.Atoi(p); err != nil {
			out = append(out, p)
		}
	}
	return strings.Join(out, "/")
}

// jsonText renders a decoded JSON value compactly.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return truncate(string(b), len(b))
}
