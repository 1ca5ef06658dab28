package localbackend

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/noxrunner/nox/internal/contract"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	nethttpmiddleware "github.com/oapi-codegen/nethttp-middleware"

	"github.com/noxrunner/nox/gen/noxapi"
)

// IsolationHeader is set on every response when commands run without
// isolation (tier none-unsafe).
const IsolationHeader = "X-Nox-Isolation"

// requestIDPattern is what a client-sent X-Request-Id must look like to be echoed.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:/+=-]{1,128}$`)

type requestIDKey struct{}

// requestIDFrom returns the request id stored in ctx by the handler.
func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// buildHandler wires the generated strict server onto a ServeMux behind the
// request validator, body limits, auth, logging and request ids.
func (b *Backend) buildHandler() (http.Handler, error) {
	strict := noxapi.NewStrictHandlerWithOptions(b.server, nil, noxapi.StrictHTTPServerOptions{
		RequestErrorHandlerFunc: func(w http.ResponseWriter, r *http.Request, err error) {
			status, msg := requestErrorStatus(err)
			writeJSONError(w, status, msg, 0)
		},
		ResponseErrorHandlerFunc: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client went away mid-stream
			}
			if rec, ok := w.(*statusRecorder); ok && rec.status != 0 {
				// Headers are sent: break the connection so that the client
				// sees a truncated body (e.g. a download) as an error.
				b.log.WarnContext(r.Context(), "response failed mid-body", "requestId", requestIDFrom(r.Context()), "err", err)
				panic(http.ErrAbortHandler)
			}
			b.log.ErrorContext(r.Context(), "response failed", "requestId", requestIDFrom(r.Context()), "err", err)
			writeJSONError(w, http.StatusInternalServerError, "internal error", 0)
		},
	})
	mux := http.NewServeMux()
	h := noxapi.HandlerWithOptions(strict, noxapi.StdHTTPServerOptions{
		BaseRouter: mux,
		ErrorHandlerFunc: func(w http.ResponseWriter, r *http.Request, err error) {
			writeJSONError(w, http.StatusBadRequest, paramErrorMessage(err), 0)
		},
	})

	spec, err := contract.Load(context.Background())
	if err != nil {
		return nil, fmt.Errorf("load embedded spec: %w", err)
	}
	spec.Servers = nil
	// Authentication is the auth middleware's job; without this the
	// validator would demand an AuthenticationFunc (and read upload bodies).
	spec.Security = nil
	for _, item := range spec.Paths.Map() {
		for _, op := range item.Operations() {
			op.Security = nil
		}
	}
	isUpload := func(r *http.Request) bool {
		return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/files/upload")
	}
	errH := func(ctx context.Context, err error, w http.ResponseWriter, r *http.Request, o nethttpmiddleware.ErrorHandlerOpts) {
		switch {
		case errors.Is(err, routers.ErrMethodNotAllowed):
			writeJSONError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path), 0)
		case o.StatusCode == http.StatusNotFound:
			writeJSONError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path), 0)
		default:
			status, msg := requestErrorStatus(err)
			writeJSONError(w, status, msg, 0)
		}
	}
	multi := func(me openapi3.MultiError) (int, error) {
		status, msg := requestErrorStatus(me)
		return status, errors.New(msg)
	}
	filterOpts := openapi3filter.Options{
		// The configured defaults (DefaultTTL, DefaultExecTimeout...) apply,
		// not the contract's example defaults.
		SkipSettingDefaults:     true,
		MultiError:              true,
		SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.DisableSchemaErrorDetails()},
	}
	full := nethttpmiddleware.OapiRequestValidatorWithOptions(spec, &nethttpmiddleware.Options{
		ErrorHandlerWithOpts:  errH,
		MultiErrorHandler:     multi,
		Skipper:               isUpload,
		Options:               filterOpts,
		SilenceServersWarning: true,
	})
	uploadOpts := filterOpts
	uploadOpts.ExcludeRequestBody = true
	upload := nethttpmiddleware.OapiRequestValidatorWithOptions(spec, &nethttpmiddleware.Options{
		ErrorHandlerWithOpts:  errH,
		MultiErrorHandler:     multi,
		Skipper:               func(r *http.Request) bool { return !isUpload(r) },
		Options:               uploadOpts,
		DiscardValidatedValue: true,
		SilenceServersWarning: true,
	})
	h = full(upload(h))
	h = b.limitBodies(h, isUpload)
	if b.cfg.Token != "" {
		h = b.requireToken(h)
	}
	if b.report.Tier == IsolationNoneUnsafe || !b.report.Isolated {
		next := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(IsolationHeader, IsolationNoneUnsafe)
			next.ServeHTTP(w, r)
		})
	}
	return b.logRequests(h), nil
}

