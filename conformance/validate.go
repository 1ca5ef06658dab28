package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/noxrunner/nox/internal/contract"
)

// spec is the loaded OpenAPI document and a router over it.
type spec struct {
	doc    *openapi3.T
	router routers.Router
}

// loadContract loads api/openapi.yaml (embedded in package api), validates
// it and builds a router that matches any host.
func loadContract(ctx context.Context) (*spec, error) {
	doc, err := contract.Load(ctx)
	if err != nil {
		return nil, err
	}
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route contract: %w", err)
	}
	return &spec{doc: doc, router: r}, nil
}

// schemaError formats a schema violation as "at /path: reason".
func schemaError(err *openapi3.SchemaError) string {
	p := "/" + strings.Join(err.JSONPointer(), "/")
	reason := err.Reason
	if i := strings.Index(reason, " (string doesn't match pattern"); i > 0 {
		reason = reason[:i] // the format's regular expression adds nothing
	}
	return fmt.Sprintf("at %s: %s", p, reason)
}

// operation is the contract operation a request matched.
type operation struct {
	// id is the operationId, e.g. "createSandbox".
	id string
	// name is the method and path template, e.g. "PUT /v1/sandboxes/{sessionId}".
	name string
	// anchor points to the operation in the contract.
	anchor string
}

// findRoute matches req (its path relative to basePath) to an operation
// of the contract; nil when none matches.
func (c *spec) findRoute(ctx context.Context, req *http.Request, basePath string) (*routers.Route, map[string]string, *http.Request) {
	r := req.Clone(ctx)
	r.Body = http.NoBody
	if basePath != "" && basePath != "/" {
		r.URL.Path = "/" + strings.TrimLeft(strings.TrimPrefix(r.URL.Path, strings.TrimRight(basePath, "/")), "/")
		r.URL.RawPath = ""
	}
	route, params, err := c.router.FindRoute(r)
	if err != nil {
		return nil, nil, r
	}
	return route, params, r
}

// operationOf describes the operation of route.
func operationOf(route *routers.Route) operation {
	esc := strings.NewReplacer("~", "~0", "/", "~1").Replace(route.Path)
	return operation{
		id:     route.Operation.OperationID,
		name:   route.Method + " " + route.Path,
		anchor: contractDoc + "/paths/" + esc + "/" + strings.ToLower(route.Method),
	}
}

// validateResponse checks one response against the operation the request
// matched: the status must be declared, and the headers, content type and
// body must match the declaration; timestamps must be RFC 3339 strings
// (stricter than the contract's date-time format checker, which lets a
// missing zone pass). body == nil skips the body (event streams) but still
// checks the content type. It returns the operation (zero when the request
// matches none, which is not validated) and what the response does wrong.
func (c *spec) validateResponse(ctx context.Context, req *http.Request, basePath string, status int, h http.Header, body []byte) (operation, []complaint) {
	route, params, r := c.findRoute(ctx, req, basePath)
	if route == nil {
		return operation{}, nil // nothing in the contract to validate against
	}
	op := operationOf(route)
	opts := &openapi3filter.Options{
		IncludeResponseStatus: true, // undeclared status codes are violations
		MultiError:            true,
		ExcludeResponseBody:   body == nil,
	}
	opts.WithCustomSchemaErrorFunc(schemaError)
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: opts},
		Status:                 status,
		Header:                 h,
		Options:                opts,
	}
	in.SetBodyBytes(body)
	v := violationOf{op: op, status: status, route: route}
	var out []complaint
	if err := openapi3filter.ValidateResponse(ctx, in); err != nil {
		out = append(out, v.classify(err)...)
	}
	if body == nil {
		if resp := route.Operation.Responses.Status(status); resp != nil && resp.Value != nil && len(resp.Value.Content) > 0 {
			if ct := h.Get("Content-Type"); resp.Value.Content.Get(ct) == nil {
				out = append(out, v.contentType(fmt.Sprintf("response Content-Type %q is not declared for status %d", ct, status), ct))
			}
		}
	}
	if status/100 == 2 && body != nil {
		out = append(out, v.timestamps(body)...)
	}
	return op, out
}

// flattenValidation splits kin-openapi's multi-errors into one error each.
func flattenValidation(err error) []error {
	var me openapi3.MultiError
	if errors.As(err, &me) {
		var out []error
		for _, e := range me {
			out = append(out, flattenValidation(e)...)
		}
		return out
	}
	var re *openapi3filter.ResponseError
	if errors.As(err, &re) && re.Err != nil {
		var inner openapi3.MultiError
		if errors.As(re.Err, &inner) {
			var out []error
			for _, e := range inner {
				out = append(out, fmt.Errorf("%s: %w", re.Reason, e))
			}
			return out
		}
	}
	return []error{err}
}

