package sdk

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"unicode/utf8"
)

// fakeOutput is the output of one fake process, served by offset the way
// the contract says, and a plan for each connection of the stream.
type fakeOutput struct {
	t    *testing.T
	data []byte // the whole output; chunks are cut at chunkEnds
	ends []int  // chunk boundaries, ascending, the last len(data)
	// plan says what connection n (0-based) does after replaying from
	// its start offset: how many chunks it sends (-1: all, then exit),
	// and whether it first replays from back bytes before the offset.
	plan func(n int) (chunks, back int, hang bool)

	mu      sync.Mutex
	conns   int
	lastIDs []string // the Last-Event-ID header of each connection
	froms   []string // the from parameter of each connection
}

func (f *fakeOutput) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	n := f.conns
	f.conns++
	f.lastIDs = append(f.lastIDs, r.Header.Get("Last-Event-ID"))
	f.froms = append(f.froms, r.URL.Query().Get("from"))
	f.mu.Unlock()
	start, _ := strconv.Atoi(r.URL.Query().Get("from"))
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		start, _ = strconv.Atoi(id)
	}
	chunks, back, hang := f.plan(n)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": heartbeat\n\n")
	from := max(start-back, 0)
	sent := 0
	for _, end := range f.ends {
		if end <= start {
			continue
		}
		if chunks >= 0 && sent == chunks {
			break
		}
		f.event(w, from, end)
		from = end
		sent++
	}
	if hang {
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return
	}
	if chunks < 0 {
		data, _ := json.Marshal(procRecord("1", "exited", 0))
		fmt.Fprintf(w, "event: exit\ndata: %s\n\n", data)
	}
}

// event writes the output event of data[from:end].
func (f *fakeOutput) event(w io.Writer, from, end int) {
	chunk := map[string]any{"offset": from, "stream": "stdout"}
	if b := f.data[from:end]; utf8.Valid(b) {
		chunk["data"] = string(b)
	} else {
		chunk["dataBase64"] = base64.StdEncoding.EncodeToString(b)
	}
	data, _ := json.Marshal(chunk)
	fmt.Fprintf(w, "event: output\nid: %d\ndata: %s\n\n", end, data)
}

// collect ranges over seq and returns the chunks and the error that
// ended it.
func collect(seq func(func(OutputChunk, error) bool)) ([]OutputChunk, error) {
	var out []OutputChunk
	for ch, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, ch)
	}
	return out, nil
}

// joined checks that chunks follow each other without a gap or an
// overlap from offset from, and returns their bytes.
func joined(t *testing.T, chunks []OutputChunk, from int64) []byte {
	t.Helper()
	var b bytes.Buffer
	next := from
	for _, ch := range chunks {
		if ch.Offset != next && ch.Dropped == 0 {
			t.Errorf("chunk at %d, want %d: %+v", ch.Offset, next, ch)
		}
		next = ch.Offset + int64(len(ch.Data))
		b.Write(ch.Data)
	}
	return b.Bytes()
}

// TestOutputResumes checks that Output reconnects after a connection
// drops, from the offset after the last byte it yielded (Last-Event-ID),
// and that a replay overlapping what was yielded repeats nothing.
func TestOutputResumes(t *testing.T) {
	t.Parallel()
	data := []byte("hello wörld\n\xff\xfeend\n")
	for _, tc := range []struct {
		name      string
		plan      func(n int) (chunks, back int, hang bool)
		wantConns int
	}{
		{"drops", func(n int) (int, int, bool) {
			if n < 2 {
				return 1, 0, false
			}
			return -1, 0, false
		}, 3},
		{"overlapping replay", func(n int) (int, int, bool) {
			switch n {
			case 0:
				return 1, 0, false
			case 1:
				return 1, 3, false // resends 3 bytes before the offset asked for
			}
			return -1, 2, false
		}, 3},
		{"silent connection", func(n int) (int, int, bool) {
			if n == 0 {
				return 2, 0, true // then stays silent: idle after 3 heartbeats
			}
			return -1, 0, false
		}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeOutput{t: t, data: data, ends: []int{6, 13, 15, len(data)}, plan: tc.plan}
			ps := newProcServer(t, allProcessExts, map[string]http.HandlerFunc{
				"GET /v1/sandboxes/{id}/processes/{pid}": func(w http.ResponseWriter, r *http.Request) {
					writeJSON(w, http.StatusOK, procRecord("1", "running", 0))
				},
				"GET /v1/sandboxes/{id}/processes/{pid}/output": f.serve,
			})
			for _, c := range []*Client{ps.client(), ps.inProcess()} {
				f.mu.Lock()
				f.conns, f.lastIDs, f.froms = 0, nil, nil
				f.mu.Unlock()
				p, err := c.Sandbox("demo").Process(t.Context(), "1")
				assertNoErr(t, err)
				chunks, err := collect(p.Output(t.Context(), 0))
				assertNoErr(t, err)
				if got := joined(t, chunks, 0); !bytes.Equal(got, data) {
					t.Errorf("output %q, want %q", got, data)
				}
				assertEq(t, "state after the exit event", p.Record().State, ProcessExited)
				f.mu.Lock()
				assertEq(t, "connections", f.conns, tc.wantConns)
				if f.lastIDs[0] != "" || f.froms[0] != "" {
					t.Errorf("first connection: Last-Event-ID %q, from %q; want neither", f.lastIDs[0], f.froms[0])
				}
				for i := 1; i < f.conns; i++ {
					if f.lastIDs[i] == "" || f.lastIDs[i] != f.froms[i] {
						t.Errorf("connection %d: Last-Event-ID %q, from %q: want the same offset", i, f.lastIDs[i], f.froms[i])
					}
				}
				f.mu.Unlock()
			}
		})
	}
}

