package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	nethttpmiddleware "github.com/oapi-codegen/nethttp-middleware"

	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/internal/contract"
)

// isUpload reports whether r carries a streamed body (an upload's tar
// archive, a writeFile's content) that the validator must not read and
// that MaxUploadBytes limits.
func isUpload(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/files/upload") ||
		r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/fs/file")
}

// streamsBody reports whether r's body is a stream that the validator and
// lenientJSON must not read, and whose every read the stall timeout
// bounds: an upload, or a process's stdin.
func streamsBody(r *http.Request) bool {
	return isUpload(r) || isProcessStdin(r)
}

// newValidator returns the middleware that checks the shape of every
// request against the contract: unknown endpoints are 404, other methods
// 405, malformed parameters and JSON bodies 400 with a message naming the
// field. Streamed bodies (uploads, stdin) are not read. Requests that the
// checks compiled by compileFastRoutes find certainly valid skip
// kin-openapi (fastpath.go); all others, and every error, go through it.
func newValidator(ctx context.Context) (func(http.Handler) http.Handler, error) {
	fast, slow, err := newValidators(ctx)
	if err != nil {
		return nil, err
	}
	return func(next http.Handler) http.Handler {
		slow := slow(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !streamsBody(r) {
				if op, params := fast.match(r); op != nil && op.accepts(r, params) {
					next.ServeHTTP(w, r) // the contract certainly accepts r
					return
				}
			}
			slow.ServeHTTP(w, r)
		})
	}, nil
}

// newValidators returns the fast path's checks and the kin-openapi
// validator, both from the contract.
func newValidators(ctx context.Context) (fastRoutes, func(http.Handler) http.Handler, error) {
	spec, err := contract.Load(ctx)
	if err != nil {
		return nil, nil, err
	}
	// Authentication is requireToken's job; without this the validator
	// would demand an AuthenticationFunc (and read upload bodies).
	spec.Security = nil
	for _, item := range spec.Paths.Map() {
		for _, op := range item.Operations() {
			op.Security = nil
		}
	}
	errH := func(ctx context.Context, err error, w http.ResponseWriter, r *http.Request, o nethttpmiddleware.ErrorHandlerOpts) {
		switch {
		case errors.Is(err, routers.ErrMethodNotAllowed):
			writeJSONError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path), 0)
		case o.StatusCode == http.StatusNotFound:
			writeNoSuchEndpoint(w, r)
		default:
			writeJSONError(w, http.StatusBadRequest, requestErrorMessage(err), 0)
		}
	}
	multi := func(me openapi3.MultiError) (int, error) {
		return http.StatusBadRequest, errors.New(requestErrorMessage(me))
	}
	filterOpts := openapi3filter.Options{
		// The backend's defaults (Info().Limits) apply, not the
		// contract's example defaults.
		SkipSettingDefaults:     true,
		MultiError:              true,
		SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.DisableSchemaErrorDetails()},
	}
	full := nethttpmiddleware.OapiRequestValidatorWithOptions(spec, &nethttpmiddleware.Options{
		ErrorHandlerWithOpts:  errH,
		MultiErrorHandler:     multi,
		Skipper:               streamsBody,
		Options:               filterOpts,
		SilenceServersWarning: true,
	})
	uploadOpts := filterOpts
	uploadOpts.ExcludeRequestBody = true
	upload := nethttpmiddleware.OapiRequestValidatorWithOptions(spec, &nethttpmiddleware.Options{
		ErrorHandlerWithOpts:  errH,
		MultiErrorHandler:     multi,
		Skipper:               func(r *http.Request) bool { return !streamsBody(r) },
		Options:               uploadOpts,
		DiscardValidatedValue: true,
		SilenceServersWarning: true,
	})
	slow := func(next http.Handler) http.Handler { return headAsGet(full(upload(restoreHead(next)))) }
	return compileFastRoutes(spec), slow, nil
}

// headKey marks in a request's context that it was a HEAD.
type headKey struct{}

