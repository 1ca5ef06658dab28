package conformance

import (
	"archive/tar"
	"bytes"
	"io"
	"testing"
)

// TestStreamTar checks a streamed archive is a valid tar of the declared
// size holding the files.
func TestStreamTar(t *testing.T) {
	files := []streamedFile{{"small.txt", 5, 's'}, {"big.bin", 512*3 + 7, 'b'}, {"empty", 0, 'e'}, {"exact", 1024, 'x'}}
	size, open, err := streamTar(files)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // each reader is new
		b, err := io.ReadAll(open())
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) != size {
			t.Fatalf("archive has %d bytes, size says %d", len(b), size)
		}
		tr := tar.NewReader(bytes.NewReader(b))
		for _, f := range files {
			h, err := tr.Next()
			if err != nil {
				t.Fatalf("entry %s: %v", f.name, err)
			}
			body, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if h.Name != f.name || !bytes.Equal(body, bytes.Repeat([]byte{f.fill}, int(f.size))) {
				t.Errorf("entry %q with %d bytes, want %q with %d bytes of %q", h.Name, len(body), f.name, f.size, f.fill)
			}
		}
		if _, err := tr.Next(); err != io.EOF {
			t.Errorf("after the files: %v, want io.EOF", err)
		}
	}
}
