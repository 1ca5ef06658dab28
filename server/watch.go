package server

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/internal/sse"
)

// watchBatch is the most events written between two flushes.
const watchBatch = 64

// WatchPath streams the changes below a directory as Server-Sent Events.
// Errors found before the watch is in place (a bad path, a missing
// directory, the backend's limit of watches) are ordinary JSON answers.
func (h *handlers) WatchPath(ctx context.Context, req noxapi.WatchPathRequestObject) (noxapi.WatchPathResponseObject, error) {
	if err := checkSessionID(req.SessionID); err != nil {
		return h.errorFor(ctx, err), nil
	}
	if h.watcher == nil {
		return noFiles, nil
	}
	p, err := resolvePath("path", req.Params.Path)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	wr := driver.WatchRequest{Path: p, Recursive: req.Params.Recursive != nil && *req.Params.Recursive}
	w, err := h.watcher.Watch(ctx, req.SessionID, wr)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	return &watchStream{ctx: ctx, w: w, h: h}, nil
}

// watchStream is the event stream of one watch. It holds the request's
// context only for the lifetime of the response.
type watchStream struct {
	ctx context.Context
	w   driver.Watch
	h   *handlers
}

// VisitWatchPathResponse writes the stream: ready first, then a change
// (or overflow) event per event of the watch, heartbeat comments during
// silences, and an error event when the watch ends on a failure. The
// watch is closed when the client goes away. A client that stops reading
// is cut off by the stall deadline (stallDeadlines), like any stream.
func (s *watchStream) VisitWatchPathResponse(w http.ResponseWriter) error {
	defer s.w.Close()
	rc, err := openEventStream(w)
	if err != nil {
		return err
	}
	if err := sse.WriteEvent(w, "ready", []byte("{}")); err != nil {
		return err
	}
	if err := rc.Flush(); err != nil {
		return err
	}
	heartbeat := s.h.opts.StreamHeartbeat
	hb := time.NewTimer(heartbeat)
	defer hb.Stop()
	events := s.w.Events()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return s.end(w, rc)
			}
			// Write what is queued, then flush once.
			batch, closed := drain(events, ev)
			for _, ev := range batch {
				if err := writeFileEvent(w, ev); err != nil {
					return err
				}
			}
			if err := rc.Flush(); err != nil {
				return err
			}
			if closed {
				return s.end(w, rc)
			}
			hb.Reset(heartbeat)
		case <-hb.C:
			if err := writeHeartbeat(w, rc); err != nil {
				return err
			}
			hb.Reset(heartbeat)
		case <-s.ctx.Done():
			return nil
		}
	}
}

// drain returns first and up to watchBatch-1 more events that are
// already queued, and whether events is closed.
func drain(events <-chan driver.FileEvent, first driver.FileEvent) ([]driver.FileEvent, bool) {
	batch := []driver.FileEvent{first}
	for len(batch) < watchBatch {
		select {
		case ev, ok := <-events:
			if !ok {
				return batch, true
			}
			batch = append(batch, ev)
		default:
			return batch, false
		}
	}
	return batch, false
}

// end writes the error event of a watch that ended on a failure.
func (s *watchStream) end(w http.ResponseWriter, rc *http.ResponseController) error {
	err := s.w.Err()
	if err == nil || s.ctx.Err() != nil {
		return nil
	}
	data, _ := json.Marshal(noxapi.Error{Error: s.h.errorFor(s.ctx, err).msg})
	if err := sse.WriteEvent(w, "error", data); err != nil {
		return err
	}
	return rc.Flush()
}

// writeFileEvent writes one event of a watch: overflow with data {}, or
// change with the FileEvent.
func writeFileEvent(w http.ResponseWriter, ev driver.FileEvent) error {
	if ev.Type == driver.EventOverflow {
		return sse.WriteEvent(w, "overflow", []byte("{}"))
	}
	out := noxapi.FileEvent{Type: noxapi.FileEventType(ev.Type), Path: ev.Path}
	if ev.OldPath != "" {
		old := ev.OldPath
		out.OldPath = &old
	}
	isDir := ev.IsDir
	out.IsDir = &isDir
	data, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return sse.WriteEvent(w, "change", data)
}
