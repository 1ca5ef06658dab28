package proctable

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/noxrunner/nox/driver"
)

// drain reads l from offset from until EOF.
func drain(t testing.TB, l *outputLog, from int64) (data []byte, chunks []driver.OutputChunk) {
	t.Helper()
	r := &reader{l: l, next: from}
	for {
		c, err := r.Next(context.Background())
		if err == io.EOF {
			return data, chunks
		}
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, c.Data...)
		chunks = append(chunks, c)
	}
}

func TestIncompleteTail(t *testing.T) {
	euro := []byte("€") // e2 82 ac
	tests := []struct {
		name string
		in   []byte
		want int
	}{
		{"empty", nil, 0},
		{"ascii", []byte("abc"), 0},
		{"whole euro", euro, 0},
		{"euro missing one", euro[:2], 2},
		{"euro missing two", euro[:1], 1},
		{"text then partial", append([]byte("ab"), euro[:2]...), 2},
		{"four-byte partial", []byte("😀")[:3], 3},
		{"lone continuation", []byte{0x82}, 0},
		{"invalid start", []byte{0xff}, 0},
		{"start then ascii", []byte{0xe2, 'a'}, 0},
	}
	for _, tt := range tests {
		if got := incompleteTail(tt.in); got != tt.want {
			t.Errorf("%s: incompleteTail(% x) = %d, want %d", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestOutputSplitsOnCharacterBoundaries(t *testing.T) {
	l := newOutputLog(1 << 20)
	s := "héllo € 😀 wörld"
	for i := range len(s) { // one byte per write
		l.write(driver.Stdout, []byte{s[i]})
	}
	l.close()
	data, chunks := drain(t, l, 0)
	if string(data) != s {
		t.Fatalf("data = %q", data)
	}
	for _, c := range chunks {
		if !utf8.Valid(c.Data) {
			t.Fatalf("chunk % x is not valid UTF-8", c.Data)
		}
	}
}

func TestOutputLargeWriteSplitsOnCharacterBoundaries(t *testing.T) {
	l := newOutputLog(1 << 20)
	big := bytes.Repeat([]byte("€"), maxChunk) // 3 bytes each: no chunk boundary falls on one
	l.write(driver.Stdout, big)
	l.close()
	data, chunks := drain(t, l, 0)
	if !bytes.Equal(data, big) || len(chunks) < 3 {
		t.Fatalf("%d bytes in %d chunks", len(data), len(chunks))
	}
	for _, c := range chunks {
		if !utf8.Valid(c.Data) || len(c.Data) > maxChunk {
			t.Fatalf("chunk at %d of %d bytes is not valid UTF-8 or too big", c.Offset, len(c.Data))
		}
	}
}

func TestOutputInterleavesStreamsInOrder(t *testing.T) {
	l := newOutputLog(1 << 20)
	l.write(driver.Stdout, []byte("a"))
	l.write(driver.Stderr, []byte("b"))
	l.write(driver.Stdout, []byte("c"))
	l.close()
	_, chunks := drain(t, l, 0)
	want := []driver.OutputChunk{
		{Offset: 0, Stream: driver.Stdout, Data: []byte("a")},
		{Offset: 1, Stream: driver.Stderr, Data: []byte("b")},
		{Offset: 2, Stream: driver.Stdout, Data: []byte("c")},
	}
	if len(chunks) != len(want) {
		t.Fatalf("chunks = %+v", chunks)
	}
	for i := range want {
		if chunks[i].Offset != want[i].Offset || chunks[i].Stream != want[i].Stream || string(chunks[i].Data) != string(want[i].Data) {
			t.Fatalf("chunk %d = %+v, want %+v", i, chunks[i], want[i])
		}
	}
}

func TestOutputReplayFromEveryOffset(t *testing.T) {
	l := newOutputLog(1 << 20)
	var all []byte
	for i := range 100 {
		p := bytes.Repeat([]byte{byte('a' + i%26)}, i*37%1000+1)
		all = append(all, p...)
		l.write(driver.Stream(1+i%2), p)
	}
	l.close()
	for _, from := range []int64{0, 1, 999, int64(len(all)) / 2, int64(len(all)) - 1, int64(len(all))} {
		data, chunks := drain(t, l, from)
		if !bytes.Equal(data, all[from:]) {
			t.Fatalf("from %d: %d bytes differ from the %d expected", from, len(data), len(all)-int(from))
		}
		next := from
		for _, c := range chunks {
			if c.Offset != next || c.Dropped != 0 {
				t.Fatalf("from %d: chunk at %d (dropped %d), want %d", from, c.Offset, c.Dropped, next)
			}
			next += int64(len(c.Data))
		}
	}
}

func TestOutputTruncationReportsDropped(t *testing.T) {
	l := newOutputLog(100)
	for range 10 {
		l.write(driver.Stdout, bytes.Repeat([]byte("x"), 30)) // 300 bytes, 100 kept
	}
	l.close()
	start, end := l.bounds()
	if start != 200 || end != 300 {
		t.Fatalf("bounds = %d, %d; want 200, 300", start, end)
	}
	r := &reader{l: l}
	c, err := r.Next(context.Background())
	if err != nil || c.Dropped != 200 || c.Offset != 200 {
		t.Fatalf("first chunk = %+v, %v; want 200 dropped at 200", c, err)
	}
	data, _ := drain(t, l, 250)
	if len(data) != 50 {
		t.Fatalf("from 250: %d bytes", len(data))
	}
}

func TestOutputFollowWaitsAndEnds(t *testing.T) {
	l := newOutputLog(1 << 20)
	r := &reader{l: l}
	got := make(chan string)
	go func() {
		var b []byte
		for {
			c, err := r.Next(context.Background())
			if err != nil {
				got <- string(b)
				return
			}
			b = append(b, c.Data...)
		}
	}()
	l.write(driver.Stdout, []byte("one "))
	time.Sleep(time.Millisecond)
	l.write(driver.Stdout, []byte("two"))
	l.close()
	if s := <-got; s != "one two" {
		t.Fatalf("followed %q", s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	open := newOutputLog(10)
	if _, err := (&reader{l: open}).Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Next: %v", err)
	}
}

func TestOutputConcurrentReadersAndWriters(t *testing.T) {
	l := newOutputLog(1 << 16)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &reader{l: l}
			var last int64
			for {
				c, err := r.Next(context.Background())
				if err != nil {
					return
				}
				if c.Offset < last {
					t.Errorf("offset went back: %d < %d", c.Offset, last)
				}
				last = c.Offset + int64(len(c.Data))
			}
		}()
	}
	for i := range 1000 {
		l.write(driver.Stream(1+i%2), []byte("some output line\n"))
	}
	l.close()
	wg.Wait()
}

// FuzzOutputLog checks, for any writes, that the log returns exactly what
// was written (when nothing is dropped) and never splits a character of a
// stream that is valid UTF-8.
func FuzzOutputLog(f *testing.F) {
	f.Add([]byte("héllo€😀"), uint8(1))
	f.Add([]byte{0xe2, 0x82, 0xff, 0xac, 'a'}, uint8(2))
	f.Add([]byte("plain ascii"), uint8(7))
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		n := int(step%16) + 1
		l := newOutputLog(1 << 20)
		for i := 0; i < len(in); i += n {
			l.write(driver.Stdout, in[i:min(i+n, len(in))])
		}
		l.close()
		data, chunks := drain(t, l, 0)
		if !bytes.Equal(data, in) {
			t.Fatalf("got % x, want % x", data, in)
		}
		if utf8.Valid(in) {
			for _, c := range chunks {
				if !utf8.Valid(c.Data) {
					t.Fatalf("chunk % x splits a character", c.Data)
				}
			}
		}
	})
}
