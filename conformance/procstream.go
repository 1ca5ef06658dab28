package conformance

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/internal/sse"
)

// outEvent is one event of a process's output stream, with its id.
// internal/sse reads events without their ids, which these streams need:
// the id of an output event is an offset.
type outEvent struct {
	// Type is the event type ("message" when the event has none).
	Type string
	// Data is the event's data lines joined with "\n".
	Data string
	// ID is the value of the event's own id field; HasID says whether
	// it had one.
	ID    string
	HasID bool
	// at is when the event arrived.
	at time.Time
}

// outQuery selects where an output stream starts.
type outQuery struct {
	// from is the from parameter (nil: not sent).
	from *int64
	// follow is the follow parameter (nil: not sent, the default true).
	follow *bool
	// lastEventID is sent as Last-Event-ID when non-empty.
	lastEventID string
}

// outStream is an open output stream of a process, read as it comes.
type outStream struct {
	env    *Env
	x      *Exchange
	body   io.Closer
	events chan outEvent
	// err is why reading ended (nil at the end of the stream); read
	// only once events is closed.
	err error
	// ended is set when the check found events closed.
	ended bool
}

// openOutput opens the output stream of process pid. A refused stream
// returns its exchange and a nil stream; the caller judges the status.
func (e *Env) openOutput(ctx context.Context, id, pid string, q outQuery) (*outStream, *Exchange, error) {
	params := &noxapi.StreamProcessOutputParams{From: q.from, Follow: q.follow}
	if q.lastEventID != "" {
		params.LastEventID = &q.lastEventID
	}
	resp, err := e.Client.StreamProcessOutput(ctx, id, pid, params, acceptEventStream)
	if err != nil {
		return nil, nil, transportError(ctx, "output of process "+pid, err)
	}
	x := e.exchange(resp)
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, x, nil
	}
	s := &outStream{env: e, x: x, body: resp.Body, events: make(chan outEvent, 1024)}
	go s.read(resp.Body)
	return s, x, nil
}

// acceptEventStream asks for an event stream, as every client of one
// does.
func acceptEventStream(_ context.Context, req *http.Request) error {
	req.Header.Set("Accept", "text/event-stream")
	return nil
}

// read parses the stream into s.events until it ends.
func (s *outStream) read(r io.Reader) {
	defer close(s.events)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), sse.DefaultMaxLine)
	sc.Split(splitSSELines)
	var ev outEvent
	var data []string
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if data != nil {
				ev.Data = joinLines(data)
				if ev.Type == "" {
					ev.Type = "message"
				}
				ev.at = time.Now()
				s.events <- ev
			}
			ev, data = outEvent{}, nil
			continue
		}
		if line[0] == ':' {
			continue // a comment (heartbeat)
		}
		name, value, _ := cutField(line)
		switch name {
		case "event":
			ev.Type = value
		case "data":
			data = append(data, value)
		case "id":
			ev.ID, ev.HasID = value, true
		}
	}
	s.err = sc.Err()
}

// cutField splits an event-stream line into its field name and value
// (one space after the colon is not part of the value).
func cutField(line string) (string, string, bool) {
	i := bytes.IndexByte([]byte(line), ':')
	if i < 0 {
		return line, "", false
	}
	v := line[i+1:]
	if len(v) > 0 && v[0] == ' ' {
		v = v[1:]
	}
	return line[:i], v, true
}

func joinLines(ls []string) string {
	var b bytes.Buffer
	for i, l := range ls {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(l)
	}
	return b.String()
}

// splitSSELines splits an event stream into lines ending with "\r\n",
// "\n" or "\r".
func splitSSELines(data []byte, atEOF bool) (int, []byte, error) {
	for i, c := range data {
		switch c {
		case '\n':
			return i + 1, data[:i], nil
		case '\r':
			if i+1 < len(data) {
				if data[i+1] == '\n' {
					return i + 2, data[:i], nil
				}
				return i + 1, data[:i], nil
			}
			if atEOF {
				return i + 1, data[:i], nil
			}
			return 0, nil, nil // a "\n" may follow
		}
	}
	if atEOF && len(data) > 0 {
		return len(data), nil, errors.New("the stream ends inside a line")
	}
	return 0, nil, nil
}

