package api

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
)

// ErrBadMode reports a mode that is not octal permission bits between 0
// and 07777.
var ErrBadMode = errors.New("not an octal mode between 0000 and 07777")

// FormatMode writes the permission bits of m with setuid, setgid and
// sticky in octal, as chmod(1) reads them and the contract's FileInfo.mode
// carries them: "0644", "04755".
func FormatMode(m fs.FileMode) string {
	return fmt.Sprintf("0%03o", ModeBits(m))
}

// ParseMode reads octal permission bits ("644", "0644", "04755") into an
// fs.FileMode with fs.ModeSetuid, fs.ModeSetgid and fs.ModeSticky; other
// input is an error wrapping ErrBadMode.
func ParseMode(s string) (fs.FileMode, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 || s == "" || s[0] == '+' {
		return 0, fmt.Errorf("%q: %w", s, ErrBadMode)
	}
	return ModeFromBits(uint32(v)), nil
}

// ModeBits is m's permission bits with setuid (04000), setgid (02000)
// and sticky (01000), as chmod(2) and stat(2) number them.
func ModeBits(m fs.FileMode) uint32 {
	v := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return v
}

// ModeFromBits is the fs.FileMode of the permission, setuid, setgid and
// sticky bits of v (numbered as ModeBits numbers them); other bits of v
// are ignored.
func ModeFromBits(v uint32) fs.FileMode {
	m := fs.FileMode(v & 0o777)
	if v&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if v&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if v&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}
