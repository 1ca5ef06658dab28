package localbackend

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
)

// Server implements the contract's operations (noxapi.StrictServerInterface)
// on top of the store. It is the transport half of a Backend.
type Server struct {
	b *Backend
}

var _ noxapi.StrictServerInterface = (*Server)(nil)

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

// writeJSONError writes {"error": msg} with status.
func writeJSONError(w http.ResponseWriter, status int, msg string, retryAfter int) {
	w.Header().Set("Content-Type", "application/json")
	if retryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(retryAfter))
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(noxapi.Error{Error: msg})
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

// errorFor maps a domain error to the contract's answer. Errors that are
// not the client's fault are logged and answered as 500 without details.
func (s *Server) errorFor(ctx context.Context, err error) errorResponse {
	switch {
	case errors.Is(err, ErrInvalid):
		return errorResponse{status: http.StatusBadRequest, msg: trimSentinel(err, ErrInvalid)}
	case errors.Is(err, ErrNotFound):
		return errorResponse{status: http.StatusNotFound, msg: trimSentinel(err, ErrNotFound)}
	case errors.Is(err, ErrTooLarge):
		return errorResponse{status: http.StatusRequestEntityTooLarge, msg: trimSentinel(err, ErrTooLarge)}
	case errors.Is(err, ErrBusy):
		return errorResponse{status: http.StatusServiceUnavailable, msg: trimSentinel(err, ErrBusy), retryAfter: 1}
	case errors.Is(err, ErrUnavailable):
		return errorResponse{status: http.StatusServiceUnavailable, msg: trimSentinel(err, ErrUnavailable), retryAfter: 1}
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return errorResponse{status: http.StatusBadRequest, msg: "request cancelled"}
	}
	s.b.log.ErrorContext(ctx, "internal error", "requestId", requestIDFrom(ctx), "err", err)
	return errorResponse{status: http.StatusInternalServerError, msg: "internal error (request id " + requestIDFrom(ctx) + ")"}
}

// trimSentinel drops the ": <sentinel>" suffix that wrapping adds.
func trimSentinel(err, sentinel error) string {
	return strings.TrimSuffix(err.Error(), ": "+sentinel.Error())
}

// Healthz answers OK while the backend is open.
func (s *Server) Healthz(ctx context.Context, _ noxapi.HealthzRequestObject) (noxapi.HealthzResponseObject, error) {
	if s.b.closed() {
		return noxapi.Healthz503TextResponse("backend is closed"), nil
	}
	return noxapi.Healthz200TextResponse("OK"), nil
}

// GetInfo describes the backend, its extensions and limits.
func (s *Server) GetInfo(ctx context.Context, _ noxapi.GetInfoRequestObject) (noxapi.GetInfoResponseObject, error) {
	return noxapi.GetInfo200JSONResponse(s.b.apiInfo()), nil
}

// ListSandboxes pages through the sandboxes ordered by session id.
func (s *Server) ListSandboxes(ctx context.Context, req noxapi.ListSandboxesRequestObject) (noxapi.ListSandboxesResponseObject, error) {
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
		if err != nil || validateSessionID(string(raw)) != nil {
			return errorResponse{status: http.StatusBadRequest, msg: "pageToken: malformed continuation token"}, nil
		}
		after = string(raw)
	}
	items, more := s.b.store.list(after, n)
	out := noxapi.SandboxList{Items: make([]noxapi.SandboxStatus, 0, len(items))}
	for _, st := range items {
		out.Items = append(out.Items, s.b.sandboxStatus(st))
	}
	if more && len(items) > 0 {
		tok := base64.RawURLEncoding.EncodeToString([]byte(items[len(items)-1].meta.SessionID))
		out.NextPageToken = &tok
	}
	return noxapi.ListSandboxes200JSONResponse(out), nil
}

// DeleteSandbox stops a sandbox and removes its files.
func (s *Server) DeleteSandbox(ctx context.Context, req noxapi.DeleteSandboxRequestObject) (noxapi.DeleteSandboxResponseObject, error) {
	if err := validateSessionID(req.SessionID); err != nil {
		return s.errorFor(ctx, err), nil
	}
	if err := s.b.store.remove(req.SessionID); err != nil {
		return s.errorFor(ctx, err), nil
	}
	return noxapi.DeleteSandbox204Response{}, nil
}