// limitBodies bounds request bodies: uploads by MaxUploadBytes (413 above,
// as the contract declares), everything else by MaxJSONBodyBytes (400
// above: the contract declares no 413 for JSON operations).
func (b *Backend) limitBodies(next http.Handler, isUpload func(*http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit, status := b.cfg.MaxJSONBodyBytes, http.StatusBadRequest
		if isUpload(r) {
			limit, status = b.cfg.MaxUploadBytes, http.StatusRequestEntityTooLarge
		}
		if r.ContentLength > limit {
			writeJSONError(w, status, fmt.Sprintf("body: exceeds the limit of %d bytes", limit), 0)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}

// requireToken demands "Authorization: Bearer <Token>" on everything but
// /healthz, comparing in constant time.
func (b *Backend) requireToken(next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(b.cfg.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="nox"`)
			writeJSONError(w, http.StatusUnauthorized, "missing or invalid bearer token", 0)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// statusRecorder remembers the status and size of a response. It keeps
// http.Flusher and http.ResponseController working for streams.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(p)
	s.bytes += int64(n)
	return n, err
}

// Flush implements http.Flusher (the generated SSE code asserts it).
func (s *statusRecorder) Flush() {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// logRequests assigns the request id (echoing a sane X-Request-Id or
// generating one) and writes one structured access log line per request.
func (b *Backend) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !requestIDPattern.MatchString(id) {
			var raw [12]byte
			_, _ = rand.Read(raw[:])
			id = hex.EncodeToString(raw[:])
		}
		w.Header().Set("X-Request-Id", id)
		ctx := context.WithValue(r.Context(), requestIDKey{}, id)
		rec := &statusRecorder{ResponseWriter: w}
		defer func() { // also when the handler aborts the connection
			b.log.LogAttrs(ctx, slog.LevelInfo, "request",
				slog.String("requestId", id),
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", rec.status),
				slog.Int64("bytes", rec.bytes),
				slog.Float64("ms", float64(time.Since(start).Microseconds())/1000),
				slog.String("remote", r.RemoteAddr),
			)
		}()
		next.ServeHTTP(rec, r.WithContext(ctx))
	})
}

// requestErrorStatus turns a validation or decode error into a status and
// a message that names the field: "ttlSeconds: number must be at least 1".
func requestErrorStatus(err error) (int, string) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || findMaxBytes(err) {
		return http.StatusBadRequest, "body: exceeds the size limit of JSON bodies"
	}
	if msg := fieldMessage(err); msg != "" {
		return http.StatusBadRequest, msg
	}
	return http.StatusBadRequest, err.Error()
}

func findMaxBytes(err error) bool {
	found := false
	walkErrors(err, func(e error) bool {
		var mbe *http.MaxBytesError
		if errors.As(e, &mbe) {
			found = true
		}
		return !found
	})
	return found
}

// walkErrors calls f on err and every error it wraps, including the
// members of openapi3.MultiError, until f returns false.
func walkErrors(err error, f func(error) bool) bool {
	if err == nil {
		return true
	}
	if !f(err) {
		return false
	}
	switch e := err.(type) {
	case openapi3.MultiError:
		for _, m := range e {
			if !walkErrors(m, f) {
				return false
			}
		}
		return true
	case *openapi3filter.RequestError:
		return walkErrors(e.Err, f)
	case interface{ Unwrap() []error }:
		for _, m := range e.Unwrap() {
			if !walkErrors(m, f) {
				return false
			}
		}
		return true
	}
	return walkErrors(errors.Unwrap(err), f)
}

// fieldMessage formats the first schema or parameter error found in err.
func fieldMessage(err error) string {
	var reqErr *openapi3filter.RequestError
	var schemaErr, inner *openapi3.SchemaError
	walkErrors(err, func(e error) bool {
		switch v := e.(type) {
		case *openapi3filter.RequestError:
			if reqErr == nil {
				reqErr = v
			}
		case *openapi3.SchemaError:
			if schemaErr == nil {
				schemaErr = v
			} else {
				inner = v // e.g. the reason an allOf member failed
			}
		}
		return true
	})
	if reqErr == nil && schemaErr == nil {
		return ""
	}
	field := "body"
	if reqErr != nil && reqErr.Parameter != nil {
		field = reqErr.Parameter.Name
	}
	if schemaErr != nil {
		if ptr := schemaErr.JSONPointer(); len(ptr) > 0 && (reqErr == nil || reqErr.Parameter == nil) {
			field = strings.Join(ptr, ".")
		}
		reason := schemaErr.Reason
		if inner != nil && schemaErr.SchemaField == "allOf" {
			reason = inner.Reason
		}
		if hint := patternHint(field); hint != "" && (schemaErr.SchemaField == "pattern" || inner != nil && inner.SchemaField == "pattern") {
			reason = hint
		}
		if reqErr != nil && reqErr.Parameter == nil && len(schemaErr.JSONPointer()) == 0 && schemaErr.SchemaField == "required" {
			// A missing required property is reported at the object.
			reason = schemaErr.Reason
			if i := strings.Index(reason, `property "`); i >= 0 {
				name := strings.TrimSuffix(strings.TrimPrefix(reason[i:], `property "`), `" is missing`)
				field = name
			}
		}
		return field + ": " + reason
	}
	reason := reqErr.Reason
	if reqErr.Err != nil {
		reason = reqErr.Err.Error()
		if reqErr.Reason != "" && reqErr.Reason != reason {
			reason = reqErr.Reason + ": " + reason
		}
	}
	if reqErr.RequestBody != nil && reqErr.Parameter == nil {
		field = "body"
	}
	return field + ": " + reason
}

// patternHint says in words what a field's pattern in the contract asks
// for, instead of quoting the regular expression.
func patternHint(field string) string {
	switch field {
	case "sessionId":
		return "must be 1 to 128 characters from A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
	case "cpuLimit", "memoryLimit", "ephemeralStorageLimit":
		return "must be a Kubernetes quantity such as 500m, 1, 512Mi or 2Gi"
	}
	return ""
}

// paramErrorMessage formats a parameter binding error of the generated router.
func paramErrorMessage(err error) string {
	var inv *noxapi.InvalidParamFormatError
	if errors.As(err, &inv) {
		return fmt.Sprintf("%s: invalid format: %v", inv.ParamName, inv.Err)
	}
	var req *noxapi.RequiredParamError
	if errors.As(err, &req) {
		return req.ParamName + ": required"
	}
	return err.Error()
}
