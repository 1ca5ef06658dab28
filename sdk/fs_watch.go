package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/internal/sse"
)

// Watch watches the directory p (absolute, or relative to DefaultWorkdir)
// for changes (extension ExtFilesWatch; ErrUnsupported without it). It
// returns once the watch is in place: every change made after Watch
// returns is reported. The sequence yields the changes as they come, in
// order; repeated writes to one file are coalesced by the backend, and an
// event of type EventOverflow says the backend dropped some (re-list what
// is watched). It ends when the loop breaks, ctx ends (no error), or the
// watch fails: the backend ended it (an error matching ErrInternal, e.g.
// the directory was removed), the stream was cut (io.ErrUnexpectedEOF),
// or it stayed silent for three heartbeat intervals (ErrStreamIdle).
//
// The stream is released when the loop ends or ctx is done; cancel ctx
// when you do not range over the sequence. The sequence can be ranged
// over once.
//
//meta:operation GET /v1/sandboxes/{sessionId}/fs/watch
func (s *Sandbox) Watch(ctx context.Context, p string, opts WatchOptions) (iter.Seq2[FileEvent, error], error) {
	const op = "watchPath"
	if err := checkID(op, s.id); err != nil {
		return nil, err
	}
	abs, err := resolvePath(op, p)
	if err != nil {
		return nil, err
	}
	info, err := s.c.Capabilities(ctx)
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("nox: %s: %w", op, err)
	}
	if !info.Supports(ExtFilesWatch) {
		return nil, fmt.Errorf("nox: %s: the backend does not advertise extension %s: %w", op, ExtFilesWatch, ErrUnsupported)
	}
	hb := info.Limits.StreamHeartbeat
	if hb <= 0 {
		hb = DefaultHeartbeat
	}
	idle := 3 * hb

	wctx, cancel := context.WithCancelCause(ctx)
	var idled atomic.Bool
	timer := time.AfterFunc(idle, func() {
		idled.Store(true)
		cancel(ErrStreamIdle)
	})
	stop := func() {
		timer.Stop()
		cancel(context.Canceled)
	}
	params := &noxapi.WatchPathParams{Path: abs}
	if opts.Recursive {
		params.Recursive = &opts.Recursive
	}
	resp, err := s.c.do(wctx, call{op: op, idempotent: true, streaming: true}, func(ctx context.Context) (*http.Response, error) {
		return s.c.gen.WatchPath(ctx, s.id, params, func(_ context.Context, r *http.Request) error {
			r.Header.Set("Accept", "text/event-stream")
			return nil
		})
	})
	if err != nil {
		stop()
		if idled.Load() {
			return nil, fmt.Errorf("nox: %s: no answer for %s: %w", op, idle, ErrStreamIdle)
		}
		return nil, s.c.unsupported(ctx, op, ExtFilesWatch, err)
	}
	var (
		closeOnce sync.Once
		unhook    func() bool
	)
	release := func() {
		closeOnce.Do(func() {
			stop()
			resp.Body.Close()
		})
		unhook()
	}
	unhook = context.AfterFunc(ctx, release)
	timer.Reset(idle)
	sr := sse.NewReader(&activityReader{r: resp.Body, onRead: func() { timer.Reset(idle) }})

	// next reads one event: a change, an overflow, or the watch's end.
	next := func() (FileEvent, error) {
		for {
			ev, err := sr.Next()
			switch {
			case idled.Load():
				return FileEvent{}, fmt.Errorf("nox: %s: no event or heartbeat for %s: %w", op, idle, ErrStreamIdle)
			case ctx.Err() != nil:
				return FileEvent{}, io.EOF
			case err == io.EOF:
				return FileEvent{}, fmt.Errorf("nox: %s: the stream ended: %w", op, io.ErrUnexpectedEOF)
			case err != nil:
				return FileEvent{}, fmt.Errorf("nox: %s: %w", op, err)
			}
			switch ev.Type {
			case "ready":
				return FileEvent{}, errReady
			case "change":
				var g noxapi.FileEvent
				if _, err := decodeModel(ev.Data, &g); err != nil {
					return FileEvent{}, fmt.Errorf("nox: %s: change event: %w", op, err)
				}
				return fromGenFileEvent(&g), nil
			case "overflow":
				return FileEvent{Type: EventOverflow}, nil
			case "error":
				return FileEvent{}, &APIError{StatusCode: http.StatusInternalServerError, Operation: op,
					Message: errorMessage("application/json", ev.Data), RequestID: resp.Header.Get("X-Request-Id")}
			}
			// Unknown events are ignored.
		}
	}
	// The ready event comes first: once it is read, the watch is in place.
	if _, err := next(); !errors.Is(err, errReady) {
		release()
		if err == nil || err == io.EOF {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("nox: %s: %w", op, doneError(ctx))
			}
			err = fmt.Errorf("nox: %s: the stream did not start with a ready event", op)
		}
		return nil, err
	}
	var used atomic.Bool
	return func(yield func(FileEvent, error) bool) {
		defer release()
		if used.Swap(true) {
			yield(FileEvent{}, fmt.Errorf("nox: %s: the watch was already ranged over", op))
			return
		}
		for {
			ev, err := next()
			if errors.Is(err, errReady) {
				continue
			}
			if err == io.EOF {
				return // ctx ended
			}
			if err != nil {
				yield(FileEvent{}, err)
				return
			}
			if !yield(ev, nil) {
				return
			}
		}
	}, nil
}

// errReady is next's signal for the ready event.
var errReady = errors.New("ready")
