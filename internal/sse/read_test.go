package sse_test

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/noxrunner/nox/internal/sse"
)

// ev is an event as the tables write it.
type ev struct{ Type, Data string }

// readAll reads every event of in and returns them with the reader.
func readAll(t testing.TB, in io.Reader, opts ...sse.Option) ([]ev, *sse.Reader, error) {
	t.Helper()
	r := sse.NewReader(in, opts...)
	var got []ev
	for {
		e, err := r.Next()
		if err == io.EOF {
			return got, r, nil
		}
		if err != nil {
			return got, r, err
		}
		got = append(got, ev{e.Type, string(e.Data)})
	}
}

// departures joins the reasons of a reader's departures, one a line.
func departures(r *sse.Reader) string {
	var b strings.Builder
	for _, d := range r.Departures() {
		b.WriteString(d.Error())
		b.WriteByte('\n')
	}
	return b.String()
}

func TestReader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		in       string
		want     []ev
		comments int
		// departs lists what the strict reader's departures must mention,
		// in order; nil means none.
		departs []string
	}{
		{name: "lf", in: "event: stdout\ndata: a\n\n", want: []ev{{"stdout", "a"}}},
		{name: "crlf", in: "event: stdout\r\ndata: a\r\n\r\n", want: []ev{{"stdout", "a"}}},
		{name: "cr", in: "event: x\rdata: a\r\r", want: []ev{{"x", "a"}}},
		{name: "mixed line ends", in: "event: x\r\ndata: a\rdata: b\n\r\n", want: []ev{{"x", "a\nb"}}},
		{name: "data lines joined", in: "data: a\ndata: b\n\n", want: []ev{{"message", "a\nb"}}},
		{name: "comments id retry", in: ": heartbeat\n\n: c\nevent: e\nid: 1\nretry: 5\ndata:no-space\n\n",
			want: []ev{{"e", "no-space"}}, comments: 2},
		{name: "event without data dropped", in: "event: only\n\n",
			departs: []string{`line 2: event "only" has no data line, so readers drop it`}},
		{name: "unterminated line", in: "data: unterminated",
			departs: []string{`line 1: the stream ends inside a line: "data: unterminated"`}},
		{name: "field without colon", in: "data\n\n", want: []ev{{"message", ""}}},
		{name: "empty data line", in: "data:\ndata:\n\n", want: []ev{{"message", "\n"}}},
		{name: "two events", in: "data: 1\n\ndata: 2\n\n", want: []ev{{"message", "1"}, {"message", "2"}}},
		{name: "only one space trimmed", in: "event:  x\ndata:  y \n\n", want: []ev{{" x", " y "}}},
		{name: "colon in value", in: "data: a: b\n\n", want: []ev{{"message", "a: b"}}},
		{name: "last event type wins", in: "event: a\nevent: b\ndata: x\n\n", want: []ev{{"b", "x"}}},
		{name: "type resets after dispatch", in: "event: a\ndata: x\n\ndata: y\n\n", want: []ev{{"a", "x"}, {"message", "y"}}},
		{name: "byte order mark", in: "\uFEFFdata: x\n\n", want: []ev{{"message", "x"}}},
		{name: "blank lines between events", in: "\n\n\r\ndata: x\n\n\n", want: []ev{{"message", "x"}}},
		{name: "events and comments",
			in:       ": hi\n\nevent: stdout\ndata: {\"data\":\"a\"}\n\nevent: exit\r\ndata: 1\r\ndata: 2\r\n\r\n",
			want:     []ev{{"stdout", `{"data":"a"}`}, {"exit", "1\n2"}},
			comments: 1},
		{name: "default type", in: "data: x\n\n", want: []ev{{"message", "x"}}},
		{name: "unterminated event", in: "event: exit\ndata: {}\n",
			departs: []string{`line 3: the stream ends without the blank line that terminates its last event (event "exit" lost)`}},
		{name: "unterminated line and event", in: "event: exit\ndata: {}",
			departs: []string{`line 2: the stream ends inside a line: "data: {}"`, "without the blank line"}},
		{name: "unknown field", in: "evnt: exit\n\n",
			departs: []string{`line 1: unknown field "evnt" in "evnt: exit"`, "no data line"}},
		{name: "unknown field beside data", in: "event: x\nfoo\ndata: 1\n\n", want: []ev{{"x", "1"}},
			departs: []string{`line 2: unknown field "foo" in "foo"`}},
		{name: "empty", in: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, strict := range []bool{false, true} {
				var opts []sse.Option
				if strict {
					opts = append(opts, sse.Strict())
				}
				got, r, err := readAll(t, strings.NewReader(tt.in), opts...)
				if err != nil {
					t.Fatalf("strict %v: %v", strict, err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("strict %v: events %q, want %q", strict, got, tt.want)
				}
				if r.Comments() != tt.comments {
					t.Errorf("strict %v: %d comments, want %d", strict, r.Comments(), tt.comments)
				}
				ds := r.Departures()
				if !strict {
					if len(ds) != 0 {
						t.Errorf("tolerant reader recorded departures: %v", ds)
					}
					continue
				}
				if len(ds) != len(tt.departs) {
					t.Fatalf("departures:\n%swant %q", departures(r), tt.departs)
				}
				for i, want := range tt.departs {
					if !strings.Contains(ds[i].Error(), want) {
						t.Errorf("departure %d %q, want one containing %q", i, ds[i].Error(), want)
					}
				}
			}
		})
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("read failed") }