// headAsGet lets HEAD requests through the validator, which knows only the
// contract's GET operations (net/http routes HEAD to GET handlers):
// they are validated as GET and turned back into HEAD by restoreHead, so
// that the handler (readFile's http.ServeContent) sends no body.
func headAsGet(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			r = r.WithContext(context.WithValue(r.Context(), headKey{}, true))
			r.Method = http.MethodGet
		}
		next.ServeHTTP(w, r)
	})
}

// restoreHead undoes headAsGet after validation.
func restoreHead(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if head, _ := r.Context().Value(headKey{}).(bool); head {
			r = r.Clone(r.Context())
			r.Method = http.MethodHead
		}
		next.ServeHTTP(w, r)
	})
}

// writeNoSuchEndpoint answers a request for an endpoint the server does
// not serve.
func writeNoSuchEndpoint(w http.ResponseWriter, r *http.Request) {
	writeJSONError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path), 0)
}

// requestErrorMessage turns a validation or decode error into a message
// that names the field: "ttlSeconds: number must be at least 1".
func requestErrorMessage(err error) string {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || findMaxBytes(err) {
		return "body: exceeds the size limit of JSON bodies"
	}
	if msg := fieldMessage(err); msg != "" {
		return msg
	}
	return err.Error()
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

// fieldMessage formats the first schema or parameter error found in err,
// or returns "" when it holds neither.
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
	switch {
	case schemaErr != nil:
		return schemaMessage(reqErr, schemaErr, inner)
	case reqErr != nil:
		return requestMessage(reqErr)
	}
	return ""
}

// schemaMessage formats a schema error; reqErr (may be nil) is the request
// error holding it and inner the reason an allOf member failed.
func schemaMessage(reqErr *openapi3filter.RequestError, schemaErr, inner *openapi3.SchemaError) string {
	field := "body"
	if reqErr != nil && reqErr.Parameter != nil {
		field = reqErr.Parameter.Name
	}
	if ptr := schemaErr.JSONPointer(); len(ptr) > 0 && (reqErr == nil || reqErr.Parameter == nil) {
		field = fieldPath(ptr)
	}
	reason := schemaErr.Reason
	if inner != nil && schemaErr.SchemaField == "allOf" {
		reason = inner.Reason
		if ptr := inner.JSONPointer(); len(ptr) > 0 && field != "body" {
			// A member of an object given through allOf: "network.egress".
			// The inner pointer may start at the body or at the member.
			if in := fieldPath(ptr); in == field || strings.HasPrefix(in, field+".") || strings.HasPrefix(in, field+"[") {
				field = in
			} else {
				field += "." + in
			}
		}
	}
	if hint := patternHint(field); hint != "" && (schemaErr.SchemaField == "pattern" || inner != nil && inner.SchemaField == "pattern") {
		reason = hint
	}
	if reqErr != nil && reqErr.Parameter == nil && len(schemaErr.JSONPointer()) == 0 && schemaErr.SchemaField == "required" {
		// A missing required property is reported at the object.
		reason = schemaErr.Reason
		if i := strings.Index(reason, `property "`); i >= 0 {
			field = strings.TrimSuffix(strings.TrimPrefix(reason[i:], `property "`), `" is missing`)
		}
	}
	return field + ": " + reason
}

// fieldPath names the member at a JSON pointer as messages do:
// "network.allow[2]".
func fieldPath(ptr []string) string {
	var b strings.Builder
	for i, p := range ptr {
		switch {
		case p != "" && strings.Trim(p, "0123456789") == "":
			b.WriteString("[" + p + "]")
		case i > 0:
			b.WriteString("." + p)
		default:
			b.WriteString(p)
		}
	}
	return b.String()
}

// requestMessage formats a request error without a schema error.
func requestMessage(reqErr *openapi3filter.RequestError) string {
	field := "body"
	if reqErr.Parameter != nil {
		field = reqErr.Parameter.Name
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
	case "processId":
		return "must be 1 to 64 characters from A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
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