// TestOutputEvents checks the truncated, end and error events, a
// stream that keeps dropping before any event, and a range from an
// offset.
func TestOutputEvents(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		body     string // the stream of every connection
		opts     OutputOptions
		want     []OutputChunk
		wantErr  error
		wantConn int
		query    string
	}{
		{name: "truncated", opts: OutputOptions{NoFollow: true},
			body: "event: truncated\ndata: {\"from\":0,\"outputStart\":10}\n\n" +
				"event: output\ndata: {\"offset\":10,\"stream\":\"stderr\",\"data\":\"xyz\"}\n\nevent: end\ndata: {}\n\n",
			want:     []OutputChunk{{Offset: 10, Dropped: 10}, {Offset: 10, Stream: "stderr", Data: []byte("xyz")}},
			wantConn: 1, query: "follow=false"},
		{name: "gap without truncated", opts: OutputOptions{From: 4},
			body:     "event: output\ndata: {\"offset\":6,\"stream\":\"stdout\",\"data\":\"ab\"}\n\nevent: exit\ndata: {}\n\n",
			want:     []OutputChunk{{Offset: 6, Dropped: 2}, {Offset: 6, Stream: "stdout", Data: []byte("ab")}},
			wantConn: 1, query: "from=4"},
		{name: "error event",
			body:    "event: output\ndata: {\"offset\":0,\"stream\":\"stdout\",\"data\":\"a\"}\n\nevent: error\ndata: {\"error\":\"sandbox gone\"}\n\n",
			want:    []OutputChunk{{Offset: 0, Stream: "stdout", Data: []byte("a")}},
			wantErr: ErrInternal, wantConn: 1},
		{name: "drops before any event", body: "", wantErr: io.ErrUnexpectedEOF, wantConn: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			conns := 0
			ps := newProcServer(t, allProcessExts, map[string]http.HandlerFunc{
				"GET /v1/sandboxes/{id}/processes/{pid}": func(w http.ResponseWriter, r *http.Request) {
					writeJSON(w, http.StatusOK, procRecord("1", "running", 0))
				},
				"GET /v1/sandboxes/{id}/processes/{pid}/output": func(w http.ResponseWriter, r *http.Request) {
					mu.Lock()
					conns++
					mu.Unlock()
					if r.URL.RawQuery != tc.query {
						t.Errorf("query %q, want %q", r.URL.RawQuery, tc.query)
					}
					w.Header().Set("Content-Type", "text/event-stream")
					io.WriteString(w, tc.body)
				},
			})
			p, err := ps.client().Sandbox("demo").Process(t.Context(), "1")
			assertNoErr(t, err)
			chunks, err := collect(p.OutputWith(t.Context(), tc.opts))
			if tc.wantErr != nil {
				assertIs(t, err, tc.wantErr)
			} else {
				assertNoErr(t, err)
			}
			if fmt.Sprint(chunks) != fmt.Sprint(tc.want) {
				t.Errorf("chunks %+v, want %+v", chunks, tc.want)
			}
			assertEq(t, "connections", conns, tc.wantConn)
		})
	}
}

// TestOutputContextEnds checks that ending the context ends the
// sequence with its error, and that breaking the loop releases the
// stream.
func TestOutputContextEnds(t *testing.T) {
	t.Parallel()
	released := make(chan struct{}, 1)
	ps := newProcServer(t, allProcessExts, map[string]http.HandlerFunc{
		"GET /v1/sandboxes/{id}/processes/{pid}": func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, procRecord("1", "running", 0))
		},
		"GET /v1/sandboxes/{id}/processes/{pid}/output": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "event: output\ndata: {\"offset\":0,\"stream\":\"stdout\",\"data\":\"a\"}\n\n")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			released <- struct{}{}
		},
	})
	p, err := ps.client().Sandbox("demo").Process(t.Context(), "1")
	assertNoErr(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var got error
	for _, err := range p.Output(ctx, 0) {
		if err != nil {
			got = err
			break
		}
		cancel()
	}
	assertIs(t, got, context.Canceled)
	<-released
	for range p.Output(t.Context(), 0) {
		break
	}
	<-released
}
