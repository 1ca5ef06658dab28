package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// lenientJSON lets the request validator see the JSON bodies clients send
// as the contract describes them: a body that parses as JSON is JSON
// whatever its Content-Type says (curl -d sends
// application/x-www-form-urlencoded), and an empty create body is `{}`,
// every field at its default. A body that is not JSON under another
// Content-Type is left for the validator to refuse. Streamed bodies
// (uploads, stdin) and requests without a body pass untouched.
func lenientJSON(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if streamsBody(r) || (r.Method != http.MethodPost && r.Method != http.MethodPut) {
			next.ServeHTTP(w, r)
			return
		}
		create := isCreate(r)
		if isJSONMediaType(r.Header.Get("Content-Type")) && (!create || r.ContentLength > 0) {
			next.ServeHTTP(w, r) // the common case: read once, by the handler
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
				writeJSONError(w, http.StatusBadRequest, fmt.Sprintf("body: exceeds the limit of %d bytes", mbe.Limit), 0)
				return
			}
			writeJSONError(w, http.StatusBadRequest, "body: "+err.Error(), 0)
			return
		}
		switch trimmed := bytes.TrimSpace(body); {
		case len(trimmed) == 0 && create:
			body = []byte("{}")
			r.Header.Set("Content-Type", "application/json")
		case len(trimmed) > 0 && json.Valid(trimmed):
			r.Header.Set("Content-Type", "application/json")
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		next.ServeHTTP(w, r)
	})
}

// isCreate reports whether r is a create: PUT /v1/sandboxes/{sessionId}.
func isCreate(r *http.Request) bool {
	if r.Method != http.MethodPut {
		return false
	}
	_, id, ok := strings.Cut(r.URL.Path, "/v1/sandboxes/")
	return ok && id != "" && !strings.Contains(id, "/")
}

// isJSONMediaType reports whether a Content-Type is the one the contract
// declares for JSON bodies, application/json (parameters aside).
func isJSONMediaType(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}
