package proctable

import (
	"context"
	"io"
	"sync"
	"unicode/utf8"

	"github.com/noxrunner/nox/driver"
)

// maxChunk bounds one chunk returned by a reader, and the size a chunk
// grows to by appending small writes of one stream.
const maxChunk = 32 << 10

// chunk is output of one stream at offset off.
type chunk struct {
	off    int64
	stream driver.Stream
	data   []byte
}

// outputLog is the bounded output of one process. Readers get sub-slices
// of chunks: bytes already appended are never modified (appends write
// beyond every slice handed out; trimming re-slices).
type outputLog struct {
	mu     sync.Mutex
	limit  int64
	chunks []chunk // oldest first; chunks[i].off increasing
	start  int64   // offset of the oldest byte kept
	end    int64   // offset after the newest byte
	kept   int64   // end - start
	closed bool    // no more output: the process ended
	// changed is closed (and replaced) whenever output is appended or
	// the log is closed.
	changed chan struct{}
	// pending holds, per stream, the start of a UTF-8 character whose
	// end has not been written yet.
	pending [3][]byte
}

func newOutputLog(limit int64) *outputLog {
	return &outputLog{limit: limit, changed: make(chan struct{})}
}

// write commits p of stream s, holding back an incomplete trailing UTF-8
// character until its end arrives (or the log closes).
func (l *outputLog) write(s driver.Stream, p []byte) {
	if len(p) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	if pend := l.pending[s]; len(pend) > 0 {
		p = append(pend, p...)
		l.pending[s] = nil
	}
	if n := incompleteTail(p); n > 0 {
		l.pending[s] = append([]byte(nil), p[len(p)-n:]...)
		p = p[:len(p)-n]
	}
	l.appendLocked(s, p)
}

// incompleteTail returns the length of a trailing, incomplete but so far
// valid UTF-8 sequence of p (0 when p ends on a boundary or the tail can
// never become valid).
func incompleteTail(p []byte) int {
	for n := 1; n <= utf8.UTFMax-1 && n <= len(p); n++ {
		b := p[len(p)-n]
		if b < utf8.RuneSelf {
			return 0 // ASCII: a boundary
		}
		if !utf8.RuneStart(b) {
			continue // a continuation byte: look further back
		}
		// A start byte n bytes from the end: incomplete when it needs
		// more than n bytes and what follows it is a valid prefix.
		need := 0
		switch {
		case b&0xE0 == 0xC0:
			need = 2
		case b&0xF0 == 0xE0:
			need = 3
		case b&0xF8 == 0xF0:
			need = 4
		default:
			return 0
		}
		if need > n && !utf8.FullRune(p[len(p)-n:]) {
			return n
		}
		return 0
	}
	return 0
}

// appendLocked adds p to the log and drops the oldest bytes beyond the
// limit.
func (l *outputLog) appendLocked(s driver.Stream, p []byte) {
	if len(p) == 0 {
		return
	}
	if n := len(l.chunks); n > 0 {
		last := &l.chunks[n-1]
		if last.stream == s && len(last.data)+len(p) <= maxChunk && last.off+int64(len(last.data)) == l.end {
			last.data = append(last.data, p...)
			l.grew(int64(len(p)))
			return
		}
	}
	l.chunks = append(l.chunks, chunk{off: l.end, stream: s, data: append(make([]byte, 0, max(len(p), 512)), p...)})
	l.grew(int64(len(p)))
}

// grew accounts for n appended bytes, trims the log to its limit and
// wakes the readers.
func (l *outputLog) grew(n int64) {
	l.end += n
	l.kept += n
	for l.kept > l.limit && len(l.chunks) > 0 {
		over := l.kept - l.limit
		c := &l.chunks[0]
		if int64(len(c.data)) <= over {
			l.kept -= int64(len(c.data))
			l.chunks[0] = chunk{}
			l.chunks = l.chunks[1:]
			continue
		}
		c.data = c.data[over:]
		c.off += over
		l.kept -= over
	}
	if len(l.chunks) > 0 {
		l.start = l.chunks[0].off
	} else {
		l.start = l.end
	}
	l.wake()
}

func (l *outputLog) wake() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// close commits the held-back bytes and marks the end of the output.
func (l *outputLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	for s, pend := range l.pending {
		if len(pend) > 0 {
			l.appendLocked(driver.Stream(s), pend)
			l.pending[s] = nil
		}
	}
	l.closed = true
	l.wake()
}

// bounds returns the offsets of the oldest byte kept and after the newest.
func (l *outputLog) bounds() (start, end int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.start, l.end
}

// reader reads a log from an offset.
type reader struct {
	l    *outputLog
	next int64
}

// Next implements driver.OutputReader.
func (r *reader) Next(ctx context.Context) (driver.OutputChunk, error) {
	for {
		l := r.l
		l.mu.Lock()
		var dropped int64
		if r.next < l.start {
			dropped, r.next = l.start-r.next, l.start
		}
		if r.next < l.end {
			c := l.find(r.next)
			from := r.next - c.off
			data := c.data[from:]
			if len(data) > maxChunk {
				data = data[:runeBoundary(data, maxChunk)]
			}
			out := driver.OutputChunk{Offset: r.next, Stream: c.stream, Data: data, Dropped: dropped}
			r.next += int64(len(data))
			l.mu.Unlock()
			return out, nil
		}
		if r.next > l.end {
			r.next = l.end // an offset beyond the output: wait from its end
		}
		closed, changed := l.closed, l.changed
		l.mu.Unlock()
		if closed {
			return driver.OutputChunk{}, io.EOF
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return driver.OutputChunk{}, context.Cause(ctx)
		}
	}
}

// runeBoundary returns n, or the start of the UTF-8 character that n is
// inside of (when that is not at the beginning of b).
func runeBoundary(b []byte, n int) int {
	for i := n; i > n-utf8.UTFMax && i > 0; i-- {
		if utf8.RuneStart(b[i]) {
			return i
		}
	}
	return n
}

// find returns the chunk holding offset off (start <= off < end).
func (l *outputLog) find(off int64) *chunk {
	lo, hi := 0, len(l.chunks)-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if l.chunks[mid].off <= off {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return &l.chunks[lo]
}

// Sink is where a backend writes a process's output. Write does not
// block and keeps no reference to p.
type Sink struct{ l *outputLog }

// Stdout returns a writer of the process's standard output (or its
// terminal's output).
func (s Sink) Stdout() io.Writer { return streamWriter{s.l, driver.Stdout} }

// Stderr returns a writer of the process's standard error.
func (s Sink) Stderr() io.Writer { return streamWriter{s.l, driver.Stderr} }

type streamWriter struct {
	l *outputLog
	s driver.Stream
}

func (w streamWriter) Write(p []byte) (int, error) {
	w.l.write(w.s, p)
	return len(p), nil
}