// validateSchema checks a JSON document against a schema of the contract's
// components, e.g. "ExecResult" for the data of an exit event.
func (c *spec) validateSchema(name string, raw []byte) error {
	ref := c.doc.Components.Schemas[name]
	if ref == nil || ref.Value == nil {
		return fmt.Errorf("schema %q: not in the contract: %w", name, ErrSuite)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("not JSON (want a %s): %w", name, err)
	}
	if err := ref.Value.VisitJSON(v, openapi3.MultiErrors()); err != nil {
		var errs []error
		for _, e := range flattenValidation(err) {
			var se *openapi3.SchemaError
			if errors.As(e, &se) {
				errs = append(errs, errors.New(schemaError(se)))
			} else {
				errs = append(errs, e)
			}
		}
		return fmt.Errorf("does not match schema %s: %w", name, errors.Join(errs...))
	}
	return nil
}

// Exchange is one HTTP request the suite made and the response it got, kept
// so that failures can show both.
type Exchange struct {
	// Method and URL (path and query) of the request.
	Method, URL string
	// ReqHeader and ReqBody of the request.
	ReqHeader http.Header
	ReqBody   []byte
	// Status, Header and Body of the response. For event streams, Body
	// holds what was read of the stream.
	Status int
	Header http.Header
	Body   []byte
	// Err is the transport error, when there was no response.
	Err error
	// Operation is the operationId of the contract operation the request
	// matched ("" when it matched none).
	Operation string

	op operation
	// complaints are the ways the response breaks the contract; they
	// count against a check only for the exchanges it judges.
	complaints []complaint
	// judged is set when the response is the subject of the check that
	// made it.
	judged atomic.Bool
	// except holds the keys of complaints not held against this exchange
	// (see Env.judgeConsistent); guarded by the Env's mutex.
	except map[string]bool

	// sent counts the bytes sent of a request body too large to keep in
	// ReqBody (nil when ReqBody holds the body).
	sent *atomic.Int64
}

const maxShownBody = 600

// judge makes x's response the subject of the check that made it: the
// validator's complaints about it count against the check. Responses of
// set-up steps are not judged; each operation's own checks judge them.
func (x *Exchange) judge() {
	if x != nil {
		x.judged.Store(true)
	}
}

// String shows the request and the response on two lines, bodies
// abbreviated.
func (x *Exchange) String() string {
	if x == nil {
		return "(no request made)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "request:  %s %s", x.Method, x.URL)
	if len(x.ReqBody) > 0 {
		b.WriteString(" ")
		b.WriteString(showBody(x.ReqHeader.Get("Content-Type"), x.ReqBody))
	} else if x.sent != nil {
		fmt.Fprintf(&b, " <streamed body, %d bytes sent>", x.sent.Load())
	}
	b.WriteString("\nresponse: ")
	if x.Err != nil {
		fmt.Fprintf(&b, "no response: %v", x.Err)
		return b.String()
	}
	fmt.Fprintf(&b, "%d", x.Status)
	if ct := x.Header.Get("Content-Type"); ct != "" {
		b.WriteString(" " + ct)
	}
	if len(x.Body) > 0 {
		b.WriteString(" ")
		b.WriteString(showBody(x.Header.Get("Content-Type"), x.Body))
	} else {
		b.WriteString(" (empty body)")
	}
	return b.String()
}

// showBody renders a body for people: compact JSON, quoted text, or a size
// for binary data.
func showBody(contentType string, body []byte) string {
	mt, _, _ := mime.ParseMediaType(contentType)
	if bytes.HasPrefix(body, []byte{0x1f, 0x8b}) {
		return fmt.Sprintf("<%d bytes of gzip data>", len(body))
	}
	if mt == "application/x-tar" || !utf8.Valid(body) {
		return fmt.Sprintf("<%d bytes of binary data>", len(body))
	}
	var compact bytes.Buffer
	if json.Valid(body) && json.Compact(&compact, body) == nil {
		return truncate(compact.String(), len(body))
	}
	return truncate(strconv.Quote(string(body)), len(body))
}

func truncate(s string, n int) string {
	if len(s) <= maxShownBody {
		return s
	}
	cut := maxShownBody
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:cut], n)
}

// recordingDoer sends the Env's requests, validates every response against
// the contract and records the exchange. Bodies of ordinary responses are
// read completely (up to maxResponseBody) and handed back intact; event
// streams are handed back unread and captured as the check reads them.
type recordingDoer struct {
	env *Env
}

const maxResponseBody = 64 << 20

// maxKeptRequestBody is the largest request body kept in an Exchange;
// larger ones, and those of unknown length, are streamed.
const maxKeptRequestBody = 1 << 20

