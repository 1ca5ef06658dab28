package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// The server and a sandbox's init talk over a SOCK_SEQPACKET socketpair
// (fd 3 of the init): one JSON message per packet, file descriptors as
// SCM_RIGHTS. The server sends "config" once, then "exec", "kill" and
// "signal"; the init answers "ready" once, then per command "exited" or
// "failed" (after "started" when the request asked for it), and
// "signalled" per "signal", "dialed" per "dial" (with the connected
// socket) and "listened" per "listen" (with the bound socket).

// Hidden argv[1] values that turn the re-executed binary into a helper.
const (
	initArg  = "__nox_sandbox_init__"
	probeArg = "__nox_sandbox_probe__"
)

// initMode says how the init builds its environment.
type initMode string

const (
	modeUserNS initMode = "userns" // TierNamespaces
	modeRootNS initMode = "rootns" // TierRootNamespaces
	modeHost   initMode = "host"   // TierLandlock, TierNoneUnsafe
)

// initConfig is the "config" message.
type initConfig struct {
	Mode      initMode
	Workspace string // host path
	RootFS    string // host path of Spec.RootFS, "" for the host's system dirs
	Hostname  string
	TmpBytes  int64
	TmpInodes int64
	// Uid/Gid to switch to (modeRootNS, modeHost as root); -1 = keep.
	Uid, Gid   int
	Rlimits    []rlimit
	ProcRlimit uint64 // RLIMIT_NPROC for each command (0 = none)
	Seccomp    bool
	Landlock   bool   // modeHost: restrict the init itself with Landlock
	TmpDir     string // modeHost: host directory standing in for /tmp
	// TmpHost is Spec.Tmp for the namespace modes: mounted at /tmp
	// (from the detached tree TmpFD when there is one) instead of a tmpfs.
	TmpHost string
	TmpFD   int
	// tmpTree is the file of TmpFD, set by the init.
	tmpTree *os.File
	// Indexes of the files that came with the config message (-1: none):
	// the init's own cgroup task file (to move the forker back), and
	// detached mount trees (open_tree clones made by a root server) of the
	// workspace and of RootFS. The init cannot bind a path it cannot reach,
	// nor an fd of the server's mount namespace; it can attach these.
	HomeFD, WorkspaceFD, RootFSFD int
	// v1 with a memory limit: the task files of the memory cgroup of the
	// commands and of the init's own, visited by the forking thread too.
	MemEnterFD, MemHomeFD int
	// The task file of the commands' parent cgroup (cmds), where the init
	// creates its cgroup namespace (-1: no cgroups; then where it is).
	CmdsFD int
	// Generated /etc/passwd and /etc/group that name the sandbox user,
	// bound read-only over the host's when the root is made of the host's
	// system directories; "": keep the host's.
	Passwd, Group string
}

type rlimit struct {
	Resource int
	Cur, Max uint64
}

// request is a message from the server.
//
// The files of an "exec" request are, in order, the command's standard
// streams (stdout and stderr; stdin, stdout and stderr with Stdin; the
// terminal with Slave; none when the init allocates the terminal), then
// the command cgroup's task file with Cgroup (stdioFiles counts the
// first).
type request struct {
	Op     string // "config", "exec", "kill", "signal", "dial", "listen"
	ID     uint64
	Config *initConfig `json:",omitempty"`
	Argv   []string    `json:",omitempty"`
	Env    []string    `json:",omitempty"`
	Dir    string      `json:",omitempty"`
	// Cgroup: the last fd is the command cgroup's task file.
	Cgroup bool `json:",omitempty"`
	// Stdin: the command's standard input is a pipe that comes first.
	Stdin bool `json:",omitempty"`
	// TTY runs the command on a new pseudo-terminal of this size: the
	// init allocates it (and sends its master with "started"), unless
	// Slave says that it came with the request (the host tiers, where
	// the server allocates it).
	TTY   *WinSize `json:",omitempty"`
	Slave bool     `json:",omitempty"`
	// Notify asks for a "started" reply once the command runs.
	Notify bool `json:",omitempty"`
	// "signal": send Signal to the process group of the command of exec
	// request Target, if it is still registered.
	Target uint64 `json:",omitempty"`
	Signal int    `json:",omitempty"`
	// "dial": connect to this TCP port of the sandbox's loopback.
	Port int `json:",omitempty"`
	// "listen": bind a socket of Network ("tcp" or "udp") at Addr (a
	// netip.AddrPort) in the sandbox's network namespace.
	Network string `json:",omitempty"`
	Addr    string `json:",omitempty"`
}

// stdioFiles is the number of an exec request's files that are the
// command's standard streams.
func stdioFiles(r request) int {
	switch {
	case r.TTY != nil && r.Slave:
		return 1
	case r.TTY != nil:
		return 0
	case r.Stdin:
		return 3
	}
	return 2
}

