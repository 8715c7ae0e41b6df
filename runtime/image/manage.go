package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

// DefaultGCMinAge is Kubernetes' imageMinimumGCAge: an image used this
// recently is never collected, which also covers the moment between a pull
// and its container's start, when no container names the image yet.
const DefaultGCMinAge = 2 * time.Minute

// Info describes one unpacked image.
type Info struct {
	Digest string   // sha256:...
	Refs   []string // references recorded for it (pulled or imported), sorted
	Rootfs string
	// Size is the disk space the unpacked image takes, like du.
	Size int64
	// LastUsed is when a pull or import last resolved to it.
	LastUsed time.Time
}

// ErrNotFound: no image by that reference or digest.
var ErrNotFound = errors.New("image not found")

// ErrInUse: a container runs on the image.
var ErrInUse = errors.New("image in use")

// List returns the unpacked images, least recently used first.
func (s *Store) List() ([]Info, error) {
	entries, err := os.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	refs, err := s.refs()
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, e := range entries {
		if !e.IsDir() || !isHex(e.Name()) {
			continue
		}
		dir := filepath.Join(s.root, e.Name())
		if _, err := os.Stat(filepath.Join(dir, configFile)); err != nil {
			continue
		}
		fi, err := os.Stat(dir)
		if err != nil {
			continue // removed meanwhile
		}
		size, err := du(dir)
		if err != nil {
			return nil, fmt.Errorf("list images: size of %s: %w", e.Name(), err)
		}
		d := "sha256:" + e.Name()
		out = append(out, Info{Digest: d, Refs: refs[d], Rootfs: s.rootfs(e.Name()), Size: size, LastUsed: fi.ModTime()})
	}
	slices.SortFunc(out, func(a, b Info) int {
		if c := a.LastUsed.Compare(b.LastUsed); c != 0 {
			return c
		}
		return strings.Compare(a.Digest, b.Digest)
	})
	return out, nil
}

// refs maps each digest to the references recorded for it.
func (s *Store) refs() (map[string][]string, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, refsDir))
	if err != nil {
		return nil, fmt.Errorf("list image references: %w", err)
	}
	out := map[string][]string{}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(s.root, refsDir, e.Name()))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		// The reference itself is on the second line (written since
		// import); older records are named by it, with '/' as '+'.
		ref := strings.ReplaceAll(e.Name(), "+", "/")
		if len(lines) > 1 {
			ref = lines[1]
		}
		out[lines[0]] = append(out[lines[0]], ref)
	}
	for _, v := range out {
		slices.Sort(v)
	}
	return out, nil
}

// Remove deletes the image that ref (a reference or a digest) names, and
// every reference to it, unless its root filesystem is in inUse.
func (s *Store) Remove(ref string, inUse map[string]bool) (Info, error) {
	imgs, err := s.List()
	if err != nil {
		return Info{}, err
	}
	want := ref
	if r, err := name.ParseReference(ref); err == nil {
		want = r.Name()
	}
	for _, img := range imgs {
		if img.Digest != ref && strings.TrimPrefix(img.Digest, "sha256:") != ref && !slices.Contains(img.Refs, want) {
			continue
		}
		if inUse[img.Rootfs] {
			return Info{}, fmt.Errorf("remove image %s: %w by a container", ref, ErrInUse)
		}
		if err := s.remove(img, 0); err != nil {
			return Info{}, err
		}
		return img, nil
	}
	return Info{}, fmt.Errorf("remove image %s: %w", ref, ErrNotFound)
}

// remove deletes img unless a pull used it within minAge or is unpacking
// it. Its references go first, so a crash part-way leaves an image nothing
// names (collected later) and never a reference to a missing image; the
// directory is renamed to a temporary name, which NewStore sweeps, before
// it is deleted.
func (s *Store) remove(img Info, minAge time.Duration) error {
	hex := strings.TrimPrefix(img.Digest, "sha256:")
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, busy := s.inflight[hex]; busy {
		return fmt.Errorf("remove image %s: %w by a pull", img.Digest, ErrInUse)
	}
	dir := filepath.Join(s.root, hex)
	if minAge > 0 {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("remove image %s: %w", img.Digest, err)
		}
		if time.Since(fi.ModTime()) < minAge {
			return fmt.Errorf("remove image %s: %w (used %s ago)", img.Digest, ErrInUse, time.Since(fi.ModTime()).Round(time.Second))
		}
	}
	for _, ref := range img.Refs {
		if err := os.Remove(s.refFile(ref)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove image %s: reference %s: %w", img.Digest, ref, err)
		}
	}
	tmp := filepath.Join(s.root, tmpPrefix+"rm-"+hex)
	if err := os.Rename(dir, tmp); err != nil {
		return fmt.Errorf("remove image %s: %w", img.Digest, err)
	}
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("remove image %s: %w", img.Digest, err)
	}
	s.log.Info("removed image", "digest", img.Digest, "refs", img.Refs, "size", img.Size)
	return nil
}

// CollectImages removes images whose root filesystem is not in inUse,
// least recently used first and none used within the store's GC minimum
// age, until bytes are freed or none is left to remove, as the kubelet's
// image garbage collector does. It returns the bytes freed.
func (s *Store) CollectImages(ctx context.Context, bytes int64, inUse map[string]bool) (int64, error) {
	imgs, err := s.List()
	if err != nil {
		return 0, err
	}
	var freed int64
	var errs []error
	for _, img := range imgs {
		if freed >= bytes || ctx.Err() != nil {
			break
		}
		if inUse[img.Rootfs] {
			continue
		}
		if err := s.remove(img, s.gcMinAge); err != nil {
			if !errors.Is(err, ErrInUse) {
				errs = append(errs, err)
			}
			continue
		}
		freed += img.Size
	}
	return freed, errors.Join(errs...)
}

// touch marks image hex used now, for least-recently-used collection.
// Called with s.mu held, so a collection cannot remove an image between a
// pull resolving to it and the pull marking it.
func (s *Store) touch(hex string) {
	now := time.Now()
	if err := os.Chtimes(filepath.Join(s.root, hex), now, now); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("mark image used", "digest", "sha256:"+hex, "err", err)
	}
}

func isHex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// du sums the allocated size of the files under dir, hard links once.
func du(dir string) (int64, error) {
	var total int64
	seen := map[uint64]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			total += fi.Size()
			return nil
		}
		if st.Nlink > 1 && !fi.IsDir() {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		total += st.Blocks * 512
		return nil
	})
	return total, err
}
