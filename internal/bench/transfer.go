package bench

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/noxrunner/nox/sdk"
)

// treeDir is where the generated tree is uploaded in the warm sandbox.
const treeDir = sdk.DefaultWorkdir + "/noxbench-tree"

// makeTree returns a plain tar of files files holding size bytes of
// incompressible (seeded pseudo-random) content in all, in ten
// directories. Plain tar, so that the client spends no time compressing.
func makeTree(files int, size int64) ([]byte, error) {
	files = max(files, 1)
	var buf bytes.Buffer
	buf.Grow(int(size) + files*1024)
	tw := tar.NewWriter(&buf)
	rng := rand.NewChaCha8([32]byte{'n', 'o', 'x'})
	each := size / int64(files)
	for i := range files {
		n := each
		if i == files-1 {
			n = size - each*int64(files-1)
		}
		hdr := &tar.Header{Name: fmt.Sprintf("d%02d/f%04d.bin", i%10, i), Mode: 0o644, Size: n,
			Typeflag: tar.TypeReg, ModTime: time.Unix(1e9, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := io.CopyN(tw, rng, n); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// tree returns the generated tree, making it once.
func (r *runner) tree() ([]byte, error) {
	if r.treeTar == nil {
		t, err := makeTree(r.cfg.TreeFiles, r.cfg.TreeBytes)
		if err != nil {
			return nil, fmt.Errorf("generating the tree: %w", err)
		}
		r.treeTar = t
	}
	return r.treeTar, nil
}

// upload uploads the generated tree to treeDir in sb.
func (r *runner) upload(ctx context.Context, sb *sdk.Sandbox) (time.Duration, int, error) {
	tree, err := r.tree()
	if err != nil {
		return 0, 0, err
	}
	return r.call(ctx, func(ctx context.Context) error {
		if _, err := sb.Upload(ctx, treeDir, bytes.NewReader(tree)); err != nil {
			return fmt.Errorf("uploading %s to %q: %w", Size(int64(len(tree))), sb.ID(), err)
		}
		return nil
	})
}

// uploadSection uploads the tree TransferRuns times.
func (r *runner) uploadSection(ctx context.Context, sb *sdk.Sandbox) error {
	r.progress("upload: %d files, %s, %d times", r.cfg.TreeFiles, Size(r.cfg.TreeBytes), r.cfg.TransferRuns)
	return r.transfer(ctx, "upload", func(ctx context.Context) (time.Duration, int, error) { return r.upload(ctx, sb) })
}

// downloadSection downloads the tree TransferRuns times, uploading it
// first (unmeasured) when the upload section did not run.
func (r *runner) downloadSection(ctx context.Context, sb *sdk.Sandbox) error {
	if !r.want(SectionUpload) {
		if _, _, err := r.upload(ctx, sb); err != nil {
			return err
		}
	}
	r.progress("download: %d files, %s, %d times", r.cfg.TreeFiles, Size(r.cfg.TreeBytes), r.cfg.TransferRuns)
	return r.transfer(ctx, "download", func(ctx context.Context) (time.Duration, int, error) {
		return r.call(ctx, func(ctx context.Context) error {
			rc, err := sb.Download(ctx, treeDir)
			if err != nil {
				return fmt.Errorf("downloading from %q: %w", sb.ID(), err)
			}
			defer rc.Close()
			n, err := io.Copy(io.Discard, rc)
			if err != nil {
				return fmt.Errorf("downloading from %q: %w", sb.ID(), err)
			}
			if n == 0 {
				return fmt.Errorf("downloading from %q: empty archive", sb.ID())
			}
			return nil
		})
	})
}

// transfer runs one TransferRuns times and adds its throughput.
func (r *runner) transfer(ctx context.Context, name string, one func(context.Context) (time.Duration, int, error)) error {
	t := Transfer{Name: name, Files: r.cfg.TreeFiles, Bytes: r.cfg.TreeBytes}
	var samples []time.Duration
	for range r.cfg.TransferRuns {
		d, retries, err := one(ctx)
		t.Retries += retries
		if err != nil {
			return err
		}
		samples = append(samples, d)
	}
	t.Latency = Summarize(samples)
	if t.Latency.P50Ms > 0 {
		t.MBps = float64(t.Bytes) / 1e6 / (t.Latency.P50Ms / 1000)
	}
	r.report.Transfers = append(r.report.Transfers, t)
	return nil
}
