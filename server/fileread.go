package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
)

// httpRequestKey is the context key of the *http.Request of an operation
// whose answer needs it (readFile's http.ServeContent reads Range and the
// conditional headers from it).
type httpRequestKey struct{}

// httpRequestFrom returns the request withHTTPRequest stored in ctx.
func httpRequestFrom(ctx context.Context) *http.Request {
	r, _ := ctx.Value(httpRequestKey{}).(*http.Request)
	return r
}

// errNoRequest: withHTTPRequest is not installed (a programming error).
var errNoRequest = errors.New("server: readFile, attachTerminal and createPreview need the request in their context")

// withHTTPRequest is the strict middleware that stores the request in the
// context of the operations that need it.
func withHTTPRequest(f noxapi.StrictHandlerFunc, operationID string) noxapi.StrictHandlerFunc {
	if operationID != "ReadFile" && operationID != "AttachTerminal" && operationID != "CreatePreview" {
		return f
	}
	return func(ctx context.Context, w http.ResponseWriter, r *http.Request, req any) (any, error) {
		return f(context.WithValue(ctx, httpRequestKey{}, r), w, r, req)
	}
}

// fileContent answers readFile with an open file.
type fileContent struct {
	f driver.File
	r *http.Request
}

// VisitReadFileResponse serves the file with http.ServeContent: Range
// (206, 416), If-None-Match and If-Modified-Since (304), If-Range, HEAD,
// with the file's ETag and Last-Modified. ServeContent's plain-text error
// answers (416, 412) are turned into the contract's JSON errors.
func (fc *fileContent) VisitReadFileResponse(w http.ResponseWriter) error {
	defer fc.f.Close()
	fi := fc.f.Info()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	if fi.ETag != "" {
		h.Set("ETag", fi.ETag)
	}
	jw := &jsonErrors{ResponseWriter: w, msg: func(status int) string {
		if status == http.StatusRequestedRangeNotSatisfiable {
			return fmt.Sprintf("Range: %q lies outside the file of %d bytes", fc.r.Header.Get("Range"), fi.Size)
		}
		return http.StatusText(status)
	}}
	http.ServeContent(jw, fc.r, "", fi.ModTime, fc.f)
	return nil
}

// jsonErrors rewrites the plain-text error answers of http.ServeContent
// as {"error": msg} and drops their text.
type jsonErrors struct {
	http.ResponseWriter
	msg     func(status int) string
	discard bool
}

func (j *jsonErrors) WriteHeader(status int) {
	if status < 400 {
		j.ResponseWriter.WriteHeader(status)
		return
	}
	j.discard = true
	j.Header().Del("X-Content-Type-Options")
	writeJSONError(j.ResponseWriter, status, j.msg(status), 0)
}

func (j *jsonErrors) Write(p []byte) (int, error) {
	if j.discard {
		return len(p), nil
	}
	return j.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (j *jsonErrors) Unwrap() http.ResponseWriter { return j.ResponseWriter }
