package conformance

import (
	"errors"
	"fmt"
	"io"

	"github.com/noxrunner/nox/internal/sse"
)

// SSEEvent is one event of a text/event-stream.
type SSEEvent struct {
	// Event is the event type (the "event:" field; "message" when absent).
	Event string
	// Data is the data, data lines joined with "\n".
	Data string
}

// ParseSSE reads a whole event stream strictly and returns its events and
// the number of comment lines. It returns an error for every departure
// from the Server-Sent Events grammar it finds: fields other than event,
// data, id and retry, an event without data (which readers drop), a stream
// that ends inside a line or before the blank line that terminates its
// last event. Events are read as every client reads them, with the same
// reader as the SDK.
func ParseSSE(r io.Reader) (events []SSEEvent, comments int, err error) {
	sr := sse.NewReader(r, sse.Strict())
	var errs []error
	for {
		ev, err := sr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("read event stream: %w", err))
			break
		}
		events = append(events, SSEEvent{Event: ev.Type, Data: string(ev.Data)})
	}
	for _, d := range sr.Departures() {
		errs = append(errs, d)
	}
	return events, sr.Comments(), errors.Join(errs...)
}
