//go:build unix

package proctable

import (
	"syscall"

	"github.com/noxrunner/nox/driver"
)

var signals = map[driver.Signal]syscall.Signal{
	driver.SIGTERM: syscall.SIGTERM, driver.SIGKILL: syscall.SIGKILL, driver.SIGINT: syscall.SIGINT,
	driver.SIGHUP: syscall.SIGHUP, driver.SIGQUIT: syscall.SIGQUIT, driver.SIGUSR1: syscall.SIGUSR1,
	driver.SIGUSR2: syscall.SIGUSR2, driver.SIGSTOP: syscall.SIGSTOP, driver.SIGCONT: syscall.SIGCONT,
	driver.SIGWINCH: syscall.SIGWINCH,
}

// SyscallSignal returns the signal named sig; false for a name the
// contract does not define.
func SyscallSignal(sig driver.Signal) (syscall.Signal, bool) {
	s, ok := signals[sig]
	return s, ok
}

// SignalName returns the contract's name of s, or the empty string for a
// signal it does not name (the record then has only the exit code).
func SignalName(s syscall.Signal) driver.Signal {
	for name, v := range signals {
		if v == s {
			return name
		}
	}
	switch s {
	case syscall.SIGSEGV:
		return "SEGV"
	case syscall.SIGABRT:
		return "ABRT"
	case syscall.SIGPIPE:
		return "PIPE"
	case syscall.SIGALRM:
		return "ALRM"
	case syscall.SIGBUS:
		return "BUS"
	case syscall.SIGFPE:
		return "FPE"
	case syscall.SIGILL:
		return "ILL"
	case syscall.SIGXCPU:
		return "XCPU"
	case syscall.SIGXFSZ:
		return "XFSZ"
	}
	return ""
}
