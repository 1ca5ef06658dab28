package tarball

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"time"
)

// Header returns the header of the file, directory or symbolic link fi
// (link is a symbolic link's target) under name, a directory's with a
// trailing slash. It keeps the permission bits, size and modification time
// and drops what does not travel between machines: owners and their names,
// access and change times. The format is PAX.
func Header(fi fs.FileInfo, name, link string) (*tar.Header, error) {
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return nil, err
	}
	hdr.Name = name
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	hdr.Format = tar.FormatPAX
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	return hdr, nil
}

// AddFile writes the file, directory or symbolic link at p on the local
// file system, which fi describes, to tw under name (see Header), followed
// by a regular file's content. A symbolic link is stored as a link when fi
// comes from os.Lstat; from os.Stat, the file it points to is stored.
// Sockets, devices and fifos are skipped: nothing is written. A file that
// changes size while it is read is an error.
func AddFile(tw *tar.Writer, p, name string, fi fs.FileInfo) error {
	var link string
	switch {
	case fi.Mode().IsRegular(), fi.IsDir():
	case fi.Mode()&fs.ModeSymlink != 0:
		l, err := os.Readlink(p)
		if err != nil {
			return err
		}
		link = l
	default:
		return nil // socket, device, fifo: skipped
	}
	hdr, err := Header(fi, name, link)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(tw, f)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if n != hdr.Size {
		return fmt.Errorf("%s: file changed size while archiving", p)
	}
	return nil
}

// Entry is one archive entry held in memory.
type Entry struct {
	// Name is the entry's path in the archive ("dir/file.txt"; a trailing
	// slash is not needed for directories).
	Name string
	// Type is the tar type flag (tar.TypeReg when zero).
	Type byte
	// Mode holds the permission bits (0644 for files, 0755 for
	// directories when zero).
	Mode int64
	// Body is a regular file's content.
	Body []byte
	// Linkname is the target of a symlink or hardlink.
	Linkname string
	// Devmajor and Devminor are a device entry's numbers.
	Devmajor, Devminor int64
}

// WriteEntry writes e to tw, in the PAX format, with the modification time
// mtime. The entry is written as it is, unchecked: WriteEntry also builds
// the hostile archives that extractors are tested with.
func WriteEntry(tw *tar.Writer, e Entry, mtime time.Time) error {
	h := &tar.Header{Name: e.Name, Typeflag: e.Type, Mode: e.Mode, Linkname: e.Linkname, ModTime: mtime,
		Format: tar.FormatPAX, Devmajor: e.Devmajor, Devminor: e.Devminor}
	if h.Typeflag == 0 {
		h.Typeflag = tar.TypeReg
	}
	if h.Mode == 0 {
		h.Mode = 0o644
		if h.Typeflag == tar.TypeDir {
			h.Mode = 0o755
		}
	}
	if h.Typeflag == tar.TypeReg {
		h.Size = int64(len(e.Body))
	}
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("tar header %q: %w", e.Name, err)
	}
	if h.Typeflag == tar.TypeReg {
		if _, err := tw.Write(e.Body); err != nil {
			return fmt.Errorf("tar entry %q: %w", e.Name, err)
		}
	}
	return nil
}

// WriteFiles writes files, a map from slash-separated relative paths to
// contents, to tw in the order of their names: each file (mode 0644) after
// the parent directories (0755) not written yet, all modified at mtime.
// Every name must pass CleanName and not name the target directory itself;
// they are checked before anything is written, and a name that fails is an
// error wrapping the reason.
func WriteFiles(tw *tar.Writer, files map[string][]byte, mtime time.Time) error {
	clean := make(map[string]string, len(files))
	for name := range files {
		c, err := CleanName(name)
		if err != nil {
			return fmt.Errorf("file name %q: %w", name, err)
		}
		if c == "." {
			return fmt.Errorf("file name %q: names the target directory", name)
		}
		clean[name] = c
	}
	dirs := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		var parents []string
		for d := path.Dir(clean[name]); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			parents = append(parents, d)
		}
		for _, d := range slices.Backward(parents) {
			if err := WriteEntry(tw, Entry{Name: d + "/", Type: tar.TypeDir}, mtime); err != nil {
				return err
			}
		}
		if err := WriteEntry(tw, Entry{Name: clean[name], Body: files[name]}, mtime); err != nil {
			return err
		}
	}
	return nil
}
