package localbackend

import (
	"fmt"
	"io"
	"sync"
)

// watchedDownload is a download that ends when its sandbox is deleted or
// expires: a download does not keep a sandbox past its TTL.
type watchedDownload struct {
	io.ReadCloser
	s    *store
	b    *box
	once sync.Once
	mu   sync.Mutex
	cut  bool
}

// watchDownload registers rc, the download of sandbox id, to be cut when
// the sandbox is deleted or expires; cut, its reads fail.
func (s *store) watchDownload(id string, rc io.ReadCloser) io.ReadCloser {
	w := &watchedDownload{ReadCloser: rc, s: s}
	s.mu.Lock()
	b, ok := s.boxes[id]
	if ok && !b.deleting {
		w.b = b
		b.cuts[w] = w.stop
	}
	s.mu.Unlock()
	if !ok || w.b == nil {
		w.stop() // deleted meanwhile
	}
	return w
}

// stop cuts the download: its pipe is closed, so the producer stops too.
func (w *watchedDownload) stop() {
	w.mu.Lock()
	w.cut = true
	w.mu.Unlock()
	_ = w.ReadCloser.Close()
}

func (w *watchedDownload) Read(p []byte) (int, error) {
	n, err := w.ReadCloser.Read(p)
	if err != nil {
		w.mu.Lock()
		cut := w.cut
		w.mu.Unlock()
		if cut {
			return n, fmt.Errorf("download cut: the sandbox was deleted or expired: %w", ErrNotFound)
		}
	}
	return n, err
}

// Close ends the download and unregisters it.
func (w *watchedDownload) Close() error {
	w.once.Do(func() {
		if w.b != nil {
			w.s.mu.Lock()
			delete(w.b.cuts, w)
			w.s.mu.Unlock()
		}
	})
	return w.ReadCloser.Close()
}
