package diskquota

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrUnsupported reports that per-sandbox images cannot work on this host.
var ErrUnsupported = errors.New("per-sandbox ext4 images unavailable")

// Images is the real Disks: ext4 file systems in sparse image files on
// loop devices.
type Images struct {
	mkfs string // path of mkfs.ext4
}

// Probe checks once that images work here: the process is root, the loop
// control device and mkfs.ext4 exist, and a trial image in dir (a
// directory on the host file system that will hold the images) can be
// created, mounted, written and removed. The error wraps ErrUnsupported.
func Probe(ctx context.Context, dir string) (*Images, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: the server is not root", ErrUnsupported)
	}
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	ctl.Close()
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		return nil, fmt.Errorf("%w: mkfs.ext4 not found (install e2fsprogs)", ErrUnsupported)
	}
	x := &Images{mkfs: mkfs}
	trial, err := os.MkdirTemp(dir, ".diskquota-probe-")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	defer os.RemoveAll(trial)
	img, mnt := filepath.Join(trial, "img"), filepath.Join(trial, "fs")
	if err := x.Create(ctx, img, mnt, 4<<20); err != nil {
		return nil, fmt.Errorf("%w: trial image: %v", ErrUnsupported, err)
	}
	werr := os.WriteFile(filepath.Join(mnt, "probe"), []byte("ok"), 0o600)
	uerr := x.Unmount(mnt)
	if err := errors.Join(werr, uerr); err != nil {
		return nil, fmt.Errorf("%w: trial image: %v", ErrUnsupported, err)
	}
	return x, nil
}

// Mechanism implements Disks.
func (x *Images) Mechanism() string { return "kernel quota: per-sandbox ext4 image" }

// Create implements Disks: a sparse file of size bytes, formatted without
// a journal and without reserved blocks, with Inodes(size) inodes, and
// mounted.
func (x *Images) Create(ctx context.Context, img, mnt string, size int64) (err error) {
	f, err := os.OpenFile(img, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create image: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(img)
		}
	}()
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("size image: %w", err)
	}
	// The image is a fresh sparse file: its inode tables read as zeros,
	// so neither mkfs nor the kernel (noinit_itable) needs to write them.
	cmd := exec.CommandContext(ctx, x.mkfs, "-q", "-F", "-O", "^has_journal", "-m", "0",
		"-N", strconv.FormatInt(Inodes(size), 10), "-E", "nodiscard,lazy_itable_init=1", img)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("mkfs.ext4: %w: %s", err, bytes.TrimSpace(out.Bytes()))
	}
	return x.mount(img, mnt, "noinit_itable")
}

// Mount implements Disks.
func (x *Images) Mount(_ context.Context, img, mnt string) error {
	if mounted(mnt) {
		return nil
	}
	return x.mount(img, mnt, "")
}

// mount attaches img to a free loop device (freed automatically once
// unmounted) and mounts it on mnt with nosuid, nodev and discard (deleted
// files give their blocks back to the host file system).
func (x *Images) mount(img, mnt, extra string) error {
	if err := os.MkdirAll(mnt, 0o711); err != nil {
		return fmt.Errorf("mount point: %w", err)
	}
	// A loop device may still back img: a lazily unmounted file system
	// that some mount namespace still holds, or one a server that died
	// left behind. Mounting that device again shares its file system;
	// a second loop device would mount a second, conflicting instance.
	dev := findLoop(img)
	if dev == nil {
		var err error
		if dev, err = attachLoop(img); err != nil {
			return err
		}
	}
	defer dev.Close() // the mount holds the device from now on
	opts := "discard,errors=remount-ro"
	if extra != "" {
		opts += "," + extra
	}
	if err := unix.Mount(dev.Name(), mnt, "ext4", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOATIME, opts); err != nil {
		return fmt.Errorf("mount image: %w", err)
	}
	return nil
}

// attachLoop binds img to a free loop device with LOOP_CONFIGURE and
// LO_FLAGS_AUTOCLEAR, and returns the open device. Another process may
// take the free device first (EBUSY): it then asks for another.
func attachLoop(img string) (*os.File, error) {
	f, err := os.OpenFile(img, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open image: %w", err)
	}
	defer f.Close()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("loop control: %w", err)
	}
	defer ctl.Close()
	var last error
	for range 20 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("free loop device: %w", err)
		}
		dev, err := openLoop(n)
		if err != nil {
			return nil, err
		}
		cfg := unix.LoopConfig{Fd: uint32(f.Fd())}
		cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
		copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], filepath.Base(img))
		err = unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
		if err == nil {
			return dev, nil
		}
		dev.Close()
		if !errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("configure loop device: %w", err)
		}
		last = err
	}
	return nil, fmt.Errorf("configure loop device: %w", last)
}

// findLoop returns the open loop device backed by img, or nil.
func findLoop(img string) *os.File {
	var st unix.Stat_t
	if err := unix.Stat(img, &st); err != nil {
		return nil
	}
	abs, err := filepath.Abs(img)
	if err != nil {
		return nil
	}
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, bf := range files {
		b, err := os.ReadFile(bf)
		if err != nil || strings.TrimSpace(string(b)) != abs {
			continue
		}
		name := "/dev/" + filepath.Base(filepath.Dir(filepath.Dir(bf)))
		dev, err := os.OpenFile(name, os.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		// The name may be reused by another file: check the inode.
		if info, err := unix.IoctlLoopGetStatus64(int(dev.Fd())); err == nil && info.Device == st.Dev && info.Inode == st.Ino {
			return dev
		}
		dev.Close()
	}
	return nil
}

// openLoop opens /dev/loop<n>, waiting briefly for a node the kernel just
// created to appear.
func openLoop(n int) (*os.File, error) {
	name := "/dev/loop" + strconv.Itoa(n)
	for i := 0; ; i++ {
		dev, err := os.OpenFile(name, os.O_RDWR|unix.O_CLOEXEC, 0)
		if err == nil || !errors.Is(err, os.ErrNotExist) || i == 50 {
			if err != nil {
				return nil, fmt.Errorf("open loop device: %w", err)
			}
			return dev, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Unmount implements Disks.
func (x *Images) Unmount(mnt string) error { return unmount(mnt) }

func unmount(mnt string) error {
	if !mounted(mnt) {
		return nil
	}
	if err := unix.Unmount(mnt, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount image: %w", err)
	}
	return nil
}

// mounted reports whether mnt is the root of a mount.
func mounted(mnt string) bool {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, mnt, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS, &st); err != nil {
		return false
	}
	return st.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && st.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0
}

// Mounted reports whether a file system is mounted on mnt, for callers
// about to remove a directory that may hold one.
func Mounted(mnt string) bool { return mounted(mnt) }
