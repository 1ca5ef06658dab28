package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
)

// errorResponse is the JSON error answer of any operation. It implements
// every operation's response interface so that handlers can return it for
// any status the contract declares.
type errorResponse struct {
	status     int
	msg        string
	retryAfter int // seconds; 0: no Retry-After header
}

func (e errorResponse) visit(w http.ResponseWriter) error {
	writeJSONError(w, e.status, e.msg, e.retryAfter)
	return nil
}

func (e errorResponse) VisitGetInfoResponse(w http.ResponseWriter) error       { return e.visit(w) }
func (e errorResponse) VisitListSandboxesResponse(w http.ResponseWriter) error { return e.visit(w) }
func (e errorResponse) VisitDeleteSandboxResponse(w http.ResponseWriter) error { return e.visit(w) }
func (e errorResponse) VisitGetSandboxResponse(w http.ResponseWriter) error    { return e.visit(w) }
func (e errorResponse) VisitCreateSandboxResponse(w http.ResponseWriter) error { return e.visit(w) }
func (e errorResponse) VisitExecInSandboxResponse(w http.ResponseWriter) error { return e.visit(w) }
func (e errorResponse) VisitExecInSandboxStreamResponse(w http.ResponseWriter) error {
	return e.visit(w)
}
func (e errorResponse) VisitDownloadFilesResponse(w http.ResponseWriter) error { return e.visit(w) }
func (e errorResponse) VisitUploadFilesResponse(w http.ResponseWriter) error   { return e.visit(w) }
func (e errorResponse) VisitTouchSandboxResponse(w http.ResponseWriter) error  { return e.visit(w) }
func (e errorResponse) VisitReadFileResponse(w http.ResponseWriter) error      { return e.visit(w) }
func (e errorResponse) VisitWriteFileResponse(w http.ResponseWriter) error     { return e.visit(w) }
func (e errorResponse) VisitStatFileResponse(w http.ResponseWriter) error      { return e.visit(w) }
func (e errorResponse) VisitListDirResponse(w http.ResponseWriter) error       { return e.visit(w) }
func (e errorResponse) VisitMakeDirResponse(w http.ResponseWriter) error       { return e.visit(w) }
func (e errorResponse) VisitRemovePathResponse(w http.ResponseWriter) error    { return e.visit(w) }
func (e errorResponse) VisitMovePathResponse(w http.ResponseWriter) error      { return e.visit(w) }
func (e errorResponse) VisitStartProcessResponse(w http.ResponseWriter) error  { return e.visit(w) }
func (e errorResponse) VisitListProcessesResponse(w http.ResponseWriter) error { return e.visit(w) }
func (e errorResponse) VisitGetProcessResponse(w http.ResponseWriter) error    { return e.visit(w) }
func (e errorResponse) VisitKillProcessResponse(w http.ResponseWriter) error   { return e.visit(w) }
func (e errorResponse) VisitWaitProcessResponse(w http.ResponseWriter) error   { return e.visit(w) }
func (e errorResponse) VisitStreamProcessOutputResponse(w http.ResponseWriter) error {
	return e.visit(w)
}
func (e errorResponse) VisitWriteProcessStdinResponse(w http.ResponseWriter) error { return e.visit(w) }
func (e errorResponse) VisitSignalProcessResponse(w http.ResponseWriter) error     { return e.visit(w) }
func (e errorResponse) VisitResizeProcessResponse(w http.ResponseWriter) error     { return e.visit(w) }
func (e errorResponse) VisitAttachTerminalResponse(w http.ResponseWriter) error    { return e.visit(w) }
func (e errorResponse) VisitProxyPortResponse(w http.ResponseWriter) error         { return e.visit(w) }
func (e errorResponse) VisitOpenTunnelResponse(w http.ResponseWriter) error        { return e.visit(w) }
func (e errorResponse) VisitCreatePreviewResponse(w http.ResponseWriter) error     { return e.visit(w) }
func (e errorResponse) VisitWatchPathResponse(w http.ResponseWriter) error         { return e.visit(w) }

