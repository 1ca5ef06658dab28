package sandbox

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// seccompData encodes struct seccomp_data for the BPF VM of x/net/bpf,
// which loads words in network byte order: each 32-bit word the filter
// loads is stored big-endian at the offset the kernel would have it.
func seccompData(auditArch uint32, nr uint32, args ...uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[0:], nr)
	binary.BigEndian.PutUint32(b[4:], auditArch)
	little := binary.NativeEndian.Uint16([]byte{1, 0}) == 1
	for i, a := range args {
		lo, hi := 16+8*i, 16+8*i+4
		if !little {
			lo, hi = hi, lo
		}
		binary.BigEndian.PutUint32(b[lo:], uint32(a))
		binary.BigEndian.PutUint32(b[hi:], uint32(a>>32))
	}
	return b
}

// TestSeccompProgram runs the assembled filter on syscalls of the native
// architecture, of another one (i386, arm), of the x32 ABI, and on
// socket families.
func TestSeccompProgram(t *testing.T) {
	prog, err := seccompProgram()
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	native, err := arch.GetInfo("")
	if err != nil {
		t.Fatal(err)
	}
	const (
		allow  = unix.SECCOMP_RET_ALLOW
		eperm  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
		enosys = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
		eafno  = unix.SECCOMP_RET_ERRNO | uint32(unix.EAFNOSUPPORT)
	)
	id := uint32(native.ID)
	cases := []struct {
		name string
		data []byte
		want uint32
	}{
		{"getpid", seccompData(id, unix.SYS_GETPID), allow},
		{"unshare", seccompData(id, unix.SYS_UNSHARE, unix.CLONE_NEWUSER), eperm},
		{"clone with CLONE_NEWUSER", seccompData(id, unix.SYS_CLONE, unix.CLONE_NEWUSER), eperm},
		{"clone of a thread", seccompData(id, unix.SYS_CLONE, unix.CLONE_VM|unix.CLONE_THREAD), allow},
		{"i386 getpid", seccompData(uint32(arch.I386.ID), 20), enosys},
		{"i386 unshare", seccompData(uint32(arch.I386.ID), 310, unix.CLONE_NEWUSER), enosys},
		{"arm getpid", seccompData(uint32(arch.ARM.ID), 20), enosys},
		{"socket AF_UNIX", seccompData(id, unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_STREAM), allow},
		{"socket AF_INET", seccompData(id, unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_STREAM), allow},
		{"socket AF_INET6", seccompData(id, unix.SYS_SOCKET, unix.AF_INET6, unix.SOCK_DGRAM), allow},
		{"socket AF_NETLINK", seccompData(id, unix.SYS_SOCKET, unix.AF_NETLINK, unix.SOCK_RAW), allow},
		{"socket AF_VSOCK", seccompData(id, unix.SYS_SOCKET, unix.AF_VSOCK, unix.SOCK_STREAM), eafno},
		{"socket AF_PACKET", seccompData(id, unix.SYS_SOCKET, unix.AF_PACKET, unix.SOCK_RAW), eafno},
		{"socket AF_ALG", seccompData(id, unix.SYS_SOCKET, unix.AF_ALG, unix.SOCK_SEQPACKET), eafno},
		{"socket AF_KEY", seccompData(id, unix.SYS_SOCKET, unix.AF_KEY, unix.SOCK_RAW), eafno},
		{"socket AF_UNIX in the high bits", seccompData(id, unix.SYS_SOCKET, 1<<32|unix.AF_UNIX, unix.SOCK_STREAM), eafno},
		{"socketpair AF_UNIX", seccompData(id, unix.SYS_SOCKETPAIR, unix.AF_UNIX, unix.SOCK_STREAM), allow},
		{"socketpair AF_VSOCK", seccompData(id, unix.SYS_SOCKETPAIR, unix.AF_VSOCK, unix.SOCK_STREAM), eafno},
	}
	if native.ID == arch.X86_64.ID {
		cases = append(cases,
			struct {
				name string
				data []byte
				want uint32
			}{"x32 getpid", seccompData(id, x32SyscallBit|unix.SYS_GETPID), enosys},
			struct {
				name string
				data []byte
				want uint32
			}{"x32 unshare", seccompData(id, x32SyscallBit|272, unix.CLONE_NEWUSER), enosys},
		)
	}
	for _, tc := range cases {
		got, err := vm.Run(tc.data)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if uint32(got) != tc.want {
			t.Errorf("%s: filter returns %#x, want %#x", tc.name, uint32(got), tc.want)
		}
	}
}

