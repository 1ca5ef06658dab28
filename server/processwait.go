package server

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
)

// WaitProcess answers a process's record once it has ended, or as it is
// when the wait's timeout passes: timeoutSeconds (default 30 s), capped
// by Limits.MaxProcessWait (default defaultMaxProcessWait). The wait
// itself happens while answering (processWait), where the connection's
// write deadline can be lifted for it.
func (h *handlers) WaitProcess(ctx context.Context, req noxapi.WaitProcessRequestObject) (noxapi.WaitProcessResponseObject, error) {
	p, err := h.processFor(ctx, req.SessionID, req.ProcessID)
	if err != nil {
		return h.procErr(ctx, err), nil
	}
	d, err := waitTimeout(req.Params.TimeoutSeconds, h.info.Limits.MaxProcessWait)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	return &processWait{ctx: ctx, h: h, p: p, timeout: d}, nil
}

// processWait is the answer of one waitProcess request. It holds the
// request's context only for the lifetime of the response.
type processWait struct {
	ctx     context.Context
	h       *handlers
	p       driver.Process
	timeout time.Duration
}

// VisitWaitProcessResponse waits, then writes the record. Nothing is
// written during the wait, so a server's WriteTimeout, which bounds the
// time from the request to the end of the answer, would cut a long one:
// the write deadline is cleared first (under stallDeadlines it follows
// the writes anyway). A client that goes away ends the wait, not the
// process.
func (v *processWait) VisitWaitProcessResponse(w http.ResponseWriter) error {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	in, err := v.wait()
	if err != nil {
		if v.ctx.Err() != nil {
			return nil // the client went away
		}
		v.h.errorFor(v.ctx, err).visit(w)
		return nil
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	return json.NewEncoder(w).Encode(processRecord(in))
}

// wait returns the final record, or the record as it is at the timeout.
func (v *processWait) wait() (driver.ProcessInfo, error) {
	if v.timeout <= 0 {
		return v.p.Info(), nil
	}
	ctx, cancel := context.WithTimeout(v.ctx, v.timeout)
	defer cancel()
	in, err := v.p.Wait(ctx)
	if err != nil && ctx.Err() != nil && v.ctx.Err() == nil {
		return v.p.Info(), nil
	}
	return in, err
}
