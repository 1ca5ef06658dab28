package conformance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"
)

// largeFileSize is the size of the file fs/large-file round-trips (less
// when limits.maxUploadBytes is smaller).
const largeFileSize = 64 << 20

// pseudoRandom returns a reader of size deterministic pseudo-random bytes
// (the same for the same seed), generated as read, never held.
func pseudoRandom(seed uint64, size int64) io.Reader {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	return io.LimitReader(rand.NewChaCha8(key), size)
}

// digest is the sha256 of r, and how many bytes it gave.
func digest(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// mibPerSecond is the throughput of n bytes in d.
func mibPerSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / (1 << 20) / d.Seconds()
}

func checkFSLargeFile(ctx context.Context, env *Env) error {
	id, err := env.NewSandbox(ctx, "fs-large")
	if err != nil {
		return err
	}
	const p = "/workspace/large.bin"
	size := uploadCap(env, largeFileSize)
	seed := uint64(env.run.seq.Add(1))
	wantSum, _, err := digest(pseudoRandom(seed, size))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSuite, err)
	}
	start := time.Now()
	x, _, err := env.fsSend(ctx, fsReq{method: http.MethodPut, op: "file", id: id, query: pathQuery(p),
		header: http.Header{"Content-Type": {"application/octet-stream"}}, stream: pseudoRandom(seed, size), size: size})
	if err != nil {
		return err
	}
	wrote := time.Since(start)
	x.judge()
	if err := expectStatus(x, http.StatusCreated); err != nil {
		return fmt.Errorf("write of a %d-byte file: %w", size, err)
	}
	var errs []error
	if err := env.shOutput(ctx, id, "wc -c < "+p+" | tr -d ' '; sha256sum < "+p+" | cut -d' ' -f1",
		fmt.Sprintf("%d\n%s\n", size, wantSum), "size and sha256 of the large file, as a command sees them"); err != nil {
		errs = append(errs, err)
	}
	start = time.Now()
	rx, resp, err := env.fsSend(ctx, fsReq{method: http.MethodGet, op: "file", id: id, query: pathQuery(p), streamResponse: true})
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	rx.judge()
	if resp == nil {
		return errors.Join(append(errs, fmt.Errorf("read of the large file: %w", expectStatus(rx, http.StatusOK)))...)
	}
	defer resp.Body.Close()
	if err := expectStatus(rx, http.StatusOK); err != nil {
		return errors.Join(append(errs, fmt.Errorf("read of the large file: %w", err))...)
	}
	gotSum, n, err := digest(resp.Body)
	read := time.Since(start)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("read of the large file broke after %d bytes: %w\n%s", n, err, rx))
	case n != size || gotSum != wantSum:
		errs = append(errs, ownFinding(rx, aspectBody, fmt.Sprintf("%d bytes sha256 %s", n, gotSum), fmt.Sprintf("%d bytes sha256 %s", size, wantSum),
			fmt.Errorf("read of the large file: %d bytes sha256 %s, want the %d bytes written, sha256 %s\n%s", n, gotSum, size, wantSum, rx)))
	}
	env.Notef("%.1f MiB written in %s (%.0f MiB/s), read in %s (%.0f MiB/s), streamed both ways",
		float64(size)/(1<<20), wrote.Round(time.Millisecond), mibPerSecond(size, wrote), read.Round(time.Millisecond), mibPerSecond(size, read))
	return errors.Join(errs...)
}
