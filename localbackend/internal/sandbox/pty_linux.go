package sandbox

// Pseudo-terminals: allocated by the init inside the sandbox (its own
// devpts) in the namespace tiers, by the server in the host tiers (the
// host's devpts, which Landlock keeps commands out of: the init, confined
// like them, could not open it).

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// defaultTerm is TERM for a command on a terminal whose environment does
// not name one.
const defaultTerm = "xterm-256color"

// ctrlD is the end-of-file character of a terminal whose VEOF is
// disabled.
const ctrlD = 0x04

// openPTY opens a new pseudo-terminal of the given size from /dev/ptmx and
// returns its master (opened with the extra flags, such as O_NONBLOCK)
// and its slave, both close-on-exec.
func openPTY(size WinSize, flags int) (master, slave int, err error) {
	master, err = unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|flags, 0)
	if err != nil {
		return -1, -1, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(master)
		return -1, -1, fmt.Errorf("unlock the terminal: %w", err)
	}
	if err := setWinSize(master, size); err != nil {
		unix.Close(master)
		return -1, -1, err
	}
	if slave, err = openSlave(master); err != nil {
		unix.Close(master)
		return -1, -1, err
	}
	return master, slave, nil
}

// openSlave opens the slave of master: with TIOCGPTPEER (Linux 4.13+),
// which needs no path, else by its name in /dev/pts.
func openSlave(master int) (int, error) {
	const flags = unix.O_RDWR | unix.O_NOCTTY | unix.O_CLOEXEC
	fd, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(master), unix.TIOCGPTPEER, flags)
	if e == 0 {
		return int(fd), nil
	}
	if e != unix.EINVAL && e != unix.ENOTTY {
		return -1, fmt.Errorf("open the terminal: %w", e)
	}
	n, err := unix.IoctlGetUint32(master, unix.TIOCGPTN)
	if err != nil {
		return -1, fmt.Errorf("terminal number: %w", err)
	}
	slave, err := unix.Open("/dev/pts/"+strconv.FormatUint(uint64(n), 10), flags, 0)
	if err != nil {
		return -1, fmt.Errorf("open the terminal: %w", err)
	}
	return slave, nil
}

// setWinSize sets the window size of the terminal of fd (its master:
// the slave's foreground process group gets SIGWINCH).
func setWinSize(fd int, size WinSize) error {
	ws := unix.Winsize{Row: size.Rows, Col: size.Cols}
	if err := unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &ws); err != nil {
		return fmt.Errorf("set the terminal's size: %w", err)
	}
	return nil
}

// eofChar returns the terminal's end-of-file character (VEOF), Ctrl-D
// when it is disabled. fd is its master.
func eofChar(fd int) byte {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil || t.Cc[unix.VEOF] == 0 {
		return ctrlD
	}
	return t.Cc[unix.VEOF]
}

// pollable returns a non-blocking copy of f, served by the runtime's
// poller (so that reads and writes can have deadlines and be interrupted
// by Close), and closes f. Files received with a message are blocking.
func pollable(f *os.File) (*os.File, error) {
	defer f.Close()
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set non-blocking: %w", err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// envHas reports whether env sets k (to anything, even empty).
func envHas(env []string, k string) bool {
	for _, kv := range env {
		if len(kv) > len(k) && kv[len(k)] == '=' && kv[:len(k)] == k {
			return true
		}
	}
	return false
}
