package localbackend

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// dirent is one entry of a directory as getdents64 reports it.
type dirent struct {
	name string
	typ  uint8 // unix.DT_*; DT_UNKNOWN when the file system does not say
}

// readDirents reads the next entries (about max, "." and ".." left out)
// of the directory fd, which must be open for reading; none at the end.
// Unlike os.File.ReadDir it never looks an entry up by a path when the
// file system does not give its type: the caller asks fstatat on fd.
func readDirents(fd int, max int) ([]dirent, error) {
	buf := make([]byte, max*32)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return nil, nil
		}
		var out []dirent
		for b := buf[:n]; len(b) >= 19; {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				break
			}
			name := b[19:reclen]
			for i, c := range name {
				if c == 0 {
					name = name[:i]
					break
				}
			}
			if s := string(name); s != "." && s != ".." {
				out = append(out, dirent{name: s, typ: b[18]})
			}
			b = b[reclen:]
		}
		if len(out) > 0 {
			return out, nil
		}
	}
}

// direntIsDir reports whether e of the directory fd is a directory (a
// link is not).
func direntIsDir(fd int, e dirent) bool {
	if e.typ != unix.DT_UNKNOWN {
		return e.typ == unix.DT_DIR
	}
	var st unix.Stat_t
	return unix.Fstatat(fd, e.name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
}
