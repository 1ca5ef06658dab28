package sdk

import "fmt"

// Default caps of the extraction functions (ExtractTarGz, ExtractTar,
// DownloadTo), applied where ExtractOptions leaves a field zero. They match
// the local backend's default download limits, so a download that a
// default nox server answers is never refused by a default client.
const (
	// DefaultExtractMaxBytes is the most bytes of file contents one
	// extraction writes: 1 GiB.
	DefaultExtractMaxBytes = 1 << 30
	// DefaultExtractMaxEntries is the most archive entries (files,
	// directories and links) one extraction accepts: 100000.
	DefaultExtractMaxEntries = 100_000
)

// Unlimited, as ExtractOptions.MaxBytes or MaxEntries, lifts that cap.
const Unlimited = -1

// ExtractOptions bounds an extraction. The zero value applies the default
// caps (DefaultExtractMaxBytes, DefaultExtractMaxEntries); Unlimited (any
// negative value) lifts a cap. An archive over a cap fails with an error
// wrapping ErrTooLarge, and the extraction removes what it created.
type ExtractOptions struct {
	// MaxBytes caps the bytes of file contents extracted, counted at each
	// file's full size as its header announces it (zeros included, even
	// where they are written as holes). An entry that would go over the
	// cap is refused before any of its bytes is written, so at most
	// MaxBytes of file contents reach the disk.
	MaxBytes int64
	// MaxEntries caps the number of archive entries: files, directories
	// and links.
	MaxEntries int64
}

// extractLimits is ExtractOptions with the defaults applied; a negative
// field is no cap.
type extractLimits struct {
	maxBytes, maxEntries int64
}

func (o ExtractOptions) limits() extractLimits {
	l := extractLimits{maxBytes: o.MaxBytes, maxEntries: o.MaxEntries}
	if l.maxBytes == 0 {
		l.maxBytes = DefaultExtractMaxBytes
	}
	if l.maxEntries == 0 {
		l.maxEntries = DefaultExtractMaxEntries
	}
	return l
}

// budget counts what an extraction has accepted against its limits.
type budget struct {
	lim            extractLimits
	bytes, entries int64
}

// entry accounts for one more archive entry.
func (b *budget) entry(name string) error {
	b.entries++
	if b.lim.maxEntries >= 0 && b.entries > b.lim.maxEntries {
		return fmt.Errorf("extract %q: the archive holds more than %d entries (ExtractOptions.MaxEntries): %w", name, b.lim.maxEntries, ErrTooLarge)
	}
	return nil
}

// content accounts for size more bytes of file contents, before they are
// written.
func (b *budget) content(name string, size int64) error {
	if size < 0 {
		return fmt.Errorf("extract %q: negative size %d: %w", name, size, ErrUnsafeArchive)
	}
	b.bytes += size
	if b.lim.maxBytes >= 0 && (b.bytes > b.lim.maxBytes || b.bytes < 0) {
		return fmt.Errorf("extract %q: the archive holds more than %d bytes of file contents (ExtractOptions.MaxBytes): %w", name, b.lim.maxBytes, ErrTooLarge)
	}
	return nil
}
