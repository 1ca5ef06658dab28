package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/internal/sse"
)

// Output returns the process's output from offset from, as it is
// produced, until the process ends: OutputWith with OutputOptions{From:
// from}.
func (p *Process) Output(ctx context.Context, from int64) iter.Seq2[OutputChunk, error] {
	return p.OutputWith(ctx, OutputOptions{From: from})
}

// OutputWith returns the process's output from opts.From, stdout and
// stderr together in the order the backend read them. The sequence
// replays what the backend kept, then follows new output until the
// process ends (its final record is then in Record), or, with
// opts.NoFollow, until the output produced so far was yielded. Output
// the backend dropped before it could be yielded (Limits.ProcessOutputBytes)
// is reported by a chunk with Dropped set.
//
// The stream is resumed by itself when its connection drops or stays
// silent for three heartbeat intervals: it reconnects from the offset
// after the last byte yielded (Last-Event-ID), so no byte is lost or
// yielded twice. It gives up after RetryPolicy.MaxAttempts reconnections
// that received nothing (io.ErrUnexpectedEOF), and on an answer with an
// error status (an *APIError; ErrInternal for an `event: error`). When
// ctx ends the sequence yields an error wrapping ctx.Err(). The process
// is not affected by any of these.
//
// The sequence may be ranged over more than once; each range opens its
// own stream.
//
//meta:operation GET /v1/sandboxes/{sessionId}/processes/{processId}/output
func (p *Process) OutputWith(ctx context.Context, opts OutputOptions) iter.Seq2[OutputChunk, error] {
	const op = "streamProcessOutput"
	return func(yield func(OutputChunk, error) bool) {
		if err := checkID(op, p.sb.id); err != nil {
			yield(OutputChunk{}, err)
			return
		}
		if err := checkProcessID(op, p.id); err != nil {
			yield(OutputChunk{}, err)
			return
		}
		if opts.From < 0 {
			yield(OutputChunk{}, fmt.Errorf("nox: %s: negative offset %d: %w", op, opts.From, ErrInvalidArgument))
			return
		}
		r := &outputReader{p: p, next: opts.From, follow: !opts.NoFollow, yield: yield}
		r.run(ctx)
	}
}

// outputReader reads one range of OutputWith over as many connections
// as it takes.
type outputReader struct {
	p      *Process
	next   int64 // the offset of the next byte to yield
	follow bool
	yield  func(OutputChunk, error) bool
	// resumed is set once a connection was made: the next one sends
	// Last-Event-ID.
	resumed bool
}

// streamEnd is how one connection of an output stream ended.
type streamEnd int

const (
	// endDone: the range is over (exit or end event, an error yielded,
	// or the loop broke).
	endDone streamEnd = iota
	// endDropped: the connection ended early; reconnect.
	endDropped
)

// run connects, and reconnects while connections drop.
func (r *outputReader) run(ctx context.Context) {
	const op = "streamProcessOutput"
	c := r.p.sb.c
	failures := 0
	for {
		end, heard, err := r.connection(ctx)
		if end == endDone {
			return
		}
		if ctx.Err() != nil {
			r.yield(OutputChunk{}, fmt.Errorf("nox: %s: %w", op, doneError(ctx)))
			return
		}
		// A connection that worked for a while is resumed at once; one
		// that brought nothing counts as a failed attempt.
		delay := time.Duration(0)
		if heard {
			failures = 0
		} else {
			failures++
			if failures >= c.retry.MaxAttempts {
				r.yield(OutputChunk{}, fmt.Errorf("nox: %s: the stream dropped %d times in a row before any event (last: %v): %w",
					op, failures, err, io.ErrUnexpectedEOF))
				return
			}
			delay = c.retry.backoff(failures)
		}
		if sleepContext(ctx, delay) != nil {
			r.yield(OutputChunk{}, fmt.Errorf("nox: %s: %w", op, doneError(ctx)))
			return
		}
	}
}

