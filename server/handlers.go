package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/noxrunner/nox/api"
	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/internal/quantity"
)

// Healthz answers OK while the backend can serve requests.
func (h *handlers) Healthz(ctx context.Context, _ noxapi.HealthzRequestObject) (noxapi.HealthzResponseObject, error) {
	if err := h.b.Health(ctx); err != nil {
		return noxapi.Healthz503TextResponse(healthMessage(err)), nil
	}
	return noxapi.Healthz200TextResponse("OK"), nil
}

// healthMessage is the text of a failed health check: the error's message
// without the sentinel's text.
func healthMessage(err error) string {
	for _, c := range categories {
		if errors.Is(err, c.err) {
			return trimSentinel(err, c.err)
		}
	}
	return err.Error()
}

// GetInfo describes the backend, its extensions and limits.
func (h *handlers) GetInfo(ctx context.Context, _ noxapi.GetInfoRequestObject) (noxapi.GetInfoResponseObject, error) {
	return noxapi.GetInfo200JSONResponse(h.body), nil
}

// ListSandboxes pages through the sandboxes ordered by session id. The
// page token is the last session id of the previous page, base64url.
func (h *handlers) ListSandboxes(ctx context.Context, req noxapi.ListSandboxesRequestObject) (noxapi.ListSandboxesResponseObject, error) {
	n := 100
	if req.Params.PageSize != nil {
		n = int(*req.Params.PageSize)
		if n < 1 || n > 1000 {
			return errorResponse{status: http.StatusBadRequest, msg: "pageSize: must be between 1 and 1000"}, nil
		}
	}
	after := ""
	if req.Params.PageToken != nil && *req.Params.PageToken != "" {
		raw, err := base64.RawURLEncoding.DecodeString(*req.Params.PageToken)
		if err != nil || !api.ValidSessionID(string(raw)) {
			return errorResponse{status: http.StatusBadRequest, msg: "pageToken: malformed continuation token"}, nil
		}
		after = string(raw)
	}
	items, more, err := h.b.List(ctx, after, n)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	out := noxapi.SandboxList{Items: make([]noxapi.SandboxStatus, 0, len(items))}
	for _, s := range items {
		out.Items = append(out.Items, sandboxStatus(s))
	}
	if more && len(items) > 0 {
		tok := base64.RawURLEncoding.EncodeToString([]byte(items[len(items)-1].ID))
		out.NextPageToken = &tok
	}
	return noxapi.ListSandboxes200JSONResponse(out), nil
}

// GetSandbox returns one sandbox's status without refreshing its expiry.
func (h *handlers) GetSandbox(ctx context.Context, req noxapi.GetSandboxRequestObject) (noxapi.GetSandboxResponseObject, error) {
	if err := checkSessionID(req.SessionID); err != nil {
		return h.errorFor(ctx, err), nil
	}
	s, err := h.b.Get(ctx, req.SessionID)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	return noxapi.GetSandbox200JSONResponse(sandboxStatus(s)), nil
}

// CreateSandbox creates or ensures a sandbox.
func (h *handlers) CreateSandbox(ctx context.Context, req noxapi.CreateSandboxRequestObject) (noxapi.CreateSandboxResponseObject, error) {
	if err := checkSessionID(req.SessionID); err != nil {
		return h.errorFor(ctx, err), nil
	}
	var body noxapi.CreateSandboxRequest
	if req.Body != nil {
		body = *req.Body
	}
	c, err := createRequest(body, h.info)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	if c.Network, err = createNetwork(body.Network, h.network != nil, h.info.Limits); err != nil {
		return h.errorFor(ctx, err), nil
	}
	s, err := h.b.Create(ctx, req.SessionID, c)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	return noxapi.CreateSandbox200JSONResponse{PodName: s.PodName, ExpiresAt: s.ExpiresAt}, nil
}

// DeleteSandbox stops a sandbox and removes its files.
func (h *handlers) DeleteSandbox(ctx context.Context, req noxapi.DeleteSandboxRequestObject) (noxapi.DeleteSandboxResponseObject, error) {
	if err := checkSessionID(req.SessionID); err != nil {
		return h.errorFor(ctx, err), nil
	}
	if err := h.b.Delete(ctx, req.SessionID); err != nil {
		return h.errorFor(ctx, err), nil
	}
	return noxapi.DeleteSandbox204Response{}, nil
}

// TouchSandbox extends a sandbox's TTL and answers 200 with a TouchResult.
func (h *handlers) TouchSandbox(ctx context.Context, req noxapi.TouchSandboxRequestObject) (noxapi.TouchSandboxResponseObject, error) {
	if err := checkSessionID(req.SessionID); err != nil {
		return h.errorFor(ctx, err), nil
	}
	exp, err := h.b.Touch(ctx, req.SessionID)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	msg := "TTL extended"
	return jsonOK{noxapi.TouchResult{Message: &msg, ExpiresAt: &exp}}, nil
}

