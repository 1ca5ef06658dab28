package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/noxrunner/nox/sdk"
)

// detachKey is the byte that detaches nox attach from a terminal: Ctrl-],
// as in telnet.
const detachKey = 0x1d

// errDetached ends a terminal session the user detached from.
var errDetached = errors.New("detached")

// runTerminal connects nox's standard streams to the remote terminal t
// until its process ends, the connection is lost, ctx ends, or (with
// detach) the user types Ctrl-]. When standard input is a terminal it is
// put in raw mode, so that every key (Ctrl-C, Ctrl-D, arrows) reaches the
// remote terminal as typed, and the remote terminal follows its size
// (SIGWINCH). Otherwise standard input is copied as it is, and its end
// types Ctrl-D. It returns the process's final record, or an error
// wrapping sdk.ErrTerminalLost, errDetached or ctx's error; t is closed.
func (a *app) runTerminal(ctx context.Context, t *sdk.Terminal, detach bool) (sdk.ProcessInfo, error) {
	defer t.Close()
	in, tty := a.stdin.(*os.File)
	tty = tty && term.IsTerminal(int(in.Fd()))
	if tty {
		fd := int(in.Fd())
		state, err := term.MakeRaw(fd)
		if err != nil {
			return sdk.ProcessInfo{}, fmt.Errorf("putting the terminal in raw mode: %w", err)
		}
		defer term.Restore(fd, state)
		stop := followSize(fd, t)
		defer stop()
	}

	output := make(chan error, 1)
	go func() {
		_, err := io.Copy(a.stdout, t)
		output <- err
	}()
	detached := make(chan struct{})
	go a.typeInput(t, tty && detach, detached)

	select {
	case <-output:
	case <-detached:
		return sdk.ProcessInfo{}, errDetached
	case <-ctx.Done():
		return sdk.ProcessInfo{}, ctx.Err()
	}
	return t.Wait()
}

// typeInput copies standard input to t until either ends; at the end of
// an input that is not a terminal it types end-of-file. With detach, a
// Ctrl-] typed ends the copy and closes detached instead.
func (a *app) typeInput(t *sdk.Terminal, detach bool, detached chan<- struct{}) {
	buf := make([]byte, 32<<10)
	for {
		n, err := a.stdin.Read(buf)
		if n > 0 {
			data := buf[:n]
			if i := bytes.IndexByte(data, detachKey); detach && i >= 0 {
				if i > 0 {
					_, _ = t.Write(data[:i])
				}
				close(detached)
				return
			}
			if _, err := t.Write(data); err != nil {
				return // the session is over
			}
		}
		if err != nil {
			if !detach {
				_ = t.CloseWrite()
			}
			return
		}
	}
}

// followSize sends the size of the terminal fd to t now and after every
// SIGWINCH, until the returned function is called.
func followSize(fd int, t *sdk.Terminal) (stop func()) {
	resize := func() {
		if cols, rows, err := term.GetSize(fd); err == nil && rows > 0 && cols > 0 {
			_ = t.Resize(rows, cols)
		}
	}
	resize()
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-winch:
				resize()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(winch)
		close(done)
	}
}