// int80Unshare is a static x86_64 ELF executable that calls unshare
// (CLONE_NEWUSER) through the 32-bit entry (int 0x80, i386 syscall 310)
// and exits with the negated result: 0 when it succeeded, the errno
// otherwise (ENOSYS from the filter); SIGSEGV when the kernel has no
// 32-bit emulation.
func int80Unshare() []byte {
	code := []byte{
		0xb8, 0x36, 0x01, 0x00, 0x00, // mov eax, 310 (i386 unshare)
		0xbb, 0x00, 0x00, 0x00, 0x10, // mov ebx, CLONE_NEWUSER
		0xcd, 0x80, // int 0x80
		0xf7, 0xd8, // neg eax
		0x89, 0xc7, // mov edi, eax
		0xb8, 0x3c, 0x00, 0x00, 0x00, // mov eax, 60 (exit)
		0x0f, 0x05, // syscall
	}
	const base, ehsize, phsize = 0x400000, 64, 56
	b := make([]byte, ehsize+phsize, ehsize+phsize+len(code))
	le := binary.LittleEndian
	copy(b, []byte{0x7f, 'E', 'L', 'F', 2, 1, 1})
	le.PutUint16(b[16:], 2)    // ET_EXEC
	le.PutUint16(b[18:], 0x3e) // EM_X86_64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[24:], base+ehsize+phsize) // entry
	le.PutUint64(b[32:], ehsize)             // phoff
	le.PutUint16(b[52:], ehsize)
	le.PutUint16(b[54:], phsize)
	le.PutUint16(b[56:], 1) // phnum
	ph := b[ehsize:]
	le.PutUint32(ph[0:], 1) // PT_LOAD
	le.PutUint32(ph[4:], 5) // R+X
	le.PutUint64(ph[16:], base)
	le.PutUint64(ph[24:], base)
	size := uint64(ehsize + phsize + len(code))
	le.PutUint64(ph[32:], size)
	le.PutUint64(ph[40:], size)
	le.PutUint64(ph[48:], 0x1000)
	return append(b, code...)
}

// TestSeccompInSandbox: inside a real sandbox, sockets of other families
// than unix, inet, inet6 and netlink fail with EAFNOSUPPORT, and a
// syscall through the 32-bit entry is refused (ENOSYS) where the kernel
// has 32-bit emulation.
func TestSeccompInSandbox(t *testing.T) {
	for _, tier := range []Tier{TierNamespaces, TierLandlock} {
		t.Run(string(tier), func(t *testing.T) {
			t.Parallel()
			m := newManager(t, tier)
			s, ws := start(t, m, key("seccomp"), Limits{})
			sock := `for $f (@ARGV) { ($d, $t) = split /:/, $f; print "$d:", (socket(S, $d, $t, 0) ? "ok" : ($!+0)), "\n"; close S }`
			fams := []struct {
				domain, typ int
				want        string
			}{
				{unix.AF_UNIX, unix.SOCK_STREAM, "ok"},
				{unix.AF_INET, unix.SOCK_DGRAM, "ok"},
				{unix.AF_INET6, unix.SOCK_DGRAM, "ok"},
				{unix.AF_NETLINK, unix.SOCK_RAW, "ok"},
				{unix.AF_VSOCK, unix.SOCK_STREAM, strconv.Itoa(int(unix.EAFNOSUPPORT))},
				{unix.AF_PACKET, unix.SOCK_DGRAM, strconv.Itoa(int(unix.EAFNOSUPPORT))},
				{unix.AF_ALG, unix.SOCK_SEQPACKET, strconv.Itoa(int(unix.EAFNOSUPPORT))},
				{unix.AF_KEY, unix.SOCK_RAW, strconv.Itoa(int(unix.EAFNOSUPPORT))},
			}
			argv := []string{"perl", "-e", sock}
			var want strings.Builder
			for _, f := range fams {
				argv = append(argv, strconv.Itoa(f.domain)+":"+strconv.Itoa(f.typ))
				want.WriteString(strconv.Itoa(f.domain) + ":" + f.want + "\n")
			}
			if r := run(t, s, 10*time.Second, argv...); r.stdout != want.String() {
				t.Errorf("socket families:\n%s\nwant:\n%s", r.stdout, want.String())
			}
			if r := run(t, s, 10*time.Second, "perl", "-MSocket", "-e", `socketpair(A, B, 40, SOCK_STREAM, 0) ? print "ok\n" : print $!+0, "\n"`); r.stdout != strconv.Itoa(int(unix.EAFNOSUPPORT))+"\n" {
				t.Errorf("socketpair AF_VSOCK: %v", r)
			}

			if runtime.GOARCH != "amd64" {
				return
			}
			bin := filepath.Join(ws, "int80")
			if err := os.WriteFile(bin, int80Unshare(), 0o755); err != nil {
				t.Fatal(err)
			}
			uid, gid := s.HostOwner()
			if err := os.Chown(bin, uid, gid); err != nil && isRoot() {
				t.Fatal(err)
			}
			r := run(t, s, 10*time.Second, "./int80")
			switch r.ExitCode {
			case 128 + int(unix.SIGSEGV):
				t.Log("no 32-bit emulation in this kernel: int 0x80 faults")
			case int(unix.ENOSYS):
			default:
				t.Errorf("unshare through int 0x80: exit %d (0: it succeeded), want ENOSYS (%d): %v", r.ExitCode, unix.ENOSYS, r)
			}
		})
	}
}
