package conformance_test

import (
	"strings"
	"testing"

	"github.com/noxrunner/nox/conformance"
)

func TestParseSSE(t *testing.T) {
	for _, c := range []struct {
		name, in string
		events   []conformance.SSEEvent
		comments int
		wantErr  string
	}{
		{name: "events and comments",
			in:     ": hi\n\nevent: stdout\ndata: {\"data\":\"a\"}\n\nevent: exit\r\ndata: 1\r\ndata: 2\r\n\r\n",
			events: []conformance.SSEEvent{{Event: "stdout", Data: `{"data":"a"}`}, {Event: "exit", Data: "1\n2"}}, comments: 1},
		{name: "default type", in: "data: x\n\n", events: []conformance.SSEEvent{{Event: "message", Data: "x"}}},
		{name: "unterminated event", in: "event: exit\ndata: {}\n", wantErr: "without the blank line"},
		{name: "unterminated line", in: "event: exit\ndata: {}", wantErr: "inside a line"},
		{name: "unknown field", in: "evnt: exit\n\n", wantErr: "unknown field"},
	} {
		t.Run(c.name, func(t *testing.T) {
			events, comments, err := conformance.ParseSSE(strings.NewReader(c.in))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(events) != len(c.events) || comments != c.comments {
				t.Fatalf("events %+v comments %d, want %+v %d", events, comments, c.events, c.comments)
			}
			for i := range events {
				if events[i] != c.events[i] {
					t.Errorf("event %d: %+v, want %+v", i, events[i], c.events[i])
				}
			}
		})
	}
}
