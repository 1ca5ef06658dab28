package server

import (
	"io"
	"net/http"
	"time"

	"github.com/noxrunner/nox/internal/sse"
)

// openEventStream answers 200 with the headers of a Server-Sent Events
// stream (no caching, no proxy buffering), clears the server's write
// timeout for it (under the stall timeout each write has its own
// deadline instead), and sends the headers at once.
func openEventStream(w http.ResponseWriter) (*http.ResponseController, error) {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	return rc, rc.Flush()
}

// writeHeartbeat sends a heartbeat comment at once.
func writeHeartbeat(w io.Writer, rc *http.ResponseController) error {
	if err := sse.WriteComment(w, "heartbeat"); err != nil {
		return err
	}
	return rc.Flush()
}
