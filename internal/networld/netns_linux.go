package networld

import (
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// netns is a network namespace kept alive by an open file of it.
type netns struct {
	f    *os.File
	path string // /proc/PID/fd/N: any process of the host can open it
}

// newNetns creates a network namespace with lo up and the IPv4 prefixes
// addrs on it (lo:1, lo:2, ...: on the loopback a prefix makes every
// address in it local). The work is done on a locked thread that goes
// back to its namespace afterwards, or, failing that, ends with its
// goroutine.
func newNetns(addrs []netip.Prefix) (netns, error) {
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		f, err, back := buildOnThread(addrs)
		if back {
			runtime.UnlockOSThread()
		}
		ch <- result{f, err}
	}()
	r := <-ch
	if r.err != nil {
		return netns{}, r.err
	}
	return netns{f: r.f, path: "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/" + strconv.Itoa(int(r.f.Fd()))}, nil
}

// buildOnThread makes the namespace on the locked current thread and
// returns a file of it; back reports whether the thread is home again.
func buildOnThread(addrs []netip.Prefix) (_ *os.File, _ error, back bool) {
	home, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, fmt.Errorf("network namespace: %w", err), true
	}
	defer home.Close()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("new network namespace: %w", os.NewSyscallError("unshare", err)), true
	}
	f, err := os.Open("/proc/thread-self/ns/net")
	if err == nil {
		err = configure(addrs)
	}
	if serr := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); serr != nil {
		if f != nil {
			f.Close()
		}
		return nil, fmt.Errorf("back from the new network namespace: %w", os.NewSyscallError("setns", serr)), false
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		return nil, err, true
	}
	return f, nil, true
}

// configure brings lo up and adds addrs on it, in the current thread's
// namespace.
func configure(addrs []netip.Prefix) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	ifr.SetUint16(unix.IFF_UP | unix.IFF_RUNNING)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	for i, p := range addrs {
		label := "lo:" + strconv.Itoa(i+1)
		if err := setInet4(fd, label, unix.SIOCSIFADDR, p.Addr()); err != nil {
			return fmt.Errorf("address %s: %w", p, err)
		}
		mask := netip.AddrFrom4([4]byte(net4Mask(p.Bits())))
		if err := setInet4(fd, label, unix.SIOCSIFNETMASK, mask); err != nil {
			return fmt.Errorf("netmask of %s: %w", p, err)
		}
	}
	return nil
}

// setInet4 sets an IPv4 address of interface name with ioctl req.
func setInet4(fd int, name string, req uint, a netip.Addr) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := ifr.SetInet4Addr(a.AsSlice()); err != nil {
		return err
	}
	return unix.IoctlIfreq(fd, req, ifr)
}

// net4Mask is the IPv4 netmask of a prefix length.
func net4Mask(bits int) []byte {
	m := ^uint32(0) << (32 - bits)
	return []byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}
}

func (n netns) close() error {
	if n.f == nil {
		return nil
	}
	return n.f.Close()
}
