package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
)

// recoverPanics answers a request whose handler panicked with 500 and
// {"error": "internal error (request id ...)"}, and logs one short line
// with the request id and the panic value; the stack goes to the debug
// level only. It sits inside logRequests, so the access log has the
// status. A panic after the response began cuts the connection (the
// client sees a truncated body, not a success). http.ErrAbortHandler
// passes through untouched.
func recoverPanics(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			ctx := r.Context()
			id := requestIDFrom(ctx)
			logPanic(ctx, log, id, v, debug.Stack())
			if rec, ok := w.(*statusRecorder); ok && rec.status != 0 {
				panic(http.ErrAbortHandler)
			}
			writeJSONError(w, http.StatusInternalServerError, "internal error (request id "+id+")", 0)
		}()
		next.ServeHTTP(w, r)
	})
}

// logPanic logs a recovered panic: one error line, and the stack at debug
// level.
func logPanic(ctx context.Context, log *slog.Logger, id string, v any, stack []byte) {
	log.LogAttrs(ctx, slog.LevelError, "panic serving request", slog.String("requestId", id), slog.String("panic", fmt.Sprint(v)))
	if log.Enabled(ctx, slog.LevelDebug) {
		log.LogAttrs(ctx, slog.LevelDebug, "panic stack", slog.String("requestId", id), slog.String("stack", string(stack)))
	}
}

// panicError is a panic recovered in a goroutine serving a request (an
// exec stream's command), returned as an error of no category (500).
type panicError struct{ v any }

func (e panicError) Error() string { return fmt.Sprintf("panic: %v", e.v) }

// recoverTo turns a panic into *err (answered as an internal error, which
// errorFor logs in one line); the stack is logged at debug level. Use it
// deferred in a goroutine that serves request ctx.
func recoverTo(ctx context.Context, log *slog.Logger, err *error) {
	v := recover()
	if v == nil {
		return
	}
	if log.Enabled(ctx, slog.LevelDebug) {
		log.LogAttrs(ctx, slog.LevelDebug, "panic stack", slog.String("requestId", requestIDFrom(ctx)), slog.String("stack", string(debug.Stack())))
	}
	*err = panicError{v}
}