func TestReaderReadError(t *testing.T) {
	t.Parallel()
	r := sse.NewReader(io.MultiReader(strings.NewReader("data: 1\n\ndata: 2"), errReader{}), sse.Strict())
	e, err := r.Next()
	if err != nil || string(e.Data) != "1" {
		t.Fatalf("first event %+v, %v", e, err)
	}
	for range 2 { // the error is sticky
		if _, err := r.Next(); err == nil || err.Error() != "read failed" {
			t.Errorf("read error: %v, want the reader's own error", err)
		}
	}
	if ds := r.Departures(); len(ds) != 0 {
		t.Errorf("a read error is not a departure: %v", ds)
	}
}

func TestReaderLineTooLong(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in      string
		wantErr bool
	}{
		{"data: 12\n\n", false}, // 8 bytes: at the bound
		{"data: 123\n\n", true},
		{"data: 123", true}, // unterminated
		{":" + strings.Repeat("x", 100) + "\n", true},
	} {
		got, _, err := readAll(t, strings.NewReader(tt.in), sse.MaxLine(8))
		if tt.wantErr != errors.Is(err, sse.ErrLineTooLong) {
			t.Errorf("%q: events %q, error %v; want ErrLineTooLong %v", tt.in, got, err, tt.wantErr)
		}
	}
	// The default bound admits a line of DefaultMaxLine bytes.
	big := strings.Repeat("x", sse.DefaultMaxLine-len("data: "))
	got, _, err := readAll(t, strings.NewReader("data: "+big+"\n\n"))
	if err != nil || len(got) != 1 || len(got[0].Data) != len(big) {
		t.Errorf("a line of DefaultMaxLine bytes: %d events, %v", len(got), err)
	}
	_, _, err = readAll(t, strings.NewReader("data: "+big+"x\n\n"))
	if !errors.Is(err, sse.ErrLineTooLong) {
		t.Errorf("a line above DefaultMaxLine: %v", err)
	}
}

// TestReaderSplitReads checks that how the stream is cut into reads does
// not change what is read, a "\r\n" cut in two included.
func TestReaderSplitReads(t *testing.T) {
	t.Parallel()
	in := "event: a\r\ndata: 1\r\n\r\n: c\r\rdata: 2\rdata: 3\n\nevent: b\n" + "data: " + strings.Repeat("y", 200<<10) + "\r\n\r\n"
	want, wr, err := readAll(t, strings.NewReader(in), sse.Strict())
	if err != nil || len(want) != 3 {
		t.Fatalf("whole: %d events, %v", len(want), err)
	}
	for name, rd := range map[string]io.Reader{
		"one byte": iotest.OneByteReader(strings.NewReader(in)),
		"half":     iotest.HalfReader(strings.NewReader(in)),
		"data+EOF": iotest.DataErrReader(strings.NewReader(in)),
	} {
		got, r, err := readAll(t, rd, sse.Strict())
		if err != nil || !reflect.DeepEqual(got, want) || r.Comments() != wr.Comments() || len(r.Departures()) != 0 {
			t.Errorf("%s: %d events, %d comments, departures %v, %v", name, len(got), r.Comments(), r.Departures(), err)
		}
	}
}

// TestReaderDoesNotWaitAfterEvent checks that Next returns an event as soon
// as its blank line arrived, without reading further, whatever the line
// ends.
func TestReaderDoesNotWaitAfterEvent(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"data: x\n\n", "data: x\r\n\r\n", "data: x\r\r", ": hb\r\rdata: x\r\r"} {
		pr, pw := io.Pipe()
		r := sse.NewReader(pr)
		go func() { _, _ = pw.Write([]byte(in)) }() // then silence
		done := make(chan error, 1)
		go func() {
			e, err := r.Next()
			if err == nil && string(e.Data) != "x" {
				err = errors.New("data " + string(e.Data))
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%q: %v", in, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%q: Next waits for more input after a complete event", in)
		}
		_ = pw.Close()
	}
}

