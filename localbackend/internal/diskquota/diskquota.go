// Package diskquota gives each sandbox a file system of its own whose size
// is its storage limit: an ext4 file system in a sparse image file,
// attached to a loop device and mounted. The kernel then enforces the
// limit on bytes and inodes (writes beyond it fail with ENOSPC) at no cost
// while idle.
//
// Images is the real mechanism (root, /dev/loop-control and mkfs.ext4
// needed; Probe checks them); Fake is its test double, which makes plain
// directories and enforces nothing.
package diskquota

import "context"

// Disks creates, mounts and unmounts per-sandbox file systems. img is the
// host path of the image file and mnt the directory it is mounted on;
// both are chosen by the caller.
type Disks interface {
	// Create makes a file system of size bytes in the new file img and
	// mounts it on mnt (created when missing). A failed Create leaves
	// neither the mount nor the image.
	Create(ctx context.Context, img, mnt string, size int64) error
	// Mount mounts the existing image img on mnt, unless a file system is
	// mounted there already (a server that crashed left it behind).
	Mount(ctx context.Context, img, mnt string) error
	// Unmount lazily unmounts whatever is mounted on mnt; nothing mounted
	// there is no error. The loop device is freed once the last user is
	// gone.
	Unmount(mnt string) error
	// Mechanism describes the mechanism for GET /v1/info.
	Mechanism() string
}

// InodeRatio is the number of bytes of storage limit per inode of an
// image's file system: one inode per 16 KiB (the ratio of the sandbox's
// /tmp tmpfs), at least MinInodes. A sandbox of 512Mi can thus hold
// 32768 files, directories and links.
const InodeRatio = 16 << 10

// MinInodes is the smallest inode count of an image's file system.
const MinInodes = 1024

// Inodes returns the inode count of the file system of a size-byte image.
func Inodes(size int64) int64 { return max(size/InodeRatio, MinInodes) }

var _ Disks = (*Images)(nil)
