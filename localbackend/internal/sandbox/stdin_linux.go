package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// eofTimeout bounds CloseStdin's typing of the end-of-file character on
// a terminal whose input is full.
const eofTimeout = 5 * time.Second

// stdinPipe returns a pipe for a command's standard input: the read end a
// bare blocking descriptor for the init, the write end non-blocking in
// the server's poller, so that a write to a full pipe can have a
// deadline and be interrupted by Close.
func stdinPipe() (int, *os.File, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return -1, nil, fmt.Errorf("stdin pipe: %w", err)
	}
	if err := unix.SetNonblock(p[1], true); err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return -1, nil, fmt.Errorf("stdin pipe: %w", err)
	}
	return p[0], os.NewFile(uintptr(p[1]), "|1"), nil
}

// WriteStdin writes p to the command's standard input (its pipe, or its
// terminal: typed keys). It blocks while the pipe is full, until ctx
// ends; it returns the bytes written with ctx's error then. Concurrent
// writes are not interleaved. ErrNoStdin when the command has none, or
// no more: the pipe was closed, its reader is gone, the command ended.
func (c *Command) WriteStdin(ctx context.Context, p []byte) (int, error) {
	f := c.input()
	if f == nil {
		return 0, ErrNoStdin
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.tty && c.stdinClosed.Load() {
		return 0, ErrNoStdin
	}
	return writeInput(ctx, f, p)
}

// input is where WriteStdin writes: the terminal, the pipe, or nil.
func (c *Command) input() *os.File {
	if c.x.term != nil {
		return c.x.term
	}
	return c.x.stdin
}

// CloseStdin ends the command's standard input: it closes the pipe (its
// reader gets end-of-file; ErrNoStdin when there is none, or it was
// closed), or types the terminal's end-of-file character (VEOF, Ctrl-D),
// after the writes in progress, and leaves the terminal open.
func (c *Command) CloseStdin() error {
	if c.x.term != nil {
		return c.typeEOF()
	}
	if c.x.stdin == nil || !c.stdinClosed.CompareAndSwap(false, true) {
		return ErrNoStdin
	}
	if err := c.x.stdin.Close(); err != nil {
		if errors.Is(err, os.ErrClosed) {
			return ErrNoStdin
		}
		return fmt.Errorf("close stdin: %w", err)
	}
	return nil
}

// typeEOF writes the terminal's end-of-file character to it.
func (c *Command) typeEOF() error {
	eof := byte(ctrlD)
	if err := c.control(func(fd int) error { eof = eofChar(fd); return nil }); err != nil {
		return ErrNoStdin
	}
	ctx, cancel := context.WithTimeout(context.Background(), eofTimeout)
	defer cancel()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := writeInput(ctx, c.x.term, []byte{eof})
	return err
}
