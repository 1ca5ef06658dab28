package server

// The processes extension's handlers. Until they are written, the
// operations answer 404 like any extension a backend does not implement.

import (
	"context"
	"net/http"

	"github.com/noxrunner/nox/gen/noxapi"
)

var noProcesses = errorResponse{status: http.StatusNotFound, msg: "no such endpoint: the backend does not implement the processes extension"}

// StartProcess is not implemented yet.
func (h *handlers) StartProcess(ctx context.Context, req noxapi.StartProcessRequestObject) (noxapi.StartProcessResponseObject, error) {
	return noProcesses, nil
}

// ListProcesses is not implemented yet.
func (h *handlers) ListProcesses(ctx context.Context, req noxapi.ListProcessesRequestObject) (noxapi.ListProcessesResponseObject, error) {
	return noProcesses, nil
}

// GetProcess is not implemented yet.
func (h *handlers) GetProcess(ctx context.Context, req noxapi.GetProcessRequestObject) (noxapi.GetProcessResponseObject, error) {
	return noProcesses, nil
}

// KillProcess is not implemented yet.
func (h *handlers) KillProcess(ctx context.Context, req noxapi.KillProcessRequestObject) (noxapi.KillProcessResponseObject, error) {
	return noProcesses, nil
}

// WaitProcess is not implemented yet.
func (h *handlers) WaitProcess(ctx context.Context, req noxapi.WaitProcessRequestObject) (noxapi.WaitProcessResponseObject, error) {
	return noProcesses, nil
}

// StreamProcessOutput is not implemented yet.
func (h *handlers) StreamProcessOutput(ctx context.Context, req noxapi.StreamProcessOutputRequestObject) (noxapi.StreamProcessOutputResponseObject, error) {
	return noProcesses, nil
}

// WriteProcessStdin is not implemented yet.
func (h *handlers) WriteProcessStdin(ctx context.Context, req noxapi.WriteProcessStdinRequestObject) (noxapi.WriteProcessStdinResponseObject, error) {
	return noProcesses, nil
}

// SignalProcess is not implemented yet.
func (h *handlers) SignalProcess(ctx context.Context, req noxapi.SignalProcessRequestObject) (noxapi.SignalProcessResponseObject, error) {
	return noProcesses, nil
}

// ResizeProcess is not implemented yet.
func (h *handlers) ResizeProcess(ctx context.Context, req noxapi.ResizeProcessRequestObject) (noxapi.ResizeProcessResponseObject, error) {
	return noProcesses, nil
}

// AttachTerminal is not implemented yet.
func (h *handlers) AttachTerminal(ctx context.Context, req noxapi.AttachTerminalRequestObject) (noxapi.AttachTerminalResponseObject, error) {
	return noProcesses, nil
}
