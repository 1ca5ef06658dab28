package localbackend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"

	"golang.org/x/sys/unix"
)

// downloadBudget bounds one download archive: the apparent bytes of its
// files' contents (a sparse file counts at its full size, the size the
// client receives) and its entries. It counts what has been archived.
type downloadBudget struct {
	src                  string // the sandbox path downloaded, for messages
	maxBytes, maxEntries int64
	bytes, entries       int64
}

// overBytes is the error of a tree of n bytes (or more) of file contents.
func (b *downloadBudget) overBytes(n int64) error {
	return fmt.Errorf("src %q holds %d bytes of file contents (sparse files counted at their full size), over the download limit of %d bytes: %w", b.src, n, b.maxBytes, ErrTooLarge)
}

// overEntries is the error of a tree of more entries than the limit.
func (b *downloadBudget) overEntries() error {
	return fmt.Errorf("src %q holds more than %d entries, over the download limit of %d entries: %w", b.src, b.maxEntries, b.maxEntries, ErrTooLarge)
}

// add accounts for one more entry of size bytes of content while the
// archive is written: a tree that grew past a limit since checkDownload
// measured it is cut off there.
func (b *downloadBudget) add(size int64) error {
	b.entries++
	if b.entries > b.maxEntries {
		return b.overEntries()
	}
	b.bytes += size
	if b.bytes > b.maxBytes {
		return b.overBytes(b.bytes)
	}
	return nil
}

// checkDownload measures the tree at rel under root, as writeTar would
// archive it, against the limits of b, before anything is sent: it counts
// every entry and sums the sizes of regular files, following no link. Its
// cost is bounded by the entry limit: directories are read in batches and
// the walk stops once the entries exceed it.
func checkDownload(ctx context.Context, root *os.Root, rel string, b *downloadBudget) error {
	fi, err := root.Lstat(rel)
	if err != nil {
		return err
	}
	var entries, bytes int64
	if !fi.IsDir() {
		entries, bytes = 1, regularSize(fi.Mode(), fi.Size())
	} else if entries, bytes, err = measureTree(ctx, root, rel, b.maxEntries); err != nil {
		return err
	}
	switch {
	case entries > b.maxEntries:
		return b.overEntries()
	case bytes > b.maxBytes:
		return b.overBytes(bytes)
	}
	return nil
}

// measureTree counts the entries under the directory rel and sums the
// sizes of the regular files among them, stopping once the entries exceed
// maxEntries.
func measureTree(ctx context.Context, root *os.Root, rel string, maxEntries int64) (entries, bytes int64, err error) {
	dirs := []string{rel}
	for len(dirs) > 0 && entries <= maxEntries {
		if err := ctx.Err(); err != nil {
			return entries, bytes, err
		}
		dir := dirs[len(dirs)-1]
		dirs = dirs[:len(dirs)-1]
		var sub []string
		entries, bytes, sub, err = measureDir(root, dir, entries, bytes, maxEntries)
		if err != nil {
			return entries, bytes, err
		}
		dirs = append(dirs, sub...)
	}
	return entries, bytes, nil
}

// measureDir adds the entries of the directory dir to the counts and
// returns its subdirectories. A directory removed or replaced meanwhile
// counts as empty, as writeTar would skip it.
func measureDir(root *os.Root, dir string, entries, bytes, maxEntries int64) (int64, int64, []string, error) {
	f, err := root.OpenFile(dir, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_DIRECTORY, 0)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.ENOTDIR) {
		return entries, bytes, nil, nil
	}
	if err != nil {
		return entries, bytes, nil, err
	}
	defer f.Close()
	var sub []string
	for entries <= maxEntries {
		ents, err := f.ReadDir(256)
		for _, e := range ents {
			entries++
			switch {
			case e.IsDir():
				sub = append(sub, path.Join(dir, e.Name()))
			case e.Type().IsRegular():
				// fstatat on the directory's descriptor, link not followed.
				var st unix.Stat_t
				if unix.Fstatat(int(f.Fd()), e.Name(), &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
					bytes += st.Size
				}
			}
		}
		if errors.Is(err, io.EOF) || len(ents) == 0 {
			break
		}
		if err != nil {
			return entries, bytes, nil, err
		}
	}
	return entries, bytes, sub, nil
}

// regularSize is size for a regular file, else 0.
func regularSize(mode fs.FileMode, size int64) int64 {
	if mode.IsRegular() {
		return size
	}
	return 0
}

// zeroChunk is the size of the runs of zeros written for a file's holes.
const zeroChunk = 256 << 10

// copyData writes the first size bytes of the regular file f to w,
// reading only its data: the holes of a sparse file (found with SEEK_DATA
// and SEEK_HOLE) are written as zeros from memory, never read, so a file
// of a few data blocks and gigabytes of holes costs the reading of its
// data and the compression of zeros. Where the file system cannot tell
// holes, all of the file is read. A file that shrank meanwhile is padded
// with zeros to size; one that grew is cut at size.
func copyData(w io.Writer, f *os.File, size int64) error {
	zeros := make([]byte, zeroChunk)
	writeZeros := func(n int64) error {
		for n > 0 {
			k := min(n, zeroChunk)
			if _, err := w.Write(zeros[:k]); err != nil {
				return err
			}
			n -= k
		}
		return nil
	}
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		switch {
		case errors.Is(err, unix.ENXIO):
			data = size // only a hole (or nothing) from off on
		case err != nil:
			data = off // no hole detection here: read everything
		}
		data = min(data, size)
		if err := writeZeros(data - off); err != nil {
			return err
		}
		off = data
		if off >= size {
			break
		}
		hole, err := unix.Seek(fd, off, unix.SEEK_HOLE)
		if err != nil {
			hole = size
		}
		if hole <= off {
			hole = off + zeroChunk // raced with a change: read on
		}
		hole = min(hole, size)
		n, err := io.Copy(w, io.NewSectionReader(f, off, hole-off))
		off += n
		if err != nil {
			return err
		}
		if off < hole {
			// The file shrank while being read: pad to the announced size.
			return writeZeros(size - off)
		}
	}
	return nil
}