// next returns the next event, or false when none came within d or the
// stream ended.
func (s *outStream) next(ctx context.Context, d time.Duration) (outEvent, bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case ev, ok := <-s.events:
		if !ok {
			s.ended = true
		}
		return ev, ok
	case <-t.C:
		return outEvent{}, false
	case <-ctx.Done():
		return outEvent{}, false
	}
}

// close ends the stream (the client goes away).
func (s *outStream) close() {
	_ = s.body.Close()
	for range s.events { //nolint:revive // drain so the reader ends
	}
}

// shown returns a copy of the stream's exchange as read so far.
func (s *outStream) shown() *Exchange {
	s.env.mu.Lock()
	defer s.env.mu.Unlock()
	x := s.x
	return &Exchange{Method: x.Method, URL: x.URL, ReqHeader: x.ReqHeader, Status: x.Status, Header: x.Header,
		Body: bytes.Clone(x.Body), Operation: x.Operation, op: x.op}
}

// readAll reads events until the stream ends or d passes; ended says
// whether it ended.
func (s *outStream) readAll(ctx context.Context, d time.Duration) (events []outEvent, ended bool) {
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return events, false
		}
		ev, ok := s.next(ctx, left)
		if !ok {
			return events, s.ended
		}
		events = append(events, ev)
	}
}

// readUntil reads events until stop accepts one (returned last), the
// stream ends or d passes.
func (s *outStream) readUntil(ctx context.Context, d time.Duration, stop func(outEvent) bool) ([]outEvent, bool) {
	deadline := time.Now().Add(d)
	var events []outEvent
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return events, false
		}
		ev, ok := s.next(ctx, left)
		if !ok {
			return events, false
		}
		events = append(events, ev)
		if stop(ev) {
			return events, true
		}
	}
}

// outChunk is a ProcessOutputChunk read leniently, with the event's id.
type outChunk struct {
	Offset     lenientInt `json:"offset"`
	Stream     string     `json:"stream"`
	Data       *string    `json:"data"`
	DataBase64 *string    `json:"dataBase64"`
	// bytes are the chunk's bytes, decoded.
	bytes []byte
	// event is the chunk's event.
	event outEvent
}

// truncEvent is a ProcessOutputTruncated read leniently.
type truncEvent struct {
	From        lenientInt `json:"from"`
	OutputStart lenientInt `json:"outputStart"`
}

// procOutput is what an output stream held, decoded.
type procOutput struct {
	chunks    []outChunk
	truncated []truncEvent
	// exit is the record of the exit event (nil: none); exitAt is the
	// index of the exit event among all events.
	exit   *procRecord
	exitAt int
	// end is set by an end event.
	end bool
	// errors holds the data of error events.
	errors []string
	// others holds the types of events of no type the contract defines.
	others []string
	events []outEvent
}

