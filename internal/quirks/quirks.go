// Package quirks reproduces, in front of any NoxRunner handler, the ways
// real backends that nox's authors did not write depart from nox's own
// server while staying within what the Python NoxRunner client accepts:
// other timestamp forms, 201 and 204 answers, fractional numbers,
// Content-Length-only uploads, implicit creates and no extensions. The SDK,
// CLI and conformance tests run against it so that this class of
// interoperability bug cannot come back.
package quirks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// TimeForm is how a quirky backend writes timestamps.
type TimeForm int

// The timestamp forms seen in real backends.
const (
	// TimeRFC3339 leaves timestamps as they are.
	TimeRFC3339 TimeForm = iota
	// TimeOffsetAndZ writes an offset and a redundant Z, as Python's
	// datetime.isoformat() + "Z" does: 2026-12-02T01:17:27.883767+00:00Z.
	TimeOffsetAndZ
	// TimeNoZone writes no zone at all: 2026-12-02T01:17:27.883767.
	TimeNoZone
	// TimeEpochSeconds writes a JSON number of seconds since the epoch.
	TimeEpochSeconds
)

// Quirks selects the departures a wrapped handler shows.
type Quirks struct {
	// Time is the timestamp form of JSON answers.
	Time TimeForm
	// Create201 answers a successful create with 201.
	Create201 bool
	// Upload204 and Touch204 answer them with 204 and no body.
	Upload204, Touch204 bool
	// FractionalNumbers writes durationMs with a fraction (1.5).
	FractionalNumbers bool
	// ContentLengthOnly reads request bodies by Content-Length only: a
	// chunked body arrives empty and is answered 400.
	ContentLengthOnly bool
	// ImplicitCreate creates an unknown sandbox on exec, touch, upload and
	// download instead of answering 404.
	ImplicitCreate bool
	// NoExtensions hides every extension: /v1/info, get, list, the
	// exec stream and the files API (/fs/...) answer 404 like a plain v1 backend's router.
	NoExtensions bool
	// ArgvPathsUnmapped maps a command's working directory but not the
	// paths in its argv, as a backend that runs commands in a host
	// directory it passes as the working directory does: /workspace in
	// argv names a directory that does not exist, so `cd /workspace`
	// fails while relative paths and workdir /workspace work.
	ArgvPathsUnmapped bool
}

// unmappedWorkspace is what /workspace in argv becomes with
// ArgvPathsUnmapped: a path no backend maps and no host has.
const unmappedWorkspace = "/.unmapped-workspace"

// All returns every quirk, with timestamps in form t.
func All(t TimeForm) Quirks {
	return Quirks{Time: t, Create201: true, Upload204: true, Touch204: true, FractionalNumbers: true,
		ContentLengthOnly: true, ImplicitCreate: true, NoExtensions: true}
}

var (
	sandboxPath = regexp.MustCompile(`^(.*)/v1/sandboxes/([^/]+)(/.*)?$`)
	timeField   = regexp.MustCompile(`"(expiresAt|createdAt|lastActiveAt)":"([^"]+)"`)
	duration    = regexp.MustCompile(`"durationMs":(\d+)`)
)

// Wrap returns h with the quirks q.
func Wrap(h http.Handler, q Quirks) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := sandboxPath.FindStringSubmatch(r.URL.Path)
		op := ""
		if m != nil {
			op = r.Method + " " + m[3]
		}
		if q.NoExtensions && isExtension(r, m) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, "404 page not found\n")
			return
		}
		if q.ContentLengthOnly && r.ContentLength < 0 && r.Method != http.MethodGet {
			// What a server reading Content-Length only sees: no body.
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"request body is empty"}`)
			return
		}
		if q.ArgvPathsUnmapped && (op == "POST /exec" || op == "POST /exec/stream") {
			unmapArgv(r)
		}
		if q.ImplicitCreate && m != nil && op != "PUT " && op != "DELETE " && op != "GET " {
			create := httptest.NewRequest(http.MethodPut, m[1]+"/v1/sandboxes/"+m[2], strings.NewReader("{}"))
			create.Host = r.Host // a server refuses names other than localhost
			create.Header = r.Header.Clone()
			create.Header.Set("Content-Type", "application/json")
			create.Header.Del("Content-Length")
			h.ServeHTTP(httptest.NewRecorder(), create.WithContext(r.Context()))
		}
		if r.Header.Get("Accept") == "text/event-stream" || r.Header.Get("Upgrade") != "" || op == "GET /files/download" || op == "POST /exec/stream" {
			h.ServeHTTP(w, r) // streams and WebSockets pass through untouched
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		status, body := rec.Code, rec.Body.Bytes()
		switch {
		case status == http.StatusOK && op == "PUT " && q.Create201:
			status = http.StatusCreated
		case status == http.StatusOK && (op == "POST /files/upload" && q.Upload204 || op == "POST /touch" && q.Touch204):
			status, body = http.StatusNoContent, nil
		}
		if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			body = rewriteJSON(body, q)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	})
}

// unmapArgv rewrites /workspace in the argv of the exec request r to
// unmappedWorkspace.
func unmapArgv(r *http.Request) {
	body, err := io.ReadAll(r.Body)
	_ = r.Body.Close()
	var req map[string]any
	if err == nil && json.Unmarshal(body, &req) == nil {
		if cmd, ok := req["cmd"].([]any); ok {
			for i, a := range cmd {
				if s, ok := a.(string); ok {
					cmd[i] = strings.ReplaceAll(s, "/workspace", unmappedWorkspace)
				}
			}
			if b, err := json.Marshal(req); err == nil {
				body = b
			}
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
}

// isExtension reports whether r is for an operation outside v1.
func isExtension(r *http.Request, m []string) bool {
	if strings.HasSuffix(r.URL.Path, "/v1/info") || (strings.HasSuffix(r.URL.Path, "/v1/sandboxes") && r.Method == http.MethodGet) {
		return true
	}
	return m != nil && (r.Method == http.MethodGet && m[3] == "" || m[3] == "/exec/stream" || strings.HasPrefix(m[3], "/fs/"))
}

// rewriteJSON rewrites the timestamps and numbers of a JSON body.
func rewriteJSON(body []byte, q Quirks) []byte {
	if q.Time != TimeRFC3339 {
		body = timeField.ReplaceAllFunc(body, func(b []byte) []byte {
			sub := timeField.FindSubmatch(b)
			t, err := time.Parse(time.RFC3339Nano, string(sub[2]))
			if err != nil {
				return b
			}
			return []byte(fmt.Sprintf("%q:%s", sub[1], formatTime(t, q.Time)))
		})
	}
	if q.FractionalNumbers {
		body = duration.ReplaceAll(body, []byte(`"durationMs":$1.5`))
	}
	if !json.Valid(bytes.TrimSpace(body)) && len(bytes.TrimSpace(body)) > 0 {
		panic("quirks: rewrote a JSON body into invalid JSON: " + string(body))
	}
	return body
}

// formatTime writes t in form f as a JSON value.
func formatTime(t time.Time, f TimeForm) string {
	t = t.UTC()
	switch f {
	case TimeOffsetAndZ:
		return `"` + t.Format("2006-01-02T15:04:05.000000") + `+00:00Z"`
	case TimeNoZone:
		return `"` + t.Format("2006-01-02T15:04:05.000000") + `"`
	case TimeEpochSeconds:
		return fmt.Sprintf("%.3f", float64(t.UnixMilli())/1000)
	}
	return `"` + t.Format(time.RFC3339Nano) + `"`
}