// Do implements noxapi.HttpRequestDoer.
func (d *recordingDoer) Do(req *http.Request) (*http.Response, error) {
	e := d.env
	x := &Exchange{Method: req.Method, URL: req.URL.RequestURI(), ReqHeader: req.Header.Clone()}
	if req.Body != nil && req.Body != http.NoBody && (req.ContentLength < 0 || req.ContentLength > maxKeptRequestBody || streamedRequest(req.Context())) {
		// Streamed: send it as it comes, counting what was sent.
		x.sent = new(atomic.Int64)
		req.Body = &countingBody{rc: req.Body, n: x.sent}
	} else if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("read request body: %w", err)
		}
		x.ReqBody = b
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		req.ContentLength = int64(len(b))
	}
	ctx, cancel := context.WithTimeout(req.Context(), e.cfg.RequestTimeout)
	req = req.WithContext(ctx)
	resp, err := e.cfg.HTTPClient.Do(req)
	if err != nil {
		cancel()
		x.Err = err
		e.record(nil, x)
		return nil, err
	}
	x.Status, x.Header = resp.StatusCode, resp.Header.Clone()
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "text/event-stream" || (streamed(req.Context()) && success(resp.StatusCode)) {
		x.op, x.complaints = e.run.contract.validateResponse(ctx, req, e.basePath, resp.StatusCode, resp.Header, nil)
		x.Operation = x.op.id
		keep := maxResponseBody
		if mt != "text/event-stream" {
			keep = maxKeptStreamedBody
		}
		resp.Body = &captureBody{rc: resp.Body, x: x, env: e, cancel: cancel, keep: keep}
		e.record(resp, x)
		return resp, nil
	}
	defer cancel()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	resp.Body.Close()
	if err != nil {
		x.Err = fmt.Errorf("read response body: %w", err)
		e.record(nil, x)
		return nil, x.Err
	}
	if len(body) > maxResponseBody {
		x.Body = body[:maxResponseBody]
		x.Err = fmt.Errorf("response body larger than %d bytes", maxResponseBody)
		e.record(nil, x)
		return nil, x.Err
	}
	x.Body = body
	x.op, x.complaints = e.run.contract.validateResponse(ctx, req, e.basePath, resp.StatusCode, resp.Header, body)
	x.Operation = x.op.id
	resp.Body = io.NopCloser(bytes.NewReader(body))
	e.record(resp, x)
	return resp, nil
}

// maxKeptStreamedBody is how much of a streamed response body (see
// withStreamedResponse) an Exchange keeps to show.
const maxKeptStreamedBody = 4 << 10

// streamedKey marks a request context whose successful response body is
// handed to the check unread, not buffered (see withStreamedResponse).
type streamedKey struct{}

// withStreamedResponse returns ctx marked so that a successful answer to
// a request made with it is handed back unread and captured only up to
// maxKeptStreamedBody as the check reads it: the suite reads large files
// with bounded memory.
func withStreamedResponse(ctx context.Context) context.Context {
	return context.WithValue(ctx, streamedKey{}, true)
}

func streamed(ctx context.Context) bool { return ctx.Value(streamedKey{}) != nil }

// streamedRequestKey marks a request context whose body is sent as it
// comes, whatever its size, and not kept (see withStreamedRequest).
type streamedRequestKey struct{}

// withStreamedRequest returns ctx marked so that the body of a request
// made with it is sent as its reader gives it (a check pacing its
// writes), not read first.
func withStreamedRequest(ctx context.Context) context.Context {
	return context.WithValue(ctx, streamedRequestKey{}, true)
}

func streamedRequest(ctx context.Context) bool { return ctx.Value(streamedRequestKey{}) != nil }

// captureBody copies what a check reads of an event stream or a streamed
// body into its Exchange (up to keep bytes).
type captureBody struct {
	rc     io.ReadCloser
	x      *Exchange
	env    *Env
	cancel context.CancelFunc
	keep   int
}

func (c *captureBody) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	if n > 0 {
		c.env.mu.Lock()
		if room := c.keep - len(c.x.Body); room > 0 {
			c.x.Body = append(c.x.Body, p[:min(n, room)]...)
		}
		c.env.mu.Unlock()
	}
	return n, err
}

func (c *captureBody) Close() error {
	defer c.cancel()
	if err := c.rc.Close(); err != nil {
		return fmt.Errorf("close event stream: %w", err)
	}
	return nil
}

// countingBody counts the bytes a streamed request body gives the
// transport.
type countingBody struct {
	rc io.ReadCloser
	n  *atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingBody) Close() error { return c.rc.Close() }

// version is the contract's version (info.version), the version of the
// specification a run tests.
func (c *spec) version() string {
	if c.doc.Info == nil {
		return ""
	}
	return c.doc.Info.Version
}

// operationIDs returns the operation ids of the contract.
func (c *spec) operationIDs() map[string]bool {
	ids := map[string]bool{}
	for _, item := range c.doc.Paths.Map() {
		for _, op := range item.Operations() {
			ids[op.OperationID] = true
		}
	}
	return ids
}