// decodeOutput decodes events leniently: chunk data from data or
// dataBase64. A chunk or record that cannot be decoded is an error.
func decodeOutput(events []outEvent) (procOutput, error) {
	out := procOutput{events: events, exitAt: -1}
	var errs []error
	for i, ev := range events {
		switch ev.Type {
		case "output":
			c := outChunk{event: ev}
			if err := json.Unmarshal([]byte(ev.Data), &c); err != nil {
				errs = append(errs, fmt.Errorf("output event %d: data %q is not a ProcessOutputChunk: %w", i, clip(ev.Data, 200), err))
				continue
			}
			switch {
			case c.DataBase64 != nil:
				b, err := base64.StdEncoding.DecodeString(*c.DataBase64)
				if err != nil {
					errs = append(errs, fmt.Errorf("output event %d: dataBase64 is not base64: %w", i, err))
					continue
				}
				c.bytes = b
			case c.Data != nil:
				c.bytes = []byte(*c.Data)
			}
			out.chunks = append(out.chunks, c)
		case "truncated":
			var t truncEvent
			if err := json.Unmarshal([]byte(ev.Data), &t); err != nil {
				errs = append(errs, fmt.Errorf("truncated event %d: data %q is not a ProcessOutputTruncated: %w", i, clip(ev.Data, 200), err))
				continue
			}
			out.truncated = append(out.truncated, t)
		case "exit":
			var p procRecord
			if err := json.Unmarshal([]byte(ev.Data), &p); err != nil {
				errs = append(errs, fmt.Errorf("exit event %d: data %q is not a Process: %w", i, clip(ev.Data, 200), err))
				continue
			}
			out.exit, out.exitAt = &p, i
		case "end":
			out.end = true
		case "error":
			out.errors = append(out.errors, ev.Data)
		default:
			out.others = append(out.others, ev.Type)
		}
	}
	return out, errors.Join(errs...)
}

// bytes returns the output the chunks hold, concatenated.
func (o procOutput) bytes() []byte {
	var b []byte
	for _, c := range o.chunks {
		b = append(b, c.bytes...)
	}
	return b
}

// stream returns the output of the chunks labelled stream.
func (o procOutput) stream(name string) string {
	var b []byte
	for _, c := range o.chunks {
		if c.Stream == name {
			b = append(b, c.bytes...)
		}
	}
	return string(b)
}

// first returns the offset of the first chunk, or -1.
func (o procOutput) first() int64 {
	if len(o.chunks) == 0 {
		return -1
	}
	return int64(o.chunks[0].Offset)
}

// outputBody is the stream read to its end: its events decoded and the
// exchange showing it.
type outputBody struct {
	procOutput
	x *Exchange
	// ended: the stream ended (it did not outlast the wait).
	ended bool
}

// readOutput opens the output stream of process pid and reads it until
// it ends or limit passes. A refused stream is a deviation of the
// operation, as for every set-up step (any success will do); a stream
// that does not end within limit gives what came.
func (e *Env) readOutput(ctx context.Context, id, pid string, q outQuery, limit time.Duration) (outputBody, error) {
	s, x, err := e.openOutput(ctx, id, pid, q)
	if err != nil {
		return outputBody{}, err
	}
	if s == nil {
		return outputBody{x: x}, fmt.Errorf("output of process %s: %w", pid, expectSuccess(x))
	}
	events, ended := s.readAll(ctx, limit)
	s.close()
	// The stream is read and closed: its exchange is complete, and the
	// check may judge it.
	out, derr := decodeOutput(events)
	body := outputBody{procOutput: out, x: s.x, ended: ended}
	if ended && s.err != nil {
		derr = errors.Join(derr, fmt.Errorf("the stream broke: %w", s.err))
	}
	if derr != nil {
		return body, ownFinding(body.x, aspectBody, clip(derr.Error(), 160), "output events as the contract describes",
			fmt.Errorf("%w\n%s", derr, body.x))
	}
	return body, nil
}

// readEnded reads the whole output of process pid, which has ended, from
// offset from: the stream must end (with its exit event) within limit.
func (e *Env) readEnded(ctx context.Context, id, pid string, from int64, limit time.Duration) (outputBody, error) {
	q := outQuery{}
	if from > 0 {
		q.from = &from
	}
	b, err := e.readOutput(ctx, id, pid, q, limit)
	if err == nil && !b.ended {
		err = streamOpenFinding(b.x, fmt.Errorf("the output stream of process %s, which has ended, did not end within %s\n%s", pid, limit, b.x))
	}
	return b, err
}

// offsetID parses an event id as an offset (-1 when it is not one).
func offsetID(id string) int64 {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}
