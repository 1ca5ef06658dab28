package server

import (
	"context"
	"io"
	"net/http"
	"strings"

	"github.com/noxrunner/nox/gen/noxapi"
)

// WriteProcessStdin streams the request body to a process's standard
// input as it arrives (the body is neither buffered nor size-limited: it
// is not stored; each read waits at most the stall timeout for the
// client), then with close=true closes it. A stdin that is closed, absent
// or of an ended process is 409.
func (h *handlers) WriteProcessStdin(ctx context.Context, req noxapi.WriteProcessStdinRequestObject) (noxapi.WriteProcessStdinResponseObject, error) {
	p, err := h.processFor(ctx, req.SessionID, req.ProcessID)
	if err != nil {
		return h.procErr(ctx, err), nil
	}
	var body io.Reader = http.NoBody
	if req.Body != nil {
		body = req.Body
	}
	n, err := p.WriteStdin(ctx, body)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	closeIt := req.Params.Close != nil && *req.Params.Close
	if closeIt {
		if err := p.CloseStdin(); err != nil {
			return h.errorFor(ctx, err), nil
		}
	}
	return noxapi.WriteProcessStdin200JSONResponse(noxapi.StdinResult{Written: n, Closed: closeIt}), nil
}

// isProcessStdin reports whether r is a writeProcessStdin request: POST
// /v1/sandboxes/{sessionId}/processes/{processId}/stdin, whose body is a
// stream for the process, not JSON.
func isProcessStdin(r *http.Request) bool {
	return r.Method == http.MethodPost && processOperation(r.URL.Path) == "stdin"
}

// processOperation returns the last element of a path
// /v1/sandboxes/{sessionId}/processes/{processId}/{op}, or "" when the
// path has another shape.
func processOperation(p string) string {
	parts := strings.Split(p, "/")
	if len(parts) != 7 || parts[0] != "" || parts[1] != "v1" || parts[2] != "sandboxes" ||
		parts[3] == "" || parts[4] != "processes" || parts[5] == "" {
		return ""
	}
	return parts[6]
}
