package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"strings"
	"time"
)

// maxSymlinks bounds symlink expansion while resolving one path, so a link
// loop in a hostile layer fails instead of spinning. Linux allows 40; images
// never come close.
const maxSymlinks = 255

// unpack writes the tar stream r into the existing directory dir.
//
// Every filesystem call goes through an os.Root, which the kernel-backed
// implementation confines to dir even if a path is raced. On top of that,
// paths are resolved like a chroot would: absolute names and absolute symlink
// targets are taken relative to dir, and ".." stops at dir. That keeps images
// with links such as /var/run -> /run working while nothing can land outside.
//
// Names or hard-link targets that climb above the root fail the unpack, hard
// links to missing files are skipped (a whiteout can remove a link's target),
// and device nodes and fifos are skipped because the runtime supplies /dev.
func unpack(r io.Reader, dir string, log *slog.Logger) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	u := unpacker{root: root, log: log, chown: true}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read layer tar: %w", err)
		}
		if err := u.entry(hdr, tr); err != nil {
			return fmt.Errorf("unpack %q: %w", hdr.Name, err)
		}
	}
	return u.finishDirs()
}

type unpacker struct {
	root *os.Root
	log  *slog.Logger
	// chown is cleared after the first EPERM when not running as root, so
	// unprivileged tests still unpack (with their own uid) instead of failing.
	chown bool
	dirs  []dirMeta
}

// dirMeta is applied after all entries: a read-only directory must stay
// writable until its children exist, and adding children changes its mtime.
type dirMeta struct {
	name  string
	mode  fs.FileMode
	mtime time.Time
}

func (u *unpacker) entry(hdr *tar.Header, r io.Reader) error {
	if isSparse(hdr) {
		// archive/tar reads holes back as zeros, so a few bytes of archive
		// could fill the disk; image builders never write sparse entries.
		return errors.New("sparse files are not supported")
	}
	switch hdr.Typeflag {
	case tar.TypeDir, tar.TypeReg, tar.TypeSymlink, tar.TypeLink:
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		u.log.Debug("skip device node or fifo in image layer", "name", hdr.Name)
		return nil
	default:
		u.log.Debug("skip unsupported tar entry", "name", hdr.Name, "type", string(hdr.Typeflag))
		return nil
	}

	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	p, err := u.resolveParent(name)
	if err != nil {
		return err
	}
	mode := hdr.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)

	if hdr.Typeflag == tar.TypeDir {
		return u.dir(p, hdr, mode)
	}
	if p == "." {
		return errors.New("non-directory entry replaces the image root")
	}

	// A hard link's source is checked before anything at p is removed, so a
	// skipped link leaves the existing entry alone.
	var linkSrc string
	if hdr.Typeflag == tar.TypeLink {
		target, err := cleanName(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
		}
		if linkSrc, err = u.resolveParent(target); err != nil {
			return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
		}
		fi, err := u.root.Lstat(linkSrc)
		if errors.Is(err, fs.ErrNotExist) {
			u.log.Warn("skip hard link to a file not in the image", "name", hdr.Name, "target", hdr.Linkname)
			return nil
		}
		if err != nil {
			return err
		}
		if fi.IsDir() {
			return fmt.Errorf("hard link to directory %q", hdr.Linkname)
		}
		if linkSrc == p {
			return nil
		}
	}

	if err := u.makeParent(p); err != nil {
		return err
	}
	// Tar semantics: a later entry replaces whatever is at its path. Removing
	// first also means a symlink already at p is never followed.
	if err := u.root.RemoveAll(p); err != nil {
		return err
	}

	switch hdr.Typeflag {
	case tar.TypeSymlink:
		// Stored verbatim: an absolute target is correct inside the container
		// after pivot_root; on the host it is never followed because every
		// lookup here resolves links against the rootfs.
		if err := u.root.Symlink(hdr.Linkname, p); err != nil {
			return err
		}
		return u.lchown(p, hdr)
	case tar.TypeLink:
		return u.root.Link(linkSrc, p)
	default:
		return u.file(p, hdr, mode, r)
	}
}

