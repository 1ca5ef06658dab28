// Package sse is the one Server-Sent Events codec of nox: the server layer
// writes event streams with it, and the SDK and the conformance suite read
// them with it.
package sse

import (
	"io"
	"strings"
)

// WriteEvent writes one event with the given type and data. Data holding
// line breaks is split over several data lines, as the grammar requires.
func WriteEvent(w io.Writer, event string, data []byte) error {
	var b strings.Builder
	b.Grow(len(event) + len(data) + 16)
	b.WriteString("event: ")
	b.WriteString(event)
	b.WriteByte('\n')
	for _, line := range strings.Split(strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(string(data)), "\n") {
		b.WriteString("data: ")
		b.WriteString(line)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteComment writes a comment line, which readers ignore; servers send
// them as heartbeats during silences.
func WriteComment(w io.Writer, text string) error {
	_, err := io.WriteString(w, ": "+text+"\n\n")
	return err
}
