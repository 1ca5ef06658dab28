package conformance

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// SSEEvent is one event of a text/event-stream.
type SSEEvent struct {
	// Event is the event type (the "event:" field; "message" when absent).
	Event string
	// Data is the data, data lines joined with "\n".
	Data string
}

// ParseSSE reads a whole event stream and returns its events and the
// number of comment lines. It returns an error for every departure from
// the Server-Sent Events grammar it finds: fields other than event, data,
// id and retry, and a last event not terminated by a blank line.
func ParseSSE(r io.Reader) (events []SSEEvent, comments int, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var errs []error
	var cur SSEEvent
	var data []string
	pending := false
	for {
		line, rerr := br.ReadBytes('\n')
		if len(line) == 0 && rerr != nil {
			if rerr != io.EOF {
				errs = append(errs, fmt.Errorf("read event stream: %w", rerr))
			}
			break
		}
		complete := bytes.HasSuffix(line, []byte("\n"))
		text := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
		if !complete {
			errs = append(errs, fmt.Errorf("event stream ends inside a line: %q", text))
			break
		}
		switch {
		case text == "":
			if pending {
				if cur.Event == "" {
					cur.Event = "message"
				}
				cur.Data = strings.Join(data, "\n")
				events = append(events, cur)
			}
			cur, data, pending = SSEEvent{}, nil, false
		case strings.HasPrefix(text, ":"):
			comments++
		default:
			name, value, _ := strings.Cut(text, ":")
			value = strings.TrimPrefix(value, " ")
			switch name {
			case "event":
				cur.Event = value
			case "data":
				data = append(data, value)
			case "id", "retry":
			default:
				errs = append(errs, fmt.Errorf("unknown field %q in event stream line %q", name, text))
			}
			pending = true
		}
		if rerr != nil {
			break
		}
	}
	if pending {
		errs = append(errs, fmt.Errorf("event stream ends without the blank line that terminates its last event (event %q lost)", cur.Event))
	}
	return events, comments, errors.Join(errs...)
}
