package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
)

// The processes extension's operations that answer one JSON record or
// list. Each checks the ids, calls the backend's driver.Processes and
// converts its answer; the endpoints of a backend without it never reach
// these handlers (withoutExtensions answers them 404). The wait, the
// output stream, stdin and the terminal have their own files.

// noProcesses answers a processes operation on a backend without
// driver.Processes, should one reach a handler despite withoutExtensions.
var noProcesses = errorResponse{status: http.StatusNotFound, msg: "no such endpoint: the backend does not implement the processes extension"}

// errNoProcesses is the error of processFor and procsFor on a backend
// without driver.Processes; procErr answers it as noProcesses.
var errNoProcesses = fmt.Errorf("%s: %w", noProcesses.msg, driver.ErrNotFound)

// procsFor checks the session id and that the backend serves processes.
func (h *handlers) procsFor(id string) (driver.Processes, error) {
	if err := checkSessionID(id); err != nil {
		return nil, err
	}
	if h.procs == nil {
		return nil, errNoProcesses
	}
	return h.procs, nil
}

// processFor checks the ids and returns process pid of sandbox id.
func (h *handlers) processFor(ctx context.Context, id, pid string) (driver.Process, error) {
	procs, err := h.procsFor(id)
	if err != nil {
		return nil, err
	}
	if err := checkProcessID(pid); err != nil {
		return nil, err
	}
	return procs.Process(ctx, id, pid)
}

// procErr answers err, which may be errNoProcesses.
func (h *handlers) procErr(ctx context.Context, err error) errorResponse {
	if err == errNoProcesses {
		return noProcesses
	}
	return h.errorFor(ctx, err)
}

// StartProcess starts a process and answers 201 with its record.
func (h *handlers) StartProcess(ctx context.Context, req noxapi.StartProcessRequestObject) (noxapi.StartProcessResponseObject, error) {
	procs, err := h.procsFor(req.SessionID)
	if err != nil {
		return h.procErr(ctx, err), nil
	}
	x, err := processRequest(req.Body, h.info.Limits)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	p, err := procs.StartProcess(ctx, req.SessionID, x)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	return noxapi.StartProcess201JSONResponse(processRecord(p.Info())), nil
}

// ListProcesses answers the sandbox's records, oldest first, those with
// the tag asked for only.
func (h *handlers) ListProcesses(ctx context.Context, req noxapi.ListProcessesRequestObject) (noxapi.ListProcessesResponseObject, error) {
	procs, err := h.procsFor(req.SessionID)
	if err != nil {
		return h.procErr(ctx, err), nil
	}
	infos, err := procs.ListProcesses(ctx, req.SessionID)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	out := noxapi.ProcessList{Items: make([]noxapi.Process, 0, len(infos))}
	for _, in := range infos {
		if req.Params.Tag == nil || in.Tag == *req.Params.Tag {
			out.Items = append(out.Items, processRecord(in))
		}
	}
	return noxapi.ListProcesses200JSONResponse(out), nil
}

// GetProcess answers a process's record as it is now.
func (h *handlers) GetProcess(ctx context.Context, req noxapi.GetProcessRequestObject) (noxapi.GetProcessResponseObject, error) {
	p, err := h.processFor(ctx, req.SessionID, req.ProcessID)
	if err != nil {
		return h.procErr(ctx, err), nil
	}
	return noxapi.GetProcess200JSONResponse(processRecord(p.Info())), nil
}

// KillProcess kills a process and its descendants and answers its final
// record.
func (h *handlers) KillProcess(ctx context.Context, req noxapi.KillProcessRequestObject) (noxapi.KillProcessResponseObject, error) {
	p, err := h.processFor(ctx, req.SessionID, req.ProcessID)
	if err != nil {
		return h.procErr(ctx, err), nil
	}
	in, err := p.Kill(ctx)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	return noxapi.KillProcess200JSONResponse(processRecord(in)), nil
}

// SignalProcess sends a signal to a process's group and answers its
// record.
func (h *handlers) SignalProcess(ctx context.Context, req noxapi.SignalProcessRequestObject) (noxapi.SignalProcessResponseObject, error) {
	p, err := h.processFor(ctx, req.SessionID, req.ProcessID)
	if err != nil {
		return h.procErr(ctx, err), nil
	}
	if req.Body == nil {
		return h.errorFor(ctx, invalid("body: required")), nil
	}
	sig, err := checkSignal(string(req.Body.Signal))
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	if err := p.Signal(sig); err != nil {
		return h.errorFor(ctx, err), nil
	}
	return noxapi.SignalProcess200JSONResponse(processRecord(p.Info())), nil
}

// ResizeProcess sets the window size of a process's terminal (204).
func (h *handlers) ResizeProcess(ctx context.Context, req noxapi.ResizeProcessRequestObject) (noxapi.ResizeProcessResponseObject, error) {
	p, err := h.processFor(ctx, req.SessionID, req.ProcessID)
	if err != nil {
		return h.procErr(ctx, err), nil
	}
	if req.Body == nil {
		return h.errorFor(ctx, invalid("body: required")), nil
	}
	size, err := termSize("body", *req.Body)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	if err := p.Resize(size); err != nil {
		return h.errorFor(ctx, err), nil
	}
	return noxapi.ResizeProcess204Response{}, nil
}

// processRecord converts a process's record to the contract's type.
func processRecord(in driver.ProcessInfo) noxapi.Process {
	out := noxapi.Process{
		ID:          in.ID,
		Cmd:         slices.Clone(in.Argv),
		State:       noxapi.ProcessState(in.State),
		StartedAt:   in.StartedAt,
		Pty:         &in.PTY,
		Stdin:       &in.Stdin,
		TimedOut:    &in.TimedOut,
		OomKilled:   &in.OOMKilled,
		OutputBytes: in.OutputBytes,
		OutputStart: in.OutputStart,
	}
	if out.Cmd == nil {
		out.Cmd = []string{}
	}
	if in.Tag != "" {
		out.Tag = &in.Tag
	}
	if in.Workdir != "" {
		out.Workdir = &in.Workdir
	}
	if !in.EndedAt.IsZero() {
		out.EndedAt = &in.EndedAt
	}
	if in.State == driver.ProcessExited {
		code := int32(in.ExitCode)
		out.ExitCode = &code
	}
	if in.Signal != "" {
		sig := string(in.Signal)
		out.Signal = &sig
	}
	return out
}
