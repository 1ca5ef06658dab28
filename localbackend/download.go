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

// depthPerEntry bounds how deeply a download's entries may nest, on
// average: archiving resolves every entry's path one component at a time,
// so a tree's cost grows with the sum of its entries' depths (the square
// of its depth for a chain of directories), which must stay within
// depthPerEntry times the entry limit.
const depthPerEntry = 32

// treeSize is what checkDownload measured of a tree.
type treeSize struct {
	entries int64 // files, directories, links and others
	bytes   int64 // apparent bytes of the regular files
	depths  int64 // the sum of the entries' depths (1 for a child of src)
}

// checkDownload measures the tree at rel under root, as writeTar would
// archive it, against the limits of b, before anything is sent: it counts
// every entry and sums the sizes of regular files, following no link. Its
// cost is bounded by the entry limit: directories are read in batches and
// the walk stops once the entries, or the sum of their depths, exceed
// what the limit allows.
func checkDownload(ctx context.Context, root *os.Root, rel string, b *downloadBudget) error {
	fi, err := root.Lstat(rel)
	if err != nil {
		return err
	}
	maxDepths := b.maxEntries * depthPerEntry
	t := treeSize{entries: 1, bytes: regularSize(fi.Mode(), fi.Size()), depths: 1}
	if fi.IsDir() {
		if t, err = measureTree(ctx, root, rel, b.maxEntries, maxDepths); err != nil {
			return err
		}
	}
	switch {
	case t.entries > b.maxEntries:
		return b.overEntries()
	case t.depths > maxDepths:
		return fmt.Errorf("src %q nests its entries too deeply to be archived: their depths add up to more than %d (%d per entry of the download limit of %d entries): %w", b.src, maxDepths, depthPerEntry, b.maxEntries, ErrTooLarge)
	case t.bytes > b.maxBytes:
		return b.overBytes(t.bytes)
	}
	return nil
}

// measureTree measures the tree under the directory rel, stopping once
// its entries exceed maxEntries or their depths add up to more than
// maxDepths.
func measureTree(ctx context.Context, root *os.Root, rel string, maxEntries, maxDepths int64) (treeSize, error) {
	type dir struct {
		name  string
		depth int64
	}
	var t treeSize
	dirs := []dir{{rel, 0}}
	for len(dirs) > 0 && t.entries <= maxEntries && t.depths <= maxDepths {
		if err := ctx.Err(); err != nil {
			return t, err
		}
		d := dirs[len(dirs)-1]
		dirs = dirs[:len(dirs)-1]
		for _, sub := range measureDir(root, d.name, d.depth+1, &t, maxEntries) {
			dirs = append(dirs, dir{sub, d.depth + 1})
		}
	}
	return t, nil
}

// measureDir adds the entries of the directory dir, at depth, to t and
// returns its subdirectories. A directory that cannot be read (removed or
// replaced meanwhile, or unreadable) counts for what could be read of it:
// writeTar skips it or reports its error as before.
func measureDir(root *os.Root, dir string, depth int64, t *treeSize, maxEntries int64) []string {
	f, err := root.OpenFile(dir, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	var sub []string
	for t.entries <= maxEntries {
		ents, err := f.ReadDir(256)
		for _, e := range ents {
			t.entries++
			t.depths += depth
			switch {
			case e.IsDir():
				sub = append(sub, path.Join(dir, e.Name()))
			case e.Type().IsRegular():
				// fstatat on the directory's descriptor, link not followed.
				var st unix.Stat_t
				if unix.Fstatat(int(f.Fd()), e.Name(), &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
					t.bytes += st.Size
				}
			}
		}
		if err != nil || len(ents) == 0 {
			break // io.EOF, or unreadable from here on
		}
	}
	return sub
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
