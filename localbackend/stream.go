package localbackend

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
)

// ExecInSandboxStream runs a command and streams its output as
// Server-Sent Events. Errors found before the command starts are ordinary
// JSON answers.
func (s *Server) ExecInSandboxStream(ctx context.Context, req noxapi.ExecInSandboxStreamRequestObject) (noxapi.ExecInSandboxStreamResponseObject, error) {
	p, err := s.execParams(req.SessionID, req.Body)
	if err != nil {
		return s.errorFor(ctx, err), nil
	}
	h, err := s.b.store.startExec(ctx, req.SessionID, p)
	if err != nil {
		return s.errorFor(ctx, err), nil
	}
	return &sseExec{ctx: ctx, h: h, heartbeat: s.b.cfg.StreamHeartbeat, log: s.b}, nil
}

// sseExec is the event stream of one command. It holds the request's
// context only for the lifetime of the response.
type sseExec struct {
	ctx       context.Context
	h         *execHandle
	heartbeat time.Duration
	log       *Backend

	mu     sync.Mutex
	queue  []sseEvent
	notify chan struct{}
}

type sseEvent struct {
	name string
	data []byte
}

func (e *sseExec) push(name string, v any) {
	data, _ := json.Marshal(v)
	e.mu.Lock()
	e.queue = append(e.queue, sseEvent{name, data})
	e.mu.Unlock()
	select {
	case e.notify <- struct{}{}:
	default:
	}
}

func (e *sseExec) take() []sseEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.queue
	e.queue = nil
	return q
}

// VisitExecInSandboxStreamResponse writes the stream: stdout and stderr
// events as output arrives, heartbeat comments during silences, then one
// exit (or error) event. A client that goes away cancels the command.
func (e *sseExec) VisitExecInSandboxStreamResponse(w http.ResponseWriter) error {
	e.notify = make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	type result struct {
		out execOutcome
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := e.h.run(ctx,
			func(s string) { e.push("stdout", noxapi.OutputChunk{Data: s}) },
			func(s string) { e.push("stderr", noxapi.OutputChunk{Data: s}) })
		done <- result{out, err}
	}()
	// Once the goroutine is started, always wait for it so the sandbox's
	// exec count and the server slot are released before we return.
	var final *result
	defer func() {
		if final == nil {
			cancel()
			<-done
		}
	}()

	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return err
	}
	write := func(evs []sseEvent) error {
		for _, ev := range evs {
			if _, err := io.WriteString(w, "event: "+ev.name+"\ndata: "+string(ev.data)+"\n\n"); err != nil {
				return err
			}
		}
		return rc.Flush()
	}
	hb := time.NewTimer(e.heartbeat)
	defer hb.Stop()
	for {
		select {
		case <-e.notify:
			if err := write(e.take()); err != nil {
				return err
			}
			hb.Reset(e.heartbeat)
		case <-hb.C:
			if _, err := io.WriteString(w, ": heartbeat\n\n"); err != nil {
				return err
			}
			if err := rc.Flush(); err != nil {
				return err
			}
			hb.Reset(e.heartbeat)
		case r := <-done:
			final = &r
			evs := e.take()
			if r.err != nil {
				if e.ctx.Err() != nil {
					return nil // the client went away
				}
				msg := e.log.server.errorFor(e.ctx, r.err).msg
				data, _ := json.Marshal(noxapi.Error{Error: msg})
				evs = append(evs, sseEvent{"error", data})
			} else {
				data, _ := json.Marshal(execResult(r.out))
				evs = append(evs, sseEvent{"exit", data})
			}
			return write(evs)
		case <-e.ctx.Done():
			return nil
		}
	}
}