// writeJSONError writes {"error": msg} with status.
func writeJSONError(w http.ResponseWriter, status int, msg string, retryAfter int) {
	w.Header().Set("Content-Type", "application/json")
	if retryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(retryAfter))
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(noxapi.Error{Error: msg})
}

// categories maps each driver error category to its answer.
var categories = []struct {
	err        error
	status     int
	retryAfter int
}{
	{driver.ErrInvalidArgument, http.StatusBadRequest, 0},
	{driver.ErrNotFound, http.StatusNotFound, 0},
	{driver.ErrTooLarge, http.StatusRequestEntityTooLarge, 0},
	{driver.ErrInsufficientStorage, http.StatusInsufficientStorage, 0},
	{driver.ErrConflict, http.StatusConflict, 0},
	{driver.ErrPreconditionFailed, http.StatusPreconditionFailed, 0},
	{driver.ErrUnreachable, http.StatusBadGateway, 0},
	{driver.ErrBusy, http.StatusServiceUnavailable, 1},
	{driver.ErrUnavailable, http.StatusServiceUnavailable, 1},
}

// errorFor maps a backend error to the contract's answer: its category's
// status and its message without the sentinel's text. Errors of no
// category are logged and answered as 500 without details.
func (h *handlers) errorFor(ctx context.Context, err error) errorResponse {
	for _, c := range categories {
		if errors.Is(err, c.err) {
			return errorResponse{status: c.status, msg: trimSentinel(err, c.err), retryAfter: c.retryAfter}
		}
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return errorResponse{status: http.StatusBadRequest, msg: "request cancelled"}
	}
	id := requestIDFrom(ctx)
	h.log.ErrorContext(ctx, "internal error", "requestId", id, "err", err)
	return errorResponse{status: http.StatusInternalServerError, msg: "internal error (request id " + id + ")"}
}

// trimSentinel drops the ": <sentinel>" suffix that wrapping adds, except
// "not found", which the message needs to make sense on its own (clients
// show it): `sandbox "x": not found` reads `sandbox "x" not found`.
func trimSentinel(err, sentinel error) string {
	msg := err.Error()
	if sentinel == driver.ErrNotFound {
		if name, ok := strings.CutSuffix(msg, ": "+sentinel.Error()); ok && strings.HasSuffix(name, `"`) {
			return name + " " + sentinel.Error()
		}
		return msg
	}
	return strings.TrimSuffix(msg, ": "+sentinel.Error())
}

// invalid returns an ErrInvalidArgument error with a formatted message.
func invalid(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, driver.ErrInvalidArgument)...)
}

// uploadBody is an upload's or a write's request body, limited by
// http.MaxBytesReader. It reports reading past the limit as an
// ErrTooLarge error (that also unwraps to the *http.MaxBytesError), so
// that backends need not know about net/http.
type uploadBody struct {
	r io.Reader
	// what names the body in the error: "archive", "body".
	what string
}

func (b uploadBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
		err = &uploadTooLargeError{mbe, b.what}
	}
	return n, err
}

// uploadTooLargeError is an upload body over the limit.
type uploadTooLargeError struct {
	mbe  *http.MaxBytesError
	what string
}

func (e *uploadTooLargeError) Error() string {
	return fmt.Sprintf("%s exceeds the upload limit of %d bytes", e.what, e.mbe.Limit)
}

func (e *uploadTooLargeError) Unwrap() []error { return []error{driver.ErrTooLarge, e.mbe} }

func (e errorResponse) VisitGetNetworkResponse(w http.ResponseWriter) error { return e.visit(w) }
func (e errorResponse) VisitSetNetworkResponse(w http.ResponseWriter) error { return e.visit(w) }
func (e errorResponse) VisitGetMetricsResponse(w http.ResponseWriter) error { return e.visit(w) }
