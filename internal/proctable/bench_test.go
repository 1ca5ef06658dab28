package proctable

import (
	"context"
	"io"
	"runtime"
	"testing"

	"github.com/noxrunner/nox/driver"
)

// BenchmarkReplay measures replaying a full 1 MiB output buffer written in
// 4 KiB pieces (bytes/s is the replay throughput).
func BenchmarkReplay(b *testing.B) {
	l := newOutputLog(1 << 20)
	piece := make([]byte, 4096)
	for i := range piece {
		piece[i] = 'a' + byte(i%26)
	}
	for range 256 {
		l.write(driver.Stdout, piece)
	}
	l.close()
	b.SetBytes(1 << 20)
	b.ReportAllocs()
	for b.Loop() {
		r := &reader{l: l}
		for {
			if _, err := r.Next(context.Background()); err == io.EOF {
				break
			}
		}
	}
}

// BenchmarkWrite measures committing output in 512-byte pieces into a
// full buffer (the steady state of a chatty process).
func BenchmarkWrite(b *testing.B) {
	l := newOutputLog(1 << 20)
	piece := make([]byte, 512)
	for i := range piece {
		piece[i] = 'x'
	}
	b.SetBytes(int64(len(piece)))
	b.ReportAllocs()
	for b.Loop() {
		l.write(driver.Stdout, piece)
	}
}

// BenchmarkIdleRecord reports the heap held by one ended process record
// with a little output (B/record), as a table keeps hundreds of them.
func BenchmarkIdleRecord(b *testing.B) {
	const n = 1000
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		t := New(Config{})
		for range n {
			p, err := t.reserve(driver.ProcessRequest{Argv: []string{"python3", "-m", "http.server", "8000"}, Workdir: "/workspace", Tag: "web"})
			if err != nil {
				b.Fatal(err)
			}
			p.out.write(driver.Stdout, []byte("Serving HTTP on 0.0.0.0 port 8000 ...\n"))
			p.out.close()
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/record")
		runtime.KeepAlive(t)
	}
}