// ExecInSandbox runs a command and answers when it ends.
func (h *handlers) ExecInSandbox(ctx context.Context, req noxapi.ExecInSandboxRequestObject) (noxapi.ExecInSandboxResponseObject, error) {
	x, err := h.startExec(ctx, req.SessionID, req.Body)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	res, err := x.Wait(ctx, nil)
	h.metrics.execEnded(res, err)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	return noxapi.ExecInSandbox200JSONResponse(h.execResult(res)), nil
}

// startExec checks an exec request and admits the command.
func (h *handlers) startExec(ctx context.Context, id string, body *noxapi.ExecRequest) (driver.Execution, error) {
	if err := checkSessionID(id); err != nil {
		return nil, err
	}
	x, err := execRequest(body, h.info.Limits, h.execStdin)
	if err != nil {
		return nil, err
	}
	ex, err := h.b.StartExec(ctx, id, x)
	if err != nil {
		h.metrics.execRefused(err)
	}
	return ex, err
}

// DownloadFiles streams a gzip tar of src.
func (h *handlers) DownloadFiles(ctx context.Context, req noxapi.DownloadFilesRequestObject) (noxapi.DownloadFilesResponseObject, error) {
	if err := checkSessionID(req.SessionID); err != nil {
		return h.errorFor(ctx, err), nil
	}
	src := api.Workspace
	if req.Params.Src != nil {
		src = *req.Params.Src
	}
	r, err := h.b.Download(ctx, req.SessionID, src)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	return noxapi.DownloadFiles200ApplicationXTarResponse{Body: r}, nil
}

// UploadFiles extracts a (gzip) tar archive under dest, all or nothing.
func (h *handlers) UploadFiles(ctx context.Context, req noxapi.UploadFilesRequestObject) (noxapi.UploadFilesResponseObject, error) {
	if err := checkSessionID(req.SessionID); err != nil {
		return h.errorFor(ctx, err), nil
	}
	dest := api.Workspace
	if req.Params.Dest != nil {
		dest = *req.Params.Dest
	}
	st, err := h.b.Upload(ctx, req.SessionID, dest, uploadBody{r: req.Body, what: "archive"})
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	msg := "files uploaded"
	return jsonOK{noxapi.UploadResult{Message: &msg, Files: &st.Files, Bytes: &st.Bytes}}, nil
}

// jsonOK is a 200 JSON answer for operations whose 200 the contract leaves
// undeclared (touch, upload) so that empty v1 bodies validate too.
type jsonOK struct{ v any }

func (j jsonOK) visit(w http.ResponseWriter) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	return json.NewEncoder(w).Encode(j.v)
}

func (j jsonOK) VisitTouchSandboxResponse(w http.ResponseWriter) error { return j.visit(w) }
func (j jsonOK) VisitUploadFilesResponse(w http.ResponseWriter) error  { return j.visit(w) }

// sandboxStatus converts a sandbox's status to the contract's type.
func sandboxStatus(s driver.Sandbox) noxapi.SandboxStatus {
	running := int32(s.RunningExecs)
	out := noxapi.SandboxStatus{
		SessionID: s.ID, PodName: s.PodName, State: noxapi.SandboxStatusState(s.State),
		CreatedAt: s.CreatedAt, LastActiveAt: s.LastActiveAt, ExpiresAt: s.ExpiresAt,
		TTLSeconds: int32(s.TTL / time.Second), RunningExecs: &running,
	}
	if s.Image != "" {
		image := s.Image
		out.Image = &image
	}
	if s.Network != nil {
		n := genNetwork(*s.Network)
		out.Network = &n
	}
	if s.Usage != nil {
		out.Usage = genUsage(*s.Usage)
	}
	if l := s.Limits; l != nil {
		cpu, mem, storage := quantity.FormatCPUMilli(l.CPUMilli), quantity.FormatBytes(l.MemoryBytes), quantity.FormatBytes(l.StorageBytes)
		pids := int32(min(l.Pids, 1<<31-1))
		out.Limits = &noxapi.ResourceLimits{CPU: &cpu, Memory: &mem, EphemeralStorage: &storage, Pids: &pids}
		if len(l.Unenforced) > 0 {
			out.Limits.Unenforced = slices.Clone(l.Unenforced)
		}
	}
	return out
}

// execResult converts how a command ended to the contract's type; the
// exec.flags fields are set when the backend reports that extension.
func (h *handlers) execResult(r driver.ExecResult) noxapi.ExecResult {
	out := noxapi.ExecResult{
		ExitCode:   int32(r.ExitCode),
		Stdout:     r.Stdout,
		Stderr:     r.Stderr,
		DurationMs: r.Duration.Milliseconds(),
	}
	if h.execFlags {
		out.TimedOut, out.OomKilled = &r.TimedOut, &r.OOMKilled
		out.StdoutTruncated, out.StderrTruncated = &r.StdoutTruncated, &r.StderrTruncated
	}
	return out
}
