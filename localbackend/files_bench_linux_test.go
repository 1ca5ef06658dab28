package localbackend

import (
	"archive/tar"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// vmStatus returns a field of /proc/self/status (VmRSS, VmHWM) in bytes.
func vmStatus(field string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// resetPeakRSS makes VmHWM start again from the current RSS.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// patternReader yields n bytes of a repeating pattern without holding them.
type patternReader struct{ n int64 }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	k := int(min(int64(len(p)), r.n))
	for i := range k {
		p[i] = byte(i*7 + 1)
	}
	r.n -= int64(k)
	return k, nil
}

// BenchmarkFilesLargeFile writes a 1 GiB file through the files API over
// HTTP (streamed, no Content-Length), reads it back, and for comparison
// uploads the same bytes as an uncompressed tar. It reports the
// throughputs, the write's over the upload's, and the peak RSS growth of
// the process (server and client together) during the write and read.
//
//	go test -run '^$' -bench BenchmarkFilesLargeFile -benchtime 1x ./localbackend
func BenchmarkFilesLargeFile(b *testing.B) {
	const size = 1 << 30
	e := benchEnv(b)
	e.createB(b, "big")
	client := &http.Client{}
	send := func(method, url, ctype string, body io.Reader) time.Duration {
		req, _ := http.NewRequest(method, e.url+url, body)
		req.Header.Set("Content-Type", ctype)
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			b.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, msg)
		}
		return time.Since(t0)
	}
	mbps := func(d time.Duration) float64 { return float64(size) / (1 << 20) / d.Seconds() }
	for b.Loop() {
		base := vmStatus("VmRSS")
		resetPeakRSS()
		write := send("PUT", fsURL("big", "file", "/workspace/big.bin"), "application/octet-stream", &patternReader{n: size})
		t0 := time.Now()
		resp, err := client.Get(e.url + fsURL("big", "file", "/workspace/big.bin"))
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != size {
			b.Fatalf("read %d bytes: %v", n, err)
		}
		read := time.Since(t0)
		peak := vmStatus("VmHWM") - base
		b.StopTimer()
		send("POST", "/v1/sandboxes/big/fs/remove", "application/json", strings.NewReader(`{"path":"/workspace/big.bin"}`))
		pr, pw := io.Pipe()
		go func() {
			tw := tar.NewWriter(pw)
			_ = tw.WriteHeader(&tar.Header{Name: "up.bin", Mode: 0o644, Size: size - 4096, Typeflag: tar.TypeReg}) // the archive within the 1 GiB upload limit
			_, _ = io.Copy(tw, &patternReader{n: size - 4096})
			pw.CloseWithError(tw.Close())
		}()
		upload := send("POST", "/v1/sandboxes/big/files/upload?dest=/workspace/up", "application/x-tar", pr)
		send("POST", "/v1/sandboxes/big/fs/remove", "application/json", strings.NewReader(`{"path":"/workspace/up","recursive":true}`))
		b.StartTimer()
		b.ReportMetric(mbps(write), "write-MB/s")
		b.ReportMetric(mbps(read), "read-MB/s")
		b.ReportMetric(mbps(upload), "tar-upload-MB/s")
		b.ReportMetric(upload.Seconds()/write.Seconds(), "write/upload")
		b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-growth-MiB")
	}
}

// BenchmarkFilesSmallWrite times 4 KiB writes through the files API over
// HTTP (p50, p99), each an atomic replace of the same file.
//
//	go test -run '^$' -bench BenchmarkFilesSmallWrite ./localbackend
func BenchmarkFilesSmallWrite(b *testing.B) {
	e := benchEnv(b)
	e.createB(b, "small")
	client := &http.Client{}
	data := strings.Repeat("x", 4096)
	url := e.url + fsURL("small", "file", "/workspace/small.txt")
	var l latencies
	for b.Loop() {
		req, _ := http.NewRequest("PUT", url, strings.NewReader(data))
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		l = append(l, time.Since(t0))
		if resp.StatusCode/100 != 2 {
			b.Fatalf("write: %d", resp.StatusCode)
		}
	}
	l.report(b, "")
}
