package sse

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxLine bounds one line of an event stream unless [MaxLine] says
// otherwise. The exit event of an exec stream carries the whole capped
// output JSON-escaped, so it is generous.
const DefaultMaxLine = 32 << 20

// ErrLineTooLong is wrapped by the error [Reader.Next] returns when a line
// exceeds the reader's bound.
var ErrLineTooLong = errors.New("event stream line too long")

// Event is one dispatched event of a text/event-stream.
type Event struct {
	// Type is the event type: the value of the event's last "event" field,
	// or "message" when it has none.
	Type string
	// Data is the event's data: its data lines joined with "\n". The
	// caller owns it.
	Data []byte
}

// Departure is one place where a stream departs from the event-stream
// grammar, as a strict [Reader] records it.
type Departure struct {
	// Line is the 1-based number of the line concerned (for a stream that
	// ends early, the line where it ended).
	Line int
	// Reason says what is wrong.
	Reason string
}

// Error returns "line N: reason".
func (d Departure) Error() string { return fmt.Sprintf("line %d: %s", d.Line, d.Reason) }

// Option configures a [Reader].
type Option func(*Reader)

// Strict makes the reader record every departure from the grammar it
// tolerates (see [Reader.Departures]): a field other than event, data, id
// and retry; an event without a data line, which readers drop; a stream
// that ends inside a line or before the blank line that ends its last
// event. The events read are the same with and without it.
func Strict() Option { return func(r *Reader) { r.strict = true } }

// MaxLine bounds the length of one line in bytes, line end excluded
// (default [DefaultMaxLine]).
func MaxLine(n int) Option { return func(r *Reader) { r.maxLine = n } }

// Reader reads the events of a text/event-stream one at a time, as the
// WHATWG HTML specification's event-stream interpretation does: lines end
// with "\n", "\r\n" or "\r"; a leading byte order mark is skipped; comment
// lines (":...") are counted and otherwise ignored, as are the id and retry
// fields and, unless [Strict], unknown fields; a blank line dispatches the
// event when it has data; an event the stream ends inside is discarded.
// Next returns an event as soon as its blank line has arrived.
type Reader struct {
	br      *bufio.Reader
	strict  bool
	maxLine int

	line   []byte // the line being read
	lineNo int    // lines read, terminated ones
	pendCR bool   // the last line ended with "\r": skip a "\n" that follows
	err    error  // sticky: io.EOF, a read error or a line too long

	typ     string // the event being assembled
	data    []byte
	hasData bool
	fields  bool // a field line was seen since the last blank line

	comments   int
	departures []Departure
}

// NewReader returns a tolerant reader of the event stream r.
func NewReader(r io.Reader, opts ...Option) *Reader {
	sr := &Reader{br: bufio.NewReaderSize(r, 64<<10), maxLine: DefaultMaxLine}
	for _, o := range opts {
		o(sr)
	}
	return sr
}

// Next returns the next event. At the end of the stream it returns io.EOF;
// a read error is returned as the underlying reader gave it; a line longer
// than the bound gives an error wrapping [ErrLineTooLong]. After an error,
// Next returns the same error again.
func (r *Reader) Next() (Event, error) {
	for r.err == nil {
		line, err := r.readLine()
		if err != nil {
			r.end(err, line)
			break
		}
		if ev, ok := r.field(line); ok {
			return ev, nil
		}
	}
	return Event{}, r.err
}

// Comments returns how many comment lines were read so far.
func (r *Reader) Comments() int { return r.comments }

// Departures returns the departures from the grammar a [Strict] reader
// recorded so far, in stream order; nil for a tolerant reader.
func (r *Reader) Departures() []Departure { return append([]Departure(nil), r.departures...) }

// readLine reads one line without its line end. At the end of the stream
// or on a read error it returns the bytes read so far and the error.
func (r *Reader) readLine() ([]byte, error) {
	r.line = r.line[:0]
	if r.pendCR {
		// Only now, when the next line is wanted anyway, look whether the
		// "\r" was the first half of a "\r\n".
		r.pendCR = false
		b, err := r.br.Peek(1)
		if err != nil {
			return r.line, err
		}
		if b[0] == '\n' {
			_, _ = r.br.Discard(1)
		}
	}
	for {
		if r.br.Buffered() == 0 {
			if _, err := r.br.Peek(1); err != nil {
				return r.line, err
			}
		}
		buf, _ := r.br.Peek(r.br.Buffered())
		end := len(buf)
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			end = i
		}
		if i := bytes.IndexByte(buf[:end], '\r'); i >= 0 {
			end = i
		}
		if len(r.line)+end > r.maxLine {
			return r.line, fmt.Errorf("line %d longer than %d bytes: %w", r.lineNo+1, r.maxLine, ErrLineTooLong)
		}
		r.line = append(r.line, buf[:end]...)
		if end < len(buf) {
			r.pendCR = buf[end] == '\r'
			_, _ = r.br.Discard(end + 1)
			r.lineNo++
			return r.line, nil
		}
		_, _ = r.br.Discard(end)
	}
}

// field interprets one line and returns the event a blank line dispatches.
func (r *Reader) field(line []byte) (Event, bool) {
	if r.lineNo == 1 {
		line = bytes.TrimPrefix(line, []byte("\uFEFF"))
	}
	if len(line) == 0 {
		return r.dispatch()
	}
	if line[0] == ':' {
		r.comments++
		return Event{}, false
	}
	name, value, _ := bytes.Cut(line, []byte(":"))
	value = bytes.TrimPrefix(value, []byte(" "))
	switch string(name) {
	case "event":
		r.typ = string(value)
	case "data":
		if r.hasData {
			r.data = append(r.data, '\n')
		}
		r.data = append(r.data, value...)
		r.hasData = true
	case "id", "retry":
	default:
		r.depart(r.lineNo, "unknown field %q in %q", clip(name), clip(line))
	}
	r.fields = true
	return Event{}, false
}

// dispatch ends the event being assembled at a blank line.
func (r *Reader) dispatch() (Event, bool) {
	typ, data, hasData, fields := r.typ, r.data, r.hasData, r.fields
	r.typ, r.data, r.hasData, r.fields = "", nil, false, false
	if !hasData {
		if fields {
			r.depart(r.lineNo, "event %q has no data line, so readers drop it", typ)
		}
		r.data = data[:0] // nothing was handed out: reuse it
		return Event{}, false
	}
	if typ == "" {
		typ = "message"
	}
	return Event{Type: typ, Data: data}, true
}

// end records why the stream ended; partial holds the bytes of an
// unterminated last line.
func (r *Reader) end(err error, partial []byte) {
	r.err = err
	if err != io.EOF {
		return
	}
	if len(partial) > 0 {
		r.depart(r.lineNo+1, "the stream ends inside a line: %q", clip(partial))
	}
	if r.fields {
		r.depart(r.lineNo+1, "the stream ends without the blank line that terminates its last event (event %q lost)", r.typ)
	}
}

// depart records a departure when the reader is strict.
func (r *Reader) depart(line int, format string, args ...any) {
	if r.strict {
		r.departures = append(r.departures, Departure{Line: line, Reason: fmt.Sprintf(format, args...)})
	}
}

// clip shortens b for a message.
func clip(b []byte) string {
	const n = 200
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
