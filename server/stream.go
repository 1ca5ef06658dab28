package server

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/internal/sse"
)

// ExecInSandboxStream runs a command and streams its output as
// Server-Sent Events. Errors found before the command starts are ordinary
// JSON answers.
func (h *handlers) ExecInSandboxStream(ctx context.Context, req noxapi.ExecInSandboxStreamRequestObject) (noxapi.ExecInSandboxStreamResponseObject, error) {
	x, err := h.startExec(ctx, req.SessionID, req.Body)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	return &execStream{ctx: ctx, x: x, h: h}, nil
}

// execStream is the event stream of one command. It holds the request's
// context only for the lifetime of the response.
type execStream struct {
	ctx context.Context
	x   driver.Execution
	h   *handlers

	mu     sync.Mutex
	queue  []event
	notify chan struct{}
}

// event is one event of the stream, its data encoded.
type event struct {
	name string
	data []byte
}

// push queues an event; it never blocks the command's output.
func (e *execStream) push(name string, v any) {
	data, _ := json.Marshal(v)
	e.mu.Lock()
	e.queue = append(e.queue, event{name, data})
	e.mu.Unlock()
	select {
	case e.notify <- struct{}{}:
	default:
	}
}

// take returns and clears the queued events.
func (e *execStream) take() []event {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.queue
	e.queue = nil
	return q
}

// waitResult is how Wait returned.
type waitResult struct {
	res driver.ExecResult
	err error
}

// VisitExecInSandboxStreamResponse writes the stream: stdout and stderr
// events as output arrives, heartbeat comments during silences, then one
// exit (or error) event. A client that goes away cancels the command.
func (e *execStream) VisitExecInSandboxStreamResponse(w http.ResponseWriter) error {
	e.notify = make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	done := make(chan waitResult, 1)
	go func() {
		var r waitResult
		defer func() { done <- r }()
		defer func() {
			if _, ok := r.err.(panicError); ok {
				e.x.Abort() // Wait did not finish: release the command
			}
		}()
		defer func() { e.h.metrics.execEnded(r.res, r.err) }()
		defer recoverTo(ctx, e.h.log, &r.err)
		r.res, r.err = e.x.Wait(ctx, func(s driver.Stream, data string) {
			e.push(s.String(), noxapi.OutputChunk{Data: data})
		})
	}()
	// Once the command runs, always wait for it so that the backend has
	// released it before we return.
	finished := false
	defer func() {
		if !finished {
			cancel()
			<-done
		}
	}()

	rc, err := openEventStream(w)
	if err != nil {
		return err
	}
	write := func(evs []event) error {
		for _, ev := range evs {
			if err := sse.WriteEvent(w, ev.name, ev.data); err != nil {
				return err
			}
		}
		return rc.Flush()
	}
	heartbeat := e.h.opts.StreamHeartbeat
	hb := time.NewTimer(heartbeat)
	defer hb.Stop()
	for {
		select {
		case <-e.notify:
			if err := write(e.take()); err != nil {
				return err
			}
			hb.Reset(heartbeat)
		case <-hb.C:
			if err := writeHeartbeat(w, rc); err != nil {
				return err
			}
			hb.Reset(heartbeat)
		case r := <-done:
			finished = true
			if r.err != nil && e.ctx.Err() != nil {
				return nil // the client went away
			}
			return write(append(e.take(), e.last(r)))
		case <-e.ctx.Done():
			return nil
		}
	}
}

// last is the final event: exit with the result, or error.
func (e *execStream) last(r waitResult) event {
	if r.err != nil {
		data, _ := json.Marshal(noxapi.Error{Error: e.h.errorFor(e.ctx, r.err).msg})
		return event{"error", data}
	}
	data, _ := json.Marshal(e.h.execResult(r.res))
	return event{"exit", data}
}