// The replies to a command besides "exited" and "failed", and to a
// signal.
const (
	opStarted   = "started"   // the command runs; the terminal's master comes with it
	opSignalled = "signalled" // a "signal" request was handled; Err says why it failed
	opDialed    = "dialed"    // a "dial" request was handled: the socket comes with it, or Err says why not
	opListened  = "listened"  // a "listen" request was handled: the socket comes with it, or Err (and Errno) say why not
)

// carriesFiles reports whether a reply of op hands its files to the
// request's waiter (a terminal's master, a socket); the files of other
// replies are closed on arrival.
func carriesFiles(op string) bool {
	return op == opStarted || op == opDialed || op == opListened
}

// reply is a message from the init.
type reply struct {
	Op     string // "ready", "started", "exited", "failed", "signalled", "dialed", "listened"
	ID     uint64
	Pid    int    `json:",omitempty"`
	Status int    `json:",omitempty"` // raw wait status for "exited"
	Code   int    `json:",omitempty"` // "failed": 126, 127, codeNoWorkdir, or 0 (infrastructure)
	Err    string `json:",omitempty"`
	Notes  []string
	// Refused: a "dial" found nothing listening on the port.
	Refused bool `json:",omitempty"`
	// Errno of the step of a "listen" that failed (Err names the step).
	Errno int `json:",omitempty"`
	// files came with the reply (the server's side): the receiver owns
	// them.
	files []*os.File
}

// codeNoWorkdir in a "failed" reply means ExecSpec.Dir does not exist.
const codeNoWorkdir = -1

// maxPacket bounds one message (argv + env of one command).
const maxPacket = 4 << 20

func sendMsg(c *net.UnixConn, v any, fds ...int) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode message: %w", err)
	}
	if len(b) > maxPacket {
		return fmt.Errorf("message of %d bytes exceeds %d: argv and env are too large", len(b), maxPacket)
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := c.WriteMsgUnix(b, oob, nil); err != nil {
		return fmt.Errorf("send to sandbox init: %w", err)
	}
	return nil
}

// recvMsg reads one message and the fds that came with it (close-on-exec).
func recvMsg(c *net.UnixConn, buf, oob []byte, v any) ([]*os.File, error) {
	n, oobn, flags, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, err
	}
	var files []*os.File
	if oobn > 0 {
		cms, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, fmt.Errorf("parse control message: %w", err)
		}
		for _, cm := range cms {
			fds, err := unix.ParseUnixRights(&cm)
			if err != nil {
				continue
			}
			for _, fd := range fds {
				files = append(files, os.NewFile(uintptr(fd), "fd"))
			}
		}
	}
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		closeAll()
		return nil, fmt.Errorf("message truncated")
	}
	if err := json.Unmarshal(buf[:n], v); err != nil {
		closeAll()
		return nil, fmt.Errorf("decode message: %w", err)
	}
	return files, nil
}

// errBadMessage is a message that could not be decoded (skipped).
var errBadMessage = errors.New("bad message")

// sendRaw and recvRaw are sendMsg and recvMsg on a blocking fd, for the
// init's main thread.
func sendRaw(fd int, v any, fds ...int) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode message: %w", err)
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	for {
		err = unix.Sendmsg(fd, b, oob, nil, 0)
		if err != unix.EINTR {
			return err
		}
	}
}

func recvRaw(fd int, buf, oob []byte, v any) ([]*os.File, error) {
	n, oobn, flags, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if n == 0 && oobn == 0 {
		return nil, io.EOF
	}
	files, err := parseRights(oob[:oobn])
	if err == nil && flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		err = errBadMessage
	}
	if err == nil {
		if jerr := json.Unmarshal(buf[:n], v); jerr != nil {
			err = errBadMessage
		}
	}
	if err != nil {
		closeFiles(files)
		return nil, err
	}
	return files, nil
}

func parseRights(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	cms, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, errBadMessage
	}
	var files []*os.File
	for _, cm := range cms {
		fds, err := unix.ParseUnixRights(&cm)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "fd"))
		}
	}
	return files, nil
}

// socketpair returns a connected SOCK_SEQPACKET pair: ours as a
// *net.UnixConn (non-blocking, in the poller) and the init's as a file.
func socketpair() (*net.UnixConn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	for _, fd := range fds {
		// Big argv/env; SNDBUFFORCE works as root, SNDBUF is capped otherwise.
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, maxPacket+65536) != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, maxPacket+65536)
		}
	}
	f := os.NewFile(uintptr(fds[0]), "ctrl")
	defer f.Close()
	fc, err := net.FileConn(f)
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return fc.(*net.UnixConn), os.NewFile(uintptr(fds[1]), "ctrl-init"), nil
}

// closeFiles closes the files that came with a message.
func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}
