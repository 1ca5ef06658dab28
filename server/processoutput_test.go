package server_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/noxrunner/nox/driver"
	"github.com/noxrunner/nox/gen/noxapi"
	"github.com/noxrunner/nox/server"
)

// procEvent is one event of a process's output stream; comments have
// the name ":".
type procEvent struct{ name, id, data string }

// outputStream is an open output stream.
type outputStream struct {
	t      *testing.T
	resp   *http.Response
	events chan procEvent
}

// openOutput sends GET .../processes/1/output with query and headers.
func openOutput(t *testing.T, e *env, query string, hdr map[string]string) *outputStream {
	t.Helper()
	return openOutputOf(t, e, "1", query, hdr)
}

// openOutputOf sends GET .../processes/{pid}/output with query and
// headers.
func openOutputOf(t *testing.T, e *env, pid, query string, hdr map[string]string) *outputStream {
	t.Helper()
	req, err := http.NewRequest("GET", e.url+"/v1/sandboxes/a/processes/"+pid+"/output"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("output%s: %d %s", query, resp.StatusCode, body)
	}
	s := &outputStream{t: t, resp: resp, events: make(chan procEvent, 64)}
	go s.read()
	return s
}

func (s *outputStream) read() {
	defer close(s.events)
	sc := bufio.NewScanner(s.resp.Body)
	var ev procEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.name != "" {
				s.events <- ev
			}
			ev = procEvent{}
		case strings.HasPrefix(line, ":"):
			s.events <- procEvent{name: ":"}
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			ev.data += strings.TrimPrefix(line, "data: ")
		}
	}
}

// next returns the next event, heartbeats included; ok is false at the
// end of the stream.
func (s *outputStream) next() (procEvent, bool) {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		return ev, ok
	case <-time.After(5 * time.Second):
		s.t.Fatal("no event within 5s")
	}
	return procEvent{}, false
}

// nextEvent returns the next event that is not a heartbeat.
func (s *outputStream) nextEvent() procEvent {
	s.t.Helper()
	for {
		ev, ok := s.next()
		if !ok {
			s.t.Fatal("the stream ended")
		}
		if ev.name != ":" {
			return ev
		}
	}
}

// expect checks the next events (heartbeats skipped), then that the
// stream ends when end.
func (s *outputStream) expect(end bool, want ...procEvent) {
	s.t.Helper()
	for _, w := range want {
		if ev := s.nextEvent(); ev != w {
			s.t.Errorf("event %+v, want %+v", ev, w)
		}
	}
	if !end {
		return
	}
	for {
		ev, ok := s.next()
		if !ok {
			return
		}
		if ev.name != ":" {
			s.t.Errorf("event %+v after the last", ev)
		}
	}
}

// out is the output event of a chunk.
func out(offset int64, stream, data string) procEvent {
	c := noxapi.ProcessOutputChunk{Offset: offset, Stream: noxapi.ProcessOutputChunkStream(stream)}
	if strings.HasPrefix(data, "b64:") {
		c.DataBase64, _ = base64.StdEncoding.DecodeString(data[4:])
	} else {
		c.Data = &data
	}
	b, _ := json.Marshal(c)
	n := int64(len(data))
	if c.DataBase64 != nil {
		n = int64(len(c.DataBase64))
	}
	return procEvent{name: "output", id: strconv.FormatInt(offset+n, 10), data: string(b)}
}

// exitEvent checks that ev is an exit event with exit code code.
func exitEvent(t *testing.T, ev procEvent, code int32) {
	t.Helper()
	var rec noxapi.Process
	if ev.name != "exit" || json.Unmarshal([]byte(ev.data), &rec) != nil || rec.State != noxapi.Exited || rec.ExitCode == nil || *rec.ExitCode != code {
		t.Errorf("event %+v, want exit %d", ev, code)
	}
}

// An ended process's output replays from any offset, then exit.
func TestProcessOutputReplay(t *testing.T) {
	t.Parallel()
	e, d := setupProcs(t, server.Options{}, nil)
	p := startFake(t, e, d, nil)
	p.emit(driver.Stdout, "hello\n")
	p.emit(driver.Stderr, "oops\n")
	p.emit(driver.Stdout, "\xff\xfe")
	p.exit(0, "")
	all := []procEvent{out(0, "stdout", "hello\n"), out(6, "stderr", "oops\n"), out(11, "stdout", "b64://4=")}

	s := openOutput(t, e, "", nil)
	s.expect(false, all...)
	exitEvent(t, s.nextEvent(), 0)
	s.expect(true)

	openOutput(t, e, "?from=3", nil).expect(false, append([]procEvent{out(3, "stdout", "lo\n")}, all[1:]...)...)
	// Last-Event-ID wins over from.
	openOutput(t, e, "?from=3", map[string]string{"Last-Event-ID": "11"}).expect(false, all[2])
	// follow=false on an ended process: exit, not end.
	s = openOutput(t, e, "?follow=false&from=13", nil)
	exitEvent(t, s.nextEvent(), 0)
	s.expect(true)

	for _, id := range []string{"abc", "-1", "+1", "1.5"} {
		resp, body := e.send("GET", "/v1/sandboxes/a/processes/1/output", nil, map[string]string{"Last-Event-ID": id})
		expectError(t, resp, body, 400, "Last-Event-ID")
	}
	resp, body := e.do("GET", "/v1/sandboxes/a/processes/1/output?from=-1", nil)
	expectError(t, resp, body, 400, "from")

	// Output dropped from the buffer: truncated, then the oldest kept.
	p.drop(8)
	s = openOutput(t, e, "?from=2", nil)
	s.expect(false, procEvent{name: "truncated", data: `{"from":2,"outputStart":8}`}, out(8, "stderr", "ps\n"), all[2])
	exitEvent(t, s.nextEvent(), 0)
}