// connection reads one connection of the stream and says how it ended,
// whether anything at all (an event, a heartbeat) was received on it,
// and for a dropped one, why.
func (r *outputReader) connection(ctx context.Context) (end streamEnd, heard bool, why error) {
	const op = "streamProcessOutput"
	c := r.p.sb.c
	idle := 3 * DefaultHeartbeat
	if info := c.cachedInfo(); info != nil && info.Limits.StreamHeartbeat > 0 {
		idle = 3 * info.Limits.StreamHeartbeat
	}
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(context.Canceled)
	var idled atomic.Bool
	timer := time.AfterFunc(idle, func() {
		idled.Store(true)
		cancel(ErrStreamIdle)
	})
	defer timer.Stop()

	params := &noxapi.StreamProcessOutputParams{}
	if r.next > 0 {
		from := r.next
		params.From = &from
	}
	if !r.follow {
		follow := false
		params.Follow = &follow
	}
	lastID := ""
	if r.resumed {
		lastID = strconv.FormatInt(r.next, 10)
	}
	resp, err := c.do(cctx, call{op: op, idempotent: true, streaming: true}, func(ctx context.Context) (*http.Response, error) {
		return c.gen.StreamProcessOutput(ctx, r.p.sb.id, r.p.id, params, func(_ context.Context, req *http.Request) error {
			req.Header.Set("Accept", "text/event-stream")
			if lastID != "" {
				req.Header.Set("Last-Event-ID", lastID)
			}
			return nil
		})
	})
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return endDropped, false, err // run reports ctx's end
	case idled.Load():
		return endDropped, false, fmt.Errorf("no answer for %s: %w", idle, ErrStreamIdle)
	default:
		r.yield(OutputChunk{}, err)
		return endDone, false, nil
	}
	defer resp.Body.Close()
	r.resumed = true
	timer.Reset(idle)
	var got atomic.Bool
	sr := sse.NewReader(&activityReader{r: resp.Body, onRead: func() {
		got.Store(true)
		timer.Reset(idle)
	}})
	for {
		ev, err := sr.Next()
		switch {
		case ctx.Err() != nil:
			return endDropped, got.Load(), ctx.Err()
		case idled.Load():
			return endDropped, got.Load(), fmt.Errorf("no event or heartbeat for %s: %w", idle, ErrStreamIdle)
		case err == io.EOF:
			return endDropped, got.Load(), errors.New("the stream ended before the exit event")
		case err != nil:
			return endDropped, got.Load(), err
		}
		if done := r.event(ev, resp.Header.Get("X-Request-Id")); done {
			return endDone, true, nil
		}
	}
}

// event handles one event and reports whether the range is over.
func (r *outputReader) event(ev sse.Event, requestID string) bool {
	const op = "streamProcessOutput"
	switch ev.Type {
	case "output":
		var g noxapi.ProcessOutputChunk
		if _, err := decodeModel(ev.Data, &g); err != nil {
			r.yield(OutputChunk{}, fmt.Errorf("nox: %s: output event: %w", op, err))
			return true
		}
		return !r.chunk(fromGenOutputChunk(&g))
	case "truncated":
		var g noxapi.ProcessOutputTruncated
		if _, err := decodeModel(ev.Data, &g); err != nil {
			r.yield(OutputChunk{}, fmt.Errorf("nox: %s: truncated event: %w", op, err))
			return true
		}
		return !r.skipTo(g.OutputStart)
	case "exit":
		var g noxapi.Process
		if _, err := decodeModel(ev.Data, &g); err == nil {
			r.p.remember(fromGenProcess(&g))
		}
		return true
	case "end":
		return true
	case "error":
		r.yield(OutputChunk{}, &APIError{StatusCode: http.StatusInternalServerError, Operation: op,
			Message: errorMessage("application/json", ev.Data), RequestID: requestID})
		return true
	}
	return false // unknown events are ignored
}

// skipTo moves the next offset up to off, yielding a Dropped chunk for
// the bytes skipped; it returns false when the loop broke.
func (r *outputReader) skipTo(off int64) bool {
	if off <= r.next {
		return true
	}
	dropped := off - r.next
	r.next = off
	return r.yield(OutputChunk{Offset: off, Dropped: dropped}, nil)
}

// chunk yields what of ch was not yielded yet (a replay after a
// reconnection may overlap), after a Dropped chunk for a gap before it;
// it returns false when the loop broke.
func (r *outputReader) chunk(ch OutputChunk) bool {
	end := ch.Offset + int64(len(ch.Data))
	if len(ch.Data) == 0 || end <= r.next {
		return true
	}
	if ch.Offset < r.next {
		ch.Data = ch.Data[r.next-ch.Offset:]
		ch.Offset = r.next
	}
	if !r.skipTo(ch.Offset) {
		return false
	}
	r.next = end
	return r.yield(ch, nil)
}
