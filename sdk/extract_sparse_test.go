package sdk

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestCopySparse: whatever runs of zeros and data a file holds, the copy
// reads back the same.
func TestCopySparse(t *testing.T) {
	t.Parallel()
	data := func(n int) []byte { return bytes.Repeat([]byte{'d'}, n) }
	zero := func(n int) []byte { return make([]byte, n) }
	cases := map[string][]byte{
		"empty":               nil,
		"short data":          data(10),
		"short zeros":         zero(10),
		"zeros only":          zero(3*sparseBlock + 1),
		"hole then data":      append(zero(5*sparseBlock), data(7)...),
		"data then hole":      append(data(sparseBlock+3), zero(70<<10)...),
		"unaligned zero runs": append(append(data(100), zero(2*sparseBlock+50)...), data(1)...),
		"large mixed":         append(append(zero(200<<10), data(130<<10)...), zero(100<<10)...),
	}
	for name, want := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(t.TempDir(), "f")
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := copySparse(f, bytes.NewReader(want), int64(len(want))); err != nil {
				t.Fatal(err)
			}
			f.Close()
			got, _ := os.ReadFile(p)
			if !bytes.Equal(got, want) {
				t.Errorf("read back %d bytes, differing from the %d written", len(got), len(want))
			}
		})
	}
	t.Run("truncated", func(t *testing.T) {
		f, _ := os.Create(filepath.Join(t.TempDir(), "f"))
		defer f.Close()
		if err := copySparse(f, bytes.NewReader(data(10)), 20); err == nil {
			t.Error("a short entry copied without error")
		}
	})
}
