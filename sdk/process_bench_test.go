package sdk

import (
	"context"
	"testing"
	"time"

	"github.com/noxrunner/nox/internal/testbackend"
)

// benchClient serves the reference backend with opts on loopback and
// returns a client of it and a sandbox.
func benchClient(b *testing.B, opts testbackend.Options) *Sandbox {
	b.Helper()
	f := testbackend.New(b, opts)
	c, err := New(testbackend.Serve(b, f))
	if err != nil {
		b.Fatal(err)
	}
	sb := c.Sandbox("bench")
	if _, err := sb.Create(b.Context(), CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	return sb
}

// BenchmarkProcessFirstByte measures the time from Start to the first
// byte of the process's output read with Output, through the SDK over
// loopback and the reference backend (which spawns a host process).
func BenchmarkProcessFirstByte(b *testing.B) {
	sb := benchClient(b, testbackend.Options{})
	ctx := b.Context()
	for b.Loop() {
		p, err := sb.Start(ctx, []string{"echo", "x"}, StartOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for ch, err := range p.Output(ctx, 0) {
			if err != nil {
				b.Fatal(err)
			}
			if len(ch.Data) > 0 {
				break
			}
		}
	}
}

// BenchmarkOutputReplay measures the throughput of replaying 16 MiB of
// a process's kept output with Output (SSE events decoded by the SDK).
func BenchmarkOutputReplay(b *testing.B) {
	const size = 16 << 20
	opts := testbackend.Options{}
	opts.Backend.Limits.ProcessOutputBytes = 2 * size
	sb := benchClient(b, opts)
	ctx, cancel := context.WithTimeout(b.Context(), time.Minute)
	defer cancel()
	p, err := sb.Start(ctx, []string{"sh", "-c", "head -c 16777216 /dev/zero | tr '\\0' a"}, StartOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := p.Wait(ctx); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	for b.Loop() {
		n := 0
		for ch, err := range p.Output(ctx, 0) {
			if err != nil {
				b.Fatal(err)
			}
			n += len(ch.Data)
		}
		if n != size {
			b.Fatalf("replayed %d bytes, want %d", n, size)
		}
	}
}