// GetSandbox returns one sandbox's status without refreshing its expiry.
func (s *Server) GetSandbox(ctx context.Context, req noxapi.GetSandboxRequestObject) (noxapi.GetSandboxResponseObject, error) {
	if err := validateSessionID(req.SessionID); err != nil {
		return s.errorFor(ctx, err), nil
	}
	st, err := s.b.store.get(req.SessionID)
	if err != nil {
		return s.errorFor(ctx, err), nil
	}
	return noxapi.GetSandbox200JSONResponse(s.b.sandboxStatus(st)), nil
}

// CreateSandbox creates or ensures a sandbox.
func (s *Server) CreateSandbox(ctx context.Context, req noxapi.CreateSandboxRequestObject) (noxapi.CreateSandboxResponseObject, error) {
	if err := validateSessionID(req.SessionID); err != nil {
		return s.errorFor(ctx, err), nil
	}
	var body noxapi.CreateSandboxRequest
	if req.Body != nil {
		body = *req.Body
	}
	p, err := s.b.validateCreate(body)
	if err != nil {
		return s.errorFor(ctx, err), nil
	}
	m, err := s.b.store.ensure(ctx, req.SessionID, p)
	if err != nil {
		return s.errorFor(ctx, err), nil
	}
	return noxapi.CreateSandbox200JSONResponse{PodName: m.PodName, ExpiresAt: m.expiresAt()}, nil
}

// ExecInSandbox runs a command and answers when it ends.
func (s *Server) ExecInSandbox(ctx context.Context, req noxapi.ExecInSandboxRequestObject) (noxapi.ExecInSandboxResponseObject, error) {
	p, err := s.execParams(req.SessionID, req.Body)
	if err != nil {
		return s.errorFor(ctx, err), nil
	}
	out, err := s.b.store.exec(ctx, req.SessionID, p)
	if err != nil {
		return s.errorFor(ctx, err), nil
	}
	return noxapi.ExecInSandbox200JSONResponse(execResult(out)), nil
}

func (s *Server) execParams(id string, body *noxapi.ExecRequest) (execParams, error) {
	if err := validateSessionID(id); err != nil {
		return execParams{}, err
	}
	if body == nil {
		return execParams{}, fmt.Errorf("body: required: %w", ErrInvalid)
	}
	return s.b.store.validateExec(body.Cmd, body.Workdir, body.Env, body.TimeoutSeconds)
}

func execResult(o execOutcome) noxapi.ExecResult {
	return noxapi.ExecResult{
		ExitCode:        int32(o.exitCode),
		Stdout:          o.stdout,
		Stderr:          o.stderr,
		DurationMs:      o.duration.Milliseconds(),
		TimedOut:        &o.timedOut,
		StdoutTruncated: &o.stdoutTruncated,
		StderrTruncated: &o.stderrTruncated,
		OomKilled:       &o.oomKilled,
	}
}

// DownloadFiles streams a gzip tar of src.
func (s *Server) DownloadFiles(ctx context.Context, req noxapi.DownloadFilesRequestObject) (noxapi.DownloadFilesResponseObject, error) {
	if err := validateSessionID(req.SessionID); err != nil {
		return s.errorFor(ctx, err), nil
	}
	src := workspaceDir
	if req.Params.Src != nil {
		src = *req.Params.Src
	}
	r, err := s.b.store.download(ctx, req.SessionID, src)
	if err != nil {
		return s.errorFor(ctx, err), nil
	}
	return noxapi.DownloadFiles200ApplicationXTarResponse{Body: r}, nil
}

// UploadFiles extracts a (gzip) tar archive under dest, all or nothing.
func (s *Server) UploadFiles(ctx context.Context, req noxapi.UploadFilesRequestObject) (noxapi.UploadFilesResponseObject, error) {
	if err := validateSessionID(req.SessionID); err != nil {
		return s.errorFor(ctx, err), nil
	}
	dest := workspaceDir
	if req.Params.Dest != nil {
		dest = *req.Params.Dest
	}
	st, err := s.b.store.upload(ctx, req.SessionID, dest, req.Body)
	if err != nil {
		return s.errorFor(ctx, err), nil
	}
	msg := "files uploaded"
	return jsonOK{noxapi.UploadResult{Message: &msg, Files: &st.files, Bytes: &st.bytes}}, nil
}

