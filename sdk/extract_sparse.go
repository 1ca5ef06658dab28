package sdk

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// sparseBlock is the granularity at which runs of zeros become holes: the
// block size of common file systems.
const sparseBlock = 4 << 10

// copySparse copies exactly size bytes from r to the new, empty file f.
// Whole blocks of zeros are skipped with a seek instead of written, so
// they become holes on file systems that support them (as cp
// --sparse=auto does): a download of a mostly empty file takes the disk
// space of its data, not of its size. The content read back is the same.
func copySparse(f *os.File, r io.Reader, size int64) error {
	var zero [sparseBlock]byte
	buf := make([]byte, 64<<10)
	var off int64
	for off < size {
		n, err := io.ReadFull(r, buf[:min(int64(len(buf)), size-off)])
		if err := writeSparse(f, buf[:n], &zero); err != nil {
			return err
		}
		off += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return fmt.Errorf("archive truncated after %d of %d bytes: %w", off, size, io.ErrUnexpectedEOF)
		}
		if err != nil {
			return err
		}
	}
	// A file that ends in a hole gets its size from a truncate.
	return f.Truncate(size)
}

// writeSparse writes b at the current offset of f, which must be a
// multiple of sparseBlock, seeking over the whole blocks of zeros in it.
func writeSparse(f *os.File, b []byte, zero *[sparseBlock]byte) error {
	for len(b) > 0 {
		data := 0
		for data < len(b) && !isZeroBlock(b[data:], zero) {
			data += min(sparseBlock, len(b)-data)
		}
		if data > 0 {
			if _, err := f.Write(b[:data]); err != nil {
				return err
			}
			b = b[data:]
		}
		hole := 0
		for isZeroBlock(b[hole:], zero) {
			hole += sparseBlock
		}
		if hole > 0 {
			if _, err := f.Seek(int64(hole), io.SeekCurrent); err != nil {
				return err
			}
			b = b[hole:]
		}
	}
	return nil
}

// isZeroBlock reports whether b starts with a whole block of zeros.
func isZeroBlock(b []byte, zero *[sparseBlock]byte) bool {
	return len(b) >= sparseBlock && bytes.Equal(b[:sparseBlock], zero[:])
}
