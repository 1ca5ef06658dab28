package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/internal/sse"
)

// StreamProcessOutput streams a process's output from an offset as
// Server-Sent Events. Errors found before the stream begins (bad ids or
// offset, unknown process) are ordinary JSON answers.
func (h *handlers) StreamProcessOutput(ctx context.Context, req noxapi.StreamProcessOutputRequestObject) (noxapi.StreamProcessOutputResponseObject, error) {
	p, err := h.processFor(ctx, req.SessionID, req.ProcessID)
	if err != nil {
		return h.procErr(ctx, err), nil
	}
	from, err := outputFrom(req.Params)
	if err != nil {
		return h.errorFor(ctx, err), nil
	}
	s := &outputStream{ctx: ctx, h: h, p: p, from: from}
	if req.Params.Follow != nil && !*req.Params.Follow {
		// Without follow, a running process's stream ends where its
		// output was when the request came.
		if in := p.Info(); in.State == driver.ProcessRunning {
			s.bounded, s.until = true, in.OutputBytes
		}
	}
	return s, nil
}

// outputFrom is the offset a stream starts at: Last-Event-ID when sent
// (an EventSource reconnecting), else from, else 0.
func outputFrom(p noxapi.StreamProcessOutputParams) (int64, error) {
	if id := p.LastEventID; id != nil && *id != "" {
		n, err := strconv.ParseInt(*id, 10, 64)
		if err != nil || n < 0 || (*id)[0] < '0' || (*id)[0] > '9' {
			return 0, invalid("Last-Event-ID: %q is not an output offset (a non-negative integer)", *id)
		}
		return n, nil
	}
	if p.From == nil {
		return 0, nil
	}
	if *p.From < 0 {
		return 0, invalid("from: must not be negative")
	}
	return *p.From, nil
}

// outputAhead is how many chunks the reader may fetch before they are
// written: a replay then writes many events per flush.
const outputAhead = 16

// outputStream is the event stream of one process's output. It holds the
// request's context only for the lifetime of the response.
type outputStream struct {
	ctx  context.Context
	h    *handlers
	p    driver.Process
	from int64
	// bounded (follow=false on a running process): the stream ends with
	// an end event once it reached until.
	bounded bool
	until   int64
}

// outputItem is what OutputReader.Next returned.
type outputItem struct {
	c   driver.OutputChunk
	err error
}

// VisitStreamProcessOutputResponse writes the stream: output events
// (after a truncated event when output was dropped), flushed once no more
// output is ready; heartbeat comments during silences; then exit once
// the process has ended and all its output was sent, end when a bounded
// stream is complete, or error. The client going away ends the stream,
// never the process.
func (s *outputStream) VisitStreamProcessOutputResponse(w http.ResponseWriter) error {
	ctx, cancel := context.WithCancel(s.ctx)
	items := make(chan outputItem, outputAhead)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.pump(ctx, s.p.Output(s.from), items)
	}()
	defer func() {
		cancel()
		<-done
	}()
	rc, err := openEventStream(w)
	if err != nil {
		return err
	}
	heartbeat := s.h.opts.StreamHeartbeat
	hb := time.NewTimer(heartbeat)
	defer hb.Stop()
	pos, flushed := s.from, true
	for {
		if s.bounded && pos >= s.until {
			return writeFlush(w, rc, "end", []byte("{}"))
		}
		var it outputItem
		select {
		case it = <-items:
		default:
			if !flushed {
				if err := rc.Flush(); err != nil {
					return err
				}
				flushed = true
				hb.Reset(heartbeat)
			}
			select {
			case it = <-items:
			case <-hb.C:
				if err := writeHeartbeat(w, rc); err != nil {
					return err
				}
				hb.Reset(heartbeat)
				continue
			case <-s.ctx.Done():
				return nil
			}
		}
		if it.err != nil {
			return s.last(w, rc, it.err)
		}
		if err := writeOutputEvents(w, it.c); err != nil {
			return err
		}
		pos, flushed = it.c.Offset+int64(len(it.c.Data)), false
	}
}

// pump sends what r's Next returns to items until an error (io.EOF
// included) was sent or ctx ends.
func (s *outputStream) pump(ctx context.Context, r driver.OutputReader, items chan<- outputItem) {
	for {
		var it outputItem
		func() {
			defer recoverTo(ctx, s.h.log, &it.err)
			it.c, it.err = r.Next(ctx)
		}()
		select {
		case items <- it:
		case <-ctx.Done():
			return
		}
		if it.err != nil {
			return
		}
	}
}

// last writes the final event for the error Next returned: exit with the
// final record on io.EOF, else error.
func (s *outputStream) last(w http.ResponseWriter, rc *http.ResponseController, err error) error {
	if s.ctx.Err() != nil {
		return nil // the client went away
	}
	if err == io.EOF {
		var in driver.ProcessInfo
		if in, err = s.p.Wait(s.ctx); err == nil {
			data, _ := json.Marshal(processRecord(in))
			return writeFlush(w, rc, "exit", data)
		}
		if s.ctx.Err() != nil {
			return nil
		}
	}
	data, _ := json.Marshal(noxapi.Error{Error: s.h.errorFor(s.ctx, err).msg})
	return writeFlush(w, rc, "error", data)
}

// writeOutputEvents writes a chunk's events, unflushed: truncated when
// output before it was dropped, then output with the offset after the
// chunk as its id.
func writeOutputEvents(w io.Writer, c driver.OutputChunk) error {
	if c.Dropped > 0 {
		data, _ := json.Marshal(noxapi.ProcessOutputTruncated{From: c.Offset - c.Dropped, OutputStart: c.Offset})
		if err := sse.WriteEvent(w, "truncated", data); err != nil {
			return err
		}
	}
	data, err := json.Marshal(outputChunk(c))
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, "id: "+strconv.FormatInt(c.Offset+int64(len(c.Data)), 10)+"\n"); err != nil {
		return err
	}
	return sse.WriteEvent(w, "output", data)
}

// outputChunk converts a chunk to the contract's type: its bytes as data
// when they are valid UTF-8, else as dataBase64; a stream other than
// stderr is stdout (a terminal's).
func outputChunk(c driver.OutputChunk) noxapi.ProcessOutputChunk {
	out := noxapi.ProcessOutputChunk{Offset: c.Offset, Stream: noxapi.Stdout}
	if c.Stream == driver.Stderr {
		out.Stream = noxapi.Stderr
	}
	if utf8.Valid(c.Data) {
		s := string(c.Data)
		out.Data = &s
	} else {
		out.DataBase64 = c.Data
	}
	return out
}

// writeFlush writes one event and flushes.
func writeFlush(w io.Writer, rc *http.ResponseController, event string, data []byte) error {
	if err := sse.WriteEvent(w, event, data); err != nil {
		return err
	}
	return rc.Flush()
}
