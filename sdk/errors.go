package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors of the SDK. Every *APIError matches exactly one of the
// status sentinels with errors.Is, so programs act on the category and never
// on the message:
//
//	if errors.Is(err, sdk.ErrNotFound) { ... }
var (
	// ErrNotFound matches a 404 answer: no sandbox for the session id, a
	// missing download source, or an operation a plain v1 backend lacks.
	ErrNotFound = errors.New("not found")
	// ErrInvalidArgument matches a 400 answer: the backend rejected a field.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrUnauthorized matches a 401 answer: a missing or wrong bearer token.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrConflict matches a 409 answer.
	ErrConflict = errors.New("conflict")
	// ErrPreconditionFailed matches a 412 answer: a conditional write's
	// WriteOptions.IfMatch or CreateOnly did not hold.
	ErrPreconditionFailed = errors.New("precondition failed")
	// ErrNotModified matches a 304 answer: the file Open was asked for
	// still has the ETag of OpenOptions.IfNoneMatch.
	ErrNotModified = errors.New("not modified")
	// ErrInsufficientStorage matches a 507 answer: the sandbox's storage
	// is full.
	ErrInsufficientStorage = errors.New("insufficient storage")
	// ErrTooLarge matches a 413 answer (an upload or a download exceeded a
	// backend limit), and is returned (wrapped) by the extraction
	// functions for an archive over a cap of its ExtractOptions.
	ErrTooLarge = errors.New("too large")
	// ErrUnavailable matches 502, 503 and 504 answers: the backend or the
	// sandbox is not ready, busy, or unreachable behind a proxy.
	ErrUnavailable = errors.New("unavailable")
	// ErrInternal matches a 500 answer and an `event: error` of an exec stream.
	ErrInternal = errors.New("internal error")

	// ErrUnsupported matches the error of a call to an extension the
	// backend does not implement (Get, List or Info on a plain v1 backend):
	// answered 404 by a backend whose Info does not list the extension, or
	// 405 or 501 by any. It is distinct from ErrNotFound, except for Info,
	// whose 404 matches both. Supports tells beforehand.
	ErrUnsupported = errors.New("not supported by the backend")

	// ErrUnsafeArchive is returned (wrapped) by the extraction functions for an
	// entry that would write outside the target directory or that is a
	// device, fifo or other special file.
	ErrUnsafeArchive = errors.New("unsafe archive entry")
	// ErrStreamIdle is returned (wrapped) by ExecStream when the stream stays
	// silent for longer than the idle timeout.
	ErrStreamIdle = errors.New("exec stream idle")
)

// maxErrorBody is the most of an error response body the SDK reads.
const maxErrorBody = 64 << 10

// APIError is the error returned for an answer with an unexpected HTTP
// status. It matches the sentinel of its status category with errors.Is
// (ErrNotFound for 404, ErrUnavailable for 502/503/504, ...).
type APIError struct {
	// StatusCode is the HTTP status code of the answer.
	StatusCode int
	// Message is the backend's message: the `error` field of a JSON error
	// body, or the plain text body. Programs should not parse it.
	Message string
	// RequestID is the X-Request-Id header of the answer, when there was one.
	RequestID string
	// Operation is the OpenAPI operationId of the call, e.g. "execInSandbox".
	Operation string
	// RetryAfter is the delay the backend asked for in Retry-After, or zero.
	RetryAfter time.Duration
}

// Error formats the error with its operation, status, message and request id.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("nox")
	if e.Operation != "" {
		b.WriteString(": ")
		b.WriteString(e.Operation)
	}
	fmt.Fprintf(&b, ": %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" (request id ")
		b.WriteString(e.RequestID)
		b.WriteString(")")
	}
	return b.String()
}

// Is reports whether target is the sentinel of the error's status category.
func (e *APIError) Is(target error) bool {
	return target != nil && sentinelFor(e.StatusCode) == target
}

// sentinelFor maps a status code to its sentinel error, or nil.
func sentinelFor(status int) error {
	switch status {
	case http.StatusBadRequest:
		return ErrInvalidArgument
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusConflict:
		return ErrConflict
	case http.StatusRequestEntityTooLarge:
		return ErrTooLarge
	case http.StatusPreconditionFailed:
		return ErrPreconditionFailed
	case http.StatusNotModified:
		return ErrNotModified
	case http.StatusInsufficientStorage:
		return ErrInsufficientStorage
	case http.StatusRequestedRangeNotSatisfiable:
		return ErrInvalidArgument
	case http.StatusInternalServerError:
		return ErrInternal
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return ErrUnavailable
	}
	return nil
}

// newAPIError builds an *APIError from an answer, reading at most 64 KiB of
// its body. It does not close the body.
func newAPIError(op string, resp *http.Response) *APIError {
	e := &APIError{
		StatusCode: resp.StatusCode,
		RequestID:  resp.Header.Get("X-Request-Id"),
		Operation:  op,
		RetryAfter: retryAfter(resp.Header),
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e.Message = errorMessage(resp.Header.Get("Content-Type"), body)
	return e
}

// errorMessage extracts the message of an error body: the `error` field of
// a JSON body, else the trimmed text.
func errorMessage(contentType string, body []byte) string {
	mt, _, _ := mime.ParseMediaType(contentType)
	if strings.Contains(mt, "json") || (len(body) > 0 && body[0] == '{') {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return e.Error
		}
	}
	return strings.TrimSpace(string(body))
}

// retryAfter parses a Retry-After header given in seconds or as an HTTP date.
func retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// unsupportedError is the error of a call to an extension the backend does
// not implement; see ErrUnsupported.
type unsupportedError struct {
	op, ext string
	// answer is the answer that said so; it is matched (errors.Is, As)
	// only when matchAnswer is set.
	answer      *APIError
	matchAnswer bool
}

func (e *unsupportedError) Error() string {
	msg := fmt.Sprintf("nox: %s: the backend does not implement extension %s (it answered %d %s",
		e.op, e.ext, e.answer.StatusCode, http.StatusText(e.answer.StatusCode))
	if e.answer.Message != "" {
		msg += ": " + truncate(e.answer.Message, 200)
	}
	if e.answer.RequestID != "" {
		msg += ", request id " + e.answer.RequestID
	}
	return msg + ")"
}

func (e *unsupportedError) Is(target error) bool { return target == ErrUnsupported }

func (e *unsupportedError) Unwrap() error {
	if e.matchAnswer {
		return e.answer
	}
	return nil
}

// unsupported returns err, or an error matching ErrUnsupported when err is
// the answer of a backend without extension ext to operation op: a 405 or
// 501, or a 404 when the backend's Info (fetched once) does not list ext.
func (c *Client) unsupported(ctx context.Context, op, ext string, err error) error {
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		return err
	}
	switch apiErr.StatusCode {
	case http.StatusMethodNotAllowed, http.StatusNotImplemented:
	case http.StatusNotFound:
		if info, ierr := c.Capabilities(ctx); ierr != nil || info.Supports(ext) {
			return err
		}
	default:
		return err
	}
	return &unsupportedError{op: op, ext: ext, answer: apiErr}
}