// TouchSandbox extends a sandbox's TTL and answers 200 with a TouchResult.
func (s *Server) TouchSandbox(ctx context.Context, req noxapi.TouchSandboxRequestObject) (noxapi.TouchSandboxResponseObject, error) {
	if err := validateSessionID(req.SessionID); err != nil {
		return s.errorFor(ctx, err), nil
	}
	m, err := s.b.store.touch(req.SessionID)
	if err != nil {
		return s.errorFor(ctx, err), nil
	}
	msg, exp := "TTL extended", m.expiresAt()
	return jsonOK{noxapi.TouchResult{Message: &msg, ExpiresAt: &exp}}, nil
}

// validateCreate checks a create request against the configured limits.
func (b *Backend) validateCreate(r noxapi.CreateSandboxRequest) (createParams, error) {
	var p createParams
	c := &b.cfg
	if r.TTLSeconds != nil {
		max := int64(c.MaxTTL / time.Second)
		if t := int64(*r.TTLSeconds); t < 1 || t > max {
			return p, fmt.Errorf("ttlSeconds: must be between 1 and %d: %w", max, ErrInvalid)
		}
		p.ttlSeconds = *r.TTLSeconds
	}
	p.image = c.DefaultImageName
	if r.Image != nil {
		if _, ok := c.Images[*r.Image]; !ok {
			return p, fmt.Errorf("image: unknown image %q; available: %s: %w", *r.Image, strings.Join(c.imageNames(), ", "), ErrInvalid)
		}
		p.image = *r.Image
	}
	quantity := func(field string, v *string, parse func(string) (int64, error), def, max int64, format func(int64) string) (int64, error) {
		if v == nil {
			return def, nil
		}
		n, err := parse(*v)
		if err != nil {
			return 0, fmt.Errorf("%s: %v: %w", field, err, ErrInvalid)
		}
		if n <= 0 {
			return 0, fmt.Errorf("%s: must be greater than zero: %w", field, ErrInvalid)
		}
		if n > max {
			return 0, fmt.Errorf("%s: %q exceeds the maximum %s: %w", field, *v, format(max), ErrInvalid)
		}
		return n, nil
	}
	var err error
	if p.cpuMilli, err = quantity("cpuLimit", r.CPULimit, parseCPUMilli, b.lim.defCPU, b.lim.maxCPU, formatCPUMilli); err != nil {
		return p, err
	}
	if p.memoryBytes, err = quantity("memoryLimit", r.MemoryLimit, parseBytes, b.lim.defMemory, b.lim.maxMemory, formatBytes); err != nil {
		return p, err
	}
	if p.storageBytes, err = quantity("ephemeralStorageLimit", r.EphemeralStorageLimit, parseBytes, b.lim.defStorage, b.lim.maxStorage, formatBytes); err != nil {
		return p, err
	}
	return p, nil
}

// sandboxStatus converts a store snapshot to the contract's type.
func (b *Backend) sandboxStatus(st boxStatus) noxapi.SandboxStatus {
	m := st.meta
	cpu, mem, storage := formatCPUMilli(m.CPUMilli), formatBytes(m.MemoryBytes), formatBytes(m.StorageBytes)
	pids := int32(min(m.Pids, 1<<31-1))
	running := int32(st.runningExecs)
	image := m.Image
	lim := &noxapi.ResourceLimits{CPU: &cpu, Memory: &mem, EphemeralStorage: &storage, Pids: &pids}
	if u := b.report.Unenforced; len(u) > 0 {
		lim.Unenforced = slices.Clone(u)
	}
	return noxapi.SandboxStatus{
		SessionID: m.SessionID, PodName: m.PodName, State: noxapi.SandboxStatusState(st.state),
		Image: &image, CreatedAt: m.CreatedAt, LastActiveAt: m.LastActiveAt, ExpiresAt: m.expiresAt(),
		TTLSeconds: m.TTLSeconds, Limits: lim, RunningExecs: &running,
	}
}