// A running process's stream follows its output with heartbeats in
// silences, and ends with exit; follow=false ends with end.
func TestProcessOutputFollow(t *testing.T) {
	t.Parallel()
	e, d := setupProcs(t, server.Options{StreamHeartbeat: 50 * time.Millisecond}, nil)
	p := startFake(t, e, d, nil)
	p.emit(driver.Stdout, "a")

	s := openOutput(t, e, "", nil)
	s.expect(false, out(0, "stdout", "a"))
	if ev, _ := s.next(); ev.name != ":" {
		t.Errorf("no heartbeat in a silence: %+v", ev)
	}
	// follow=false: what was there when it was asked for, then end.
	p.emit(driver.Stderr, "bc")
	openOutput(t, e, "?follow=false", nil).expect(true, out(0, "stdout", "a"), out(1, "stderr", "bc"), procEvent{name: "end", data: "{}"})
	openOutput(t, e, "?follow=false&from=3", nil).expect(true, procEvent{name: "end", data: "{}"})
	openOutput(t, e, "?follow=false&from=99", nil).expect(true, procEvent{name: "end", data: "{}"})

	s.expect(false, out(1, "stderr", "bc"))
	p.emit(driver.Stdout, "d")
	p.exit(1, "")
	s.expect(false, out(3, "stdout", "d"))
	exitEvent(t, s.nextEvent(), 1)
	s.expect(true)
}

// The sandbox ending ends the stream with an error event; a client that
// goes away stops its reader but not the process.
func TestProcessOutputEnds(t *testing.T) {
	t.Parallel()
	e, d := setupProcs(t, server.Options{}, nil)
	p := startFake(t, e, d, nil)
	p.emit(driver.Stdout, "x")

	s := openOutput(t, e, "", nil)
	s.expect(false, out(0, "stdout", "x"))
	s.resp.Body.Close()
	p.waitFor(t, "the reader of a client gone", func() bool { return p.readers == 0 })
	if in := p.Info(); in.State != driver.ProcessRunning || len(p.received()) != 0 {
		t.Errorf("after the client went away: %+v, signals %v", in, p.received())
	}

	s = openOutput(t, e, "?from=1", nil)
	p.waitFor(t, "a reader", func() bool { return p.readers == 1 })
	p.endSandbox()
	s.expect(true, procEvent{name: "error", data: `{"error":"sandbox \"a\" not found"}`})
}

// A client that reconnects with the last event id it saw loses and
// repeats nothing, whatever the process wrote meanwhile.
func TestProcessOutputReconnect(t *testing.T) {
	t.Parallel()
	e, d := setupProcs(t, server.Options{}, nil)
	p := startFake(t, e, d, nil)
	var want, got strings.Builder
	emit := func(n int) {
		for i := range n {
			s := strings.Repeat(string(rune('a'+i%26)), i%7+1)
			want.WriteString(s)
			p.emit(driver.Stream(1+i%2), s)
		}
	}
	lastID := ""
	for round := range 4 {
		emit(10)
		hdr := map[string]string{}
		if lastID != "" {
			hdr["Last-Event-ID"] = lastID
		}
		s := openOutput(t, e, "", hdr)
		if round == 3 {
			p.exit(0, "")
		}
		for {
			ev := s.nextEvent()
			if ev.name == "exit" {
				break
			}
			var c noxapi.ProcessOutputChunk
			if ev.name != "output" || json.Unmarshal([]byte(ev.data), &c) != nil || c.Data == nil {
				t.Fatalf("event %+v", ev)
			}
			if c.Offset != int64(got.Len()) {
				t.Fatalf("round %d: chunk at %d after %d bytes", round, c.Offset, got.Len())
			}
			got.WriteString(*c.Data)
			lastID = ev.id
			if round < 3 && got.Len() == want.Len() {
				break // caught up: disconnect
			}
		}
		s.resp.Body.Close()
	}
	if got.String() != want.String() {
		t.Errorf("read %q, want %q", got.String(), want.String())
	}
}

// A follow that stays silent longer than the stall timeout is kept open
// (heartbeats) and still carries the output that comes later.
func TestProcessOutputIdle(t *testing.T) {
	t.Parallel()
	const stall = 300 * time.Millisecond
	e, d := setupProcs(t, server.Options{StallTimeout: stall, StreamHeartbeat: 100 * time.Millisecond}, nil)
	p := startFake(t, e, d, nil)
	s := openOutput(t, e, "", nil)
	for range 10 { // a second of heartbeats
		if ev, _ := s.next(); ev.name != ":" {
			t.Fatalf("event %+v during the silence", ev)
		}
	}
	p.emit(driver.Stdout, "late")
	s.expect(false, out(0, "stdout", "late"))
}