func (u *unpacker) dir(p string, hdr *tar.Header, mode fs.FileMode) error {
	fi, err := u.root.Lstat(p)
	switch {
	case err == nil && fi.IsDir():
	case err == nil:
		if err := u.root.Remove(p); err != nil {
			return err
		}
		fallthrough
	case errors.Is(err, fs.ErrNotExist):
		if err := u.makeParent(p); err != nil {
			return err
		}
		if err := u.root.Mkdir(p, 0o700); err != nil {
			return err
		}
	default:
		return err
	}
	if err := u.lchown(p, hdr); err != nil {
		return err
	}
	u.dirs = append(u.dirs, dirMeta{name: p, mode: mode, mtime: hdr.ModTime})
	return nil
}

func (u *unpacker) file(p string, hdr *tar.Header, mode fs.FileMode, r io.Reader) error {
	f, err := u.root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if err == nil && u.chown {
		err = u.chownErr(f.Chown(hdr.Uid, hdr.Gid))
	}
	// After chown, which clears setuid and setgid.
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if !hdr.ModTime.IsZero() {
		// Best effort: the file's contents are already right.
		if err := u.root.Chtimes(p, hdr.ModTime, hdr.ModTime); err != nil {
			u.log.Debug("set mtime", "name", hdr.Name, "err", err)
		}
	}
	return nil
}

func (u *unpacker) lchown(p string, hdr *tar.Header) error {
	if !u.chown {
		return nil
	}
	return u.chownErr(u.root.Lchown(p, hdr.Uid, hdr.Gid))
}

func (u *unpacker) chownErr(err error) error {
	if err != nil && errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0 {
		u.chown = false
		u.log.Debug("not root: unpacked files keep the current owner")
		return nil
	}
	return err
}

// finishDirs applies directory modes and times last, children first, so that
// creating children neither needs write permission nor bumps a restored mtime.
func (u *unpacker) finishDirs() error {
	for i := len(u.dirs) - 1; i >= 0; i-- {
		d := u.dirs[i]
		// A later entry may have replaced the directory; Chmod would follow a
		// symlink there (inside the root, but onto the wrong file).
		fi, err := u.root.Lstat(d.name)
		if err != nil || !fi.IsDir() {
			continue
		}
		if err := u.root.Chmod(d.name, d.mode); err != nil {
			return fmt.Errorf("chmod %q: %w", d.name, err)
		}
		if !d.mtime.IsZero() {
			_ = u.root.Chtimes(d.name, d.mtime, d.mtime) // best effort
		}
	}
	return nil
}

func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// makeParent creates p's missing parent directories. p's existing parents are
// already symlink-free (resolveParent), so MkdirAll cannot be redirected.
func (u *unpacker) makeParent(p string) error {
	dir := path.Dir(p)
	if dir == "." {
		return nil
	}
	return u.root.MkdirAll(dir, 0o755)
}

// cleanName turns an archive path into a clean path relative to the root:
// "/abs" and "./abs" both mean "abs", as GNU tar and container runtimes read
// them; a path climbing above the root is an error.
func cleanName(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty name")
	}
	if strings.ContainsRune(name, 0) {
		return "", errors.New("name contains NUL")
	}
	rel := strings.TrimLeft(name, "/")
	if rel == "" {
		return ".", nil
	}
	clean := path.Clean(rel)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("%q: %w", name, errUnsafePath)
	}
	return clean, nil
}

// resolveParent resolves every symlink in name's directory part as if the
// root were "/" and returns the resulting root-relative path. The last
// element is left alone: entries replace it, they never write through it.
func (u *unpacker) resolveParent(name string) (string, error) {
	if name == "." {
		return ".", nil
	}
	dir, base := path.Split(name)
	rdir, err := u.resolve(dir)
	if err != nil {
		return "", err
	}
	return path.Join(rdir, base), nil
}

// resolve follows symlinks through p, clamping ".." and absolute targets to
// the root, like securejoin or chroot path lookup.
func (u *unpacker) resolve(p string) (string, error) {
	var done []string
	todo := strings.Split(p, "/")
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		cur := path.Join(append(done, c)...)
		fi, err := u.root.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			done = append(done, c)
			continue
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = append(done, c)
			continue
		}
		if links++; links > maxSymlinks {
			return "", fmt.Errorf("resolve %q: too many levels of symbolic links", p)
		}
		target, err := u.root.Readlink(cur)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			done = done[:0]
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	if len(done) == 0 {
		return ".", nil
	}
	return path.Join(done...), nil
}
