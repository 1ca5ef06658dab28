package sdk

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchUploadBytes is the size of the directory BenchmarkUploadDir uploads:
// NOX_BENCH_UPLOAD_MB mebibytes, 256 by default.
func benchUploadBytes(b *testing.B) int64 {
	mb := int64(256)
	if v := os.Getenv("NOX_BENCH_UPLOAD_MB"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			b.Fatalf("NOX_BENCH_UPLOAD_MB=%q: want a positive integer", v)
		}
		mb = n
	}
	return mb << 20
}

// writeBenchTree fills dir with total bytes of incompressible data in
// files of at most 32 MiB, in nested directories, writing through a small
// buffer so that generating does not grow the heap.
func writeBenchTree(b *testing.B, dir string, total int64) {
	rng := rand.NewChaCha8([32]byte{1})
	const fileSize = 32 << 20
	buf := make([]byte, 1<<20)
	for i := 0; total > 0; i++ {
		p := filepath.Join(dir, fmt.Sprintf("d%02d", i%8), fmt.Sprintf("sub%d", i%3), fmt.Sprintf("f%03d.bin", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriterSize(f, 1<<20)
		for n := min(total, fileSize); n > 0; {
			chunk := buf[:min(n, int64(len(buf)))]
			_, _ = rng.Read(chunk)
			if _, err := w.Write(chunk); err != nil {
				b.Fatal(err)
			}
			n -= int64(len(chunk))
			total -= int64(len(chunk))
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	if err := os.MkdirAll(filepath.Join(dir, "empty"), 0o755); err != nil {
		b.Fatal(err)
	}
}

// vmHWM returns the process's peak resident set size (VmHWM), or 0 where
// /proc is missing.
func vmHWM() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkUploadDir uploads a large directory (NOX_BENCH_UPLOAD_MB MiB,
// default 256) to a server that discards the body, in both ways UploadDir
// sends it: "chunked" to a backend advertising upload.chunked (streamed),
// and "spooled" to a plain v1 backend (a temporary file, then sent with a
// Content-Length, which the server checks). It reports the peak growth of
// the heap in use (sampled every 5ms) over the heap before the upload, and
// the process's peak RSS (VmHWM); run one mode per process to read the
// latter for it:
//
//	NOX_BENCH_UPLOAD_MB=1024 go test -run '^$' -bench 'UploadDir/spooled' -benchtime 1x ./sdk
//
// Memory must not grow with the size: the growth must stay under 64 MiB.
func BenchmarkUploadDir(b *testing.B) {
	total := benchUploadBytes(b)
	dir := b.TempDir()
	writeBenchTree(b, dir, total)
	for _, mode := range []string{"chunked", "spooled"} {
		b.Run(mode, func(b *testing.B) { benchUploadDir(b, dir, total, mode == "chunked") })
	}
}

// benchUploadDir is one mode of BenchmarkUploadDir.
func benchUploadDir(b *testing.B, dir string, total int64, chunked bool) {
	var received, length atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/v1/info") {
			if !chunked {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"apiVersion":"v1","backend":{"name":"bench","version":"0"},"extensions":["info","upload.chunked"]}`)
			return
		}
		n, _ := io.Copy(io.Discard, r.Body)
		received.Store(n)
		length.Store(r.ContentLength)
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	c, err := New(srv.URL+basePath, WithoutRetry())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.Capabilities(context.Background()); err != nil {
		b.Fatal(err)
	}

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
			}
		}
	}()

	b.SetBytes(total)
	b.ResetTimer()
	for range b.N {
		if _, err := c.UploadDir(context.Background(), "s", "/workspace", dir); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	close(stop)
	wg.Wait()

	growth := int64(peak.Load()) - int64(base)
	b.ReportMetric(float64(growth)/(1<<20), "peak-heap-growth-MiB")
	b.ReportMetric(float64(vmHWM())/(1<<20), "VmHWM-MiB")
	b.ReportMetric(float64(total)/(1<<20), "dir-MiB")
	if received.Load() < total {
		b.Errorf("server received %d bytes for %d bytes of files", received.Load(), total)
	}
	if got := length.Load(); chunked && got != -1 || !chunked && got != received.Load() {
		b.Errorf("Content-Length %d for a body of %d bytes (chunked %v)", got, received.Load(), chunked)
	}
	if growth > 64<<20 {
		b.Errorf("heap grew by %d MiB uploading %d MiB: UploadDir must not hold the archive in memory", growth>>20, total>>20)
	}
}
