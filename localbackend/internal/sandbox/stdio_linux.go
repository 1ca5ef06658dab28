package sandbox

// The init's side of a command's standard streams: /dev/null or a pipe
// as stdin, pipes as stdout and stderr, or a pseudo-terminal as all three
// (allocated here, inside the sandbox, or sent by the server).

import (
	"os"

	"golang.org/x/sys/unix"
)

// commandStdio is a command's standard streams as the init forks it.
type commandStdio struct {
	fds [3]uintptr // the command's fds 0, 1 and 2
	tty bool       // fd 0 is a terminal, to become the controlling one
	// master and slave of a terminal the init allocated, or -1: the
	// master goes to the server with "started"; both are closed after
	// the fork.
	master, slave int
}

// stdio returns the standard streams of exec request r from its stdio
// files (the first stdioFiles(r) of the request's).
func (z *zygote) stdio(r request, files []*os.File) (commandStdio, error) {
	st := commandStdio{master: -1, slave: -1, tty: r.TTY != nil}
	switch {
	case r.TTY != nil && r.Slave:
		fd := files[0].Fd()
		st.fds = [3]uintptr{fd, fd, fd}
	case r.TTY != nil:
		master, slave, err := openPTY(*r.TTY, 0)
		if err != nil {
			return st, err
		}
		st.master, st.slave = master, slave
		st.fds = [3]uintptr{uintptr(slave), uintptr(slave), uintptr(slave)}
	case r.Stdin:
		st.fds = [3]uintptr{files[0].Fd(), files[1].Fd(), files[2].Fd()}
	default:
		st.fds = [3]uintptr{z.devNull.Fd(), files[0].Fd(), files[1].Fd()}
	}
	return st, nil
}

// close closes the terminal the init allocated: the command has its own
// copy of the slave, the server of the master.
func (st *commandStdio) close() {
	for _, fd := range []int{st.master, st.slave} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// started answers "started" for command id, with the master of the
// terminal the init allocated for it (-1: none).
func (z *zygote) started(id uint64, pid, master int) {
	var fds []int
	if master >= 0 {
		fds = []int{master}
	}
	_ = sendRaw(z.fd, reply{Op: opStarted, ID: id, Pid: pid}, fds...)
}
