package localbackend

import (
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// capWriter keeps the first max bytes written to it and forwards them, as
// complete UTF-8 characters, to an optional chunk callback.
type capWriter struct {
	mu        sync.Mutex
	max       int64
	buf       []byte
	truncated bool
	onChunk   func(string)
	pending   []byte // an incomplete character at the end of the last write
}

func newCapWriter(max int64, onChunk func(string)) *capWriter {
	return &capWriter{max: max, onChunk: onChunk}
}

// Write never fails and never blocks on the client: output beyond the cap
// is counted as written and dropped.
func (w *capWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	if room := w.max - int64(len(w.buf)); int64(len(p)) > room {
		p = p[:max(room, 0)]
		w.truncated = true
	}
	w.buf = append(w.buf, p...)
	if w.onChunk != nil && len(p) > 0 {
		data := append(w.pending, p...)
		cut := completePrefix(data)
		w.pending = slices.Clone(data[cut:])
		if cut > 0 {
			w.onChunk(strings.ToValidUTF8(string(data[:cut]), "\uFFFD"))
		}
	}
	return n, nil
}

// note appends a message after the captured output, even past the cap.
func (w *capWriter) note(msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, msg...)
	if w.onChunk != nil {
		w.onChunk(strings.ToValidUTF8(string(w.pending)+msg, "\uFFFD"))
		w.pending = nil
	}
}

// finish flushes a pending partial character and returns the output as
// valid UTF-8.
func (w *capWriter) finish() (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.onChunk != nil && len(w.pending) > 0 {
		w.onChunk(strings.ToValidUTF8(string(w.pending), "\uFFFD"))
		w.pending = nil
	}
	return strings.ToValidUTF8(string(w.buf), "\uFFFD"), w.truncated
}

// completePrefix returns the length of the longest prefix of b that does
// not end inside a multi-byte UTF-8 character that may still be completed.
func completePrefix(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			return len(b)
		}
	}
	return len(b)
}
