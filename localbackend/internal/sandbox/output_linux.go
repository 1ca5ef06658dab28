package sandbox

import (
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// outputPipe returns a pipe for one output stream of a command: the read
// end non-blocking in the server's poller, the write end a bare blocking
// descriptor that is only passed to the init (as an *os.File it would be
// registered with the poller, and made blocking again to be sent).
func outputPipe() (*os.File, int, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, -1, err
	}
	if _, err := unix.FcntlInt(uintptr(p[0]), unix.F_SETFL, unix.O_NONBLOCK); err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return nil, -1, err
	}
	return os.NewFile(uintptr(p[0]), "|0"), p[1], nil
}

// drainBufs holds the copy buffers of drain: two per Exec would
// otherwise allocate 128 KiB per command.
var drainBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// drain copies r to w until EOF and closes r.
func drain(r *os.File, w io.Writer) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer r.Close()
		buf := drainBufs.Get().(*[]byte)
		defer drainBufs.Put(buf)
		// Hide *os.File's WriteTo, which would ignore buf and allocate.
		_, _ = io.CopyBuffer(w, struct{ io.Reader }{r}, *buf)
	}()
	return done
}

// detachableWriter forwards to w until detached, then discards: Exec's
// writers are never used after Exec returns.
type detachableWriter struct {
	mu       sync.Mutex
	w        io.Writer
	detached bool
}

func (d *detachableWriter) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.detached {
		return len(p), nil
	}
	if _, err := d.w.Write(p); err != nil {
		d.detached = true // a failing writer gets no more output
	}
	return len(p), nil
}

func (d *detachableWriter) detach() {
	d.mu.Lock()
	d.detached = true
	d.mu.Unlock()
}

// final writes p even when detached: a note of the runtime's own, before
// Exec returns.
func (d *detachableWriter) final(p string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, _ = io.WriteString(d.w, p)
}