// TestWriteRead checks that what WriteEvent and WriteComment write reads
// back, with no departure from the grammar.
func TestWriteRead(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	_ = sse.WriteComment(&b, "heartbeat")
	_ = sse.WriteEvent(&b, "stdout", []byte(`{"data":"a\n"}`))
	_ = sse.WriteEvent(&b, "exit", []byte("two\r\nlines\rand\nmore"))
	_ = sse.WriteEvent(&b, "empty", nil)
	_ = sse.WriteComment(&b, "bye")
	got, r, err := readAll(t, &b, sse.Strict())
	want := []ev{{"stdout", `{"data":"a\n"}`}, {"exit", "two\nlines\nand\nmore"}, {"empty", ""}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("events %q, %v; want %q", got, err, want)
	}
	if r.Comments() != 2 || len(r.Departures()) != 0 {
		t.Errorf("%d comments, departures %v", r.Comments(), r.Departures())
	}
}

func FuzzRead(f *testing.F) {
	f.Add("event: stdout\ndata: {\"data\":\"x\"}\n\n: heartbeat\n\nevent: exit\ndata: {}\n\n")
	f.Add("data: a\r\ndata: b\r\n\r\n")
	f.Add("\r\r\n\n:\n")
	f.Add("\uFEFFevnt: x\ndata\n\nevent: y\n\ndata: z")
	f.Fuzz(func(t *testing.T, in string) {
		tolerant, tr, err := readAll(t, strings.NewReader(in))
		if err != nil {
			t.Fatalf("tolerant: %v", err)
		}
		if len(tr.Departures()) != 0 {
			t.Errorf("tolerant reader recorded departures %v", tr.Departures())
		}
		strict, sr, err := readAll(t, iotest.OneByteReader(strings.NewReader(in)), sse.Strict())
		if err != nil {
			t.Fatalf("strict: %v", err)
		}
		if !reflect.DeepEqual(strict, tolerant) || sr.Comments() != tr.Comments() {
			t.Errorf("strict, byte by byte: %q (%d comments); tolerant, whole: %q (%d comments)",
				strict, sr.Comments(), tolerant, tr.Comments())
		}
		ends := strings.Count(in, "\n") + strings.Count(in, "\r")
		if len(tolerant)+tr.Comments() > ends {
			t.Errorf("%d events and %d comments from %d line ends", len(tolerant), tr.Comments(), ends)
		}
		for _, e := range tolerant {
			if e.Type == "" {
				t.Error("empty event type")
			}
			if strings.ContainsAny(e.Type+e.Data, "\r") || strings.Contains(e.Type, "\n") {
				t.Errorf("event %q holds a line end", e)
			}
		}
		for _, d := range sr.Departures() {
			if d.Line < 1 || d.Line > ends+1 {
				t.Errorf("departure %v: line out of range", d)
			}
		}
	})
}

func FuzzWriteRead(f *testing.F) {
	f.Add("stdout", []byte(`{"data":"x"}`))
	f.Add("", []byte("a\r\nb\rc\n"))
	f.Add(" x", []byte(""))
	f.Fuzz(func(t *testing.T, event string, data []byte) {
		if strings.ContainsAny(event, "\r\n") {
			t.Skip("an event type cannot hold a line end")
		}
		var b bytes.Buffer
		if err := sse.WriteEvent(&b, event, data); err != nil {
			t.Fatal(err)
		}
		got, r, err := readAll(t, &b, sse.Strict())
		wantType := event
		if wantType == "" {
			wantType = "message"
		}
		wantData := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(string(data))
		if err != nil || !reflect.DeepEqual(got, []ev{{wantType, wantData}}) {
			t.Errorf("read back %q, %v; want %q", got, err, ev{wantType, wantData})
		}
		if len(r.Departures()) != 0 {
			t.Errorf("departures %v", r.Departures())
		}
	})
}

func BenchmarkRead(b *testing.B) {
	var in bytes.Buffer
	chunk := []byte(`{"data":"` + strings.Repeat("output line\\n", 40) + `"}`)
	for range 200 {
		_ = sse.WriteEvent(&in, "stdout", chunk)
		_ = sse.WriteComment(&in, "heartbeat")
	}
	_ = sse.WriteEvent(&in, "exit", []byte(`{"exitCode":0,"stdout":"`+strings.Repeat("x", 1<<20)+`"}`))
	b.SetBytes(int64(in.Len()))
	b.ReportAllocs()
	for b.Loop() {
		r := sse.NewReader(bytes.NewReader(in.Bytes()))
		for {
			if _, err := r.Next(); err != nil {
				break
			}
		}
	}
}
