package image

import (
	"archive/tar"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/miniku/miniku/runtime/image/imagetest"
)

type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func mustStore(tb testing.TB, root, mirror string) *Store {
	tb.Helper()
	s, err := NewStore(root, Options{Mirror: mirror, Logger: testLogger(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func mustPull(tb testing.TB, s *Store, ref string) Image {
	tb.Helper()
	img, err := s.Pull(context.Background(), ref)
	if err != nil {
		tb.Fatalf("pull %s: %v", ref, err)
	}
	return img
}

// storeEntries lists the store root, without the refs directory, so tests can
// assert that nothing half-unpacked is left behind.
func storeEntries(tb testing.TB, root string) []string {
	tb.Helper()
	entries, err := os.ReadDir(root)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.Name() != refsDir {
			names = append(names, e.Name())
		}
	}
	return names
}

func TestPullAlpineThroughMirror(t *testing.T) {
	t.Parallel()
	addr := imagetest.Registry(t)
	root := t.TempDir()
	s := mustStore(t, root, "http://"+addr)

	img := mustPull(t, s, "alpine")

	if img.Ref != "index.docker.io/library/alpine:latest" {
		t.Errorf("Ref = %q", img.Ref)
	}
	if !strings.HasPrefix(img.Digest, "sha256:") || len(img.Digest) != len("sha256:")+64 {
		t.Errorf("Digest = %q", img.Digest)
	}
	if want := filepath.Join(root, strings.TrimPrefix(img.Digest, "sha256:"), "rootfs"); img.Rootfs != want {
		t.Errorf("Rootfs = %q, want %q", img.Rootfs, want)
	}
	if !slices.Equal(img.Config.Cmd, []string{"sh"}) || !slices.Equal(img.Config.Env, []string{imagetest.BusyboxPATH}) {
		t.Errorf("Config = %+v", img.Config)
	}

	fi, err := os.Lstat(filepath.Join(img.Rootfs, "bin", "busybox"))
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o755 {
		t.Fatalf("bin/busybox: %v %v", fi, err)
	}
	if !fi.ModTime().Equal(imagetest.Epoch) {
		t.Errorf("bin/busybox mtime = %v, want %v", fi.ModTime(), imagetest.Epoch)
	}
	if target, err := os.Readlink(filepath.Join(img.Rootfs, "bin", "sh")); err != nil || target != "busybox" {
		t.Errorf("bin/sh -> %q, %v; want busybox", target, err)
	}
	for dir, mode := range map[string]fs.FileMode{"tmp": 0o777 | fs.ModeSticky, "root": 0o700, "proc": 0o755} {
		fi, err := os.Lstat(filepath.Join(img.Rootfs, dir))
		if err != nil || !fi.IsDir() || fi.Mode()&^fs.ModeDir != mode {
			t.Errorf("%s: mode %v err %v, want %v", dir, fi.Mode(), err, mode)
		}
	}
	out, err := exec.Command(filepath.Join(img.Rootfs, "bin", "sh"), "-c", "echo ok").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Errorf("run unpacked sh: %q %v", out, err)
	}
	if got := storeEntries(t, root); !slices.Equal(got, []string{filepath.Base(filepath.Dir(img.Rootfs))}) {
		t.Errorf("store root holds %v, want only the image", got)
	}
}

func TestPullAgainDoesNotUnpack(t *testing.T) {
	t.Parallel()
	addr := imagetest.Registry(t)
	s := mustStore(t, t.TempDir(), "http://"+addr)
	first := mustPull(t, s, "alpine")
	before, err := os.Stat(first.Rootfs)
	if err != nil {
		t.Fatal(err)
	}

	second := mustPull(t, s, "docker.io/library/alpine:latest")

	if !equalImage(second, first) {
		t.Errorf("second pull = %+v, want %+v", second, first)
	}
	if n := s.unpacks.Load(); n != 1 {
		t.Errorf("unpacked %d times, want 1", n)
	}
	// Same digest, so a fresh Store on the same root must reuse it too.
	s2 := mustStore(t, filepath.Dir(filepath.Dir(first.Rootfs)), "http://"+addr)
	mustPull(t, s2, "busybox")
	if n := s2.unpacks.Load(); n != 0 {
		t.Errorf("new store unpacked %d times, want 0", n)
	}
	after, err := os.Stat(first.Rootfs)
	if err != nil || !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("rootfs changed: %v %v", after, err)
	}
}

func TestConcurrentPullsUnpackOnce(t *testing.T) {
	t.Parallel()
	addr := imagetest.Registry(t)
	s := mustStore(t, t.TempDir(), "http://"+addr)

	const n = 8
	imgs := make([]Image, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { imgs[i], errs[i] = s.Pull(context.Background(), "alpine") })
	}
	wg.Wait()

	for i := range n {
		if errs[i] != nil {
			t.Fatalf("pull %d: %v", i, errs[i])
		}
		if !equalImage(imgs[i], imgs[0]) {
			t.Errorf("pull %d = %+v, want %+v", i, imgs[i], imgs[0])
		}
	}
	if got := s.unpacks.Load(); got != 1 {
		t.Errorf("unpacked %d times, want 1", got)
	}
}

func equalImage(a, b Image) bool {
	return a.Ref == b.Ref && a.Digest == b.Digest && a.Rootfs == b.Rootfs &&
		slices.Equal(a.Config.Cmd, b.Config.Cmd) && slices.Equal(a.Config.Env, b.Config.Env)
}

func TestPullMissingImage(t *testing.T) {
	t.Parallel()
	addr := imagetest.Registry(t)
	root := t.TempDir()
	s := mustStore(t, root, "http://"+addr)

	_, err := s.Pull(context.Background(), "nope")

	if !errors.Is(err, ErrImagePull) {
		t.Fatalf("err = %v, want ErrImagePull", err)
	}
	t.Log(err)
	msg := err.Error()
	if !strings.HasPrefix(msg, "ErrImagePull: pull index.docker.io/library/nope:latest: ") || !strings.Contains(msg, "UNKNOWN") {
		t.Errorf("unclear message %q", msg)
	}
	if got := storeEntries(t, root); len(got) != 0 {
		t.Errorf("store root holds %v after a failed pull", got)
	}

	if _, err := s.Pull(context.Background(), "Not A Ref"); !errors.Is(err, ErrImagePull) {
		t.Errorf("invalid reference: err = %v, want ErrImagePull", err)
	}
}

func TestPullFromOwnRegistryIgnoresMirror(t *testing.T) {
	t.Parallel()
	addr := imagetest.Registry(t)
	// The mirror is dead: only docker.io references may go there.
	s := mustStore(t, t.TempDir(), "http://"+deadAddr(t))

	img := mustPull(t, s, addr+"/library/busybox:latest")

	if img.Ref != addr+"/library/busybox:latest" {
		t.Errorf("Ref = %q", img.Ref)
	}
	byDigest := mustPull(t, s, addr+"/library/busybox@"+img.Digest)
	if byDigest.Digest != img.Digest || byDigest.Rootfs != img.Rootfs {
		t.Errorf("pull by digest = %+v, want %+v", byDigest, img)
	}
}

func TestPullUsesCacheWhenRegistryUnreachable(t *testing.T) {
	t.Parallel()
	addr := imagetest.Registry(t)
	root := t.TempDir()
	pulled := mustPull(t, mustStore(t, root, "http://"+addr), "alpine")

	s := mustStore(t, root, "http://"+deadAddr(t))
	img, err := s.Pull(context.Background(), "alpine")
	if err != nil {
		t.Fatalf("pull while registry is down: %v", err)
	}
	if !equalImage(img, pulled) {
		t.Errorf("cached pull = %+v, want %+v", img, pulled)
	}

	// Never pulled, so there is nothing to fall back to.
	if _, err := s.Pull(context.Background(), "busybox"); !errors.Is(err, ErrImagePull) {
		t.Errorf("uncached pull while registry is down: err = %v, want ErrImagePull", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Pull(ctx, "alpine"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled pull: err = %v, want context.Canceled rather than the cache", err)
	}
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{&transport.Error{StatusCode: http.StatusServiceUnavailable}, true},
		{&transport.Error{StatusCode: http.StatusTooManyRequests}, true},
		{&transport.Error{StatusCode: http.StatusNotFound}, false},
		{&transport.Error{StatusCode: http.StatusUnauthorized}, false},
	} {
		if got := unreachable(tc.err); got != tc.want {
			t.Errorf("unreachable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestPullWhiteouts(t *testing.T) {
	t.Parallel()
	addr := imagetest.Registry(t)
	type E = imagetest.TarEntry
	lower := imagetest.TarBytes(t,
		E{Name: "a/", Type: tar.TypeDir},
		E{Name: "a/keep", Body: "keep"},
		E{Name: "a/gone", Body: "gone"},
		E{Name: "opq/", Type: tar.TypeDir},
		E{Name: "opq/old", Body: "old"},
		E{Name: "opq/sub/", Type: tar.TypeDir},
		E{Name: "opq/sub/deep", Body: "deep"},
	)
	upper := imagetest.TarBytes(t,
		E{Name: "a/", Type: tar.TypeDir},
		E{Name: "a/.wh.gone"},
		E{Name: "opq/", Type: tar.TypeDir},
		E{Name: "opq/.wh..wh..opq"},
		E{Name: "opq/new", Body: "new"},
	)
	imagetest.Push(t, addr, "library/whiteout:latest",
		imagetest.NewImage(t, v1.Config{Cmd: []string{"true"}}, imagetest.Layer(t, lower), imagetest.Layer(t, upper)))
	s := mustStore(t, t.TempDir(), "http://"+addr)

	img := mustPull(t, s, "whiteout")

	for p, want := range map[string]bool{
		"a/keep": true, "a/gone": false, "a/.wh.gone": false,
		"opq/new": true, "opq/old": false, "opq/sub": false, "opq/.wh..wh..opq": false,
	} {
		_, err := os.Lstat(filepath.Join(img.Rootfs, p))
		if got := err == nil; got != want {
			t.Errorf("%s exists = %v, want %v (%v)", p, got, want, err)
		}
	}
}

func TestPullKeepsOwnersAndSpecialModes(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	addr := imagetest.Registry(t)
	type E = imagetest.TarEntry
	layer := imagetest.TarBytes(t,
		E{Name: "bin/", Type: tar.TypeDir},
		E{Name: "bin/su", Mode: 0o4755, Body: "su"},
		E{Name: "shared/", Type: tar.TypeDir, Mode: 0o2775, Uid: 1000, Gid: 1000},
		E{Name: "home/", Type: tar.TypeDir},
		E{Name: "home/u/", Type: tar.TypeDir, Mode: 0o500, Uid: 1000, Gid: 1001},
		E{Name: "home/u/f", Mode: 0o400, Uid: 1000, Gid: 1001, Body: "f"},
		E{Name: "home/u/l", Type: tar.TypeSymlink, Linkname: "f", Uid: 1000, Gid: 1001},
		E{Name: "home/u/h", Type: tar.TypeLink, Linkname: "home/u/f"},
		E{Name: "dev/", Type: tar.TypeDir},
		E{Name: "dev/null", Type: tar.TypeChar},
	)
	imagetest.Push(t, addr, "library/modes:latest", imagetest.NewImage(t, v1.Config{}, imagetest.Layer(t, layer)))
	s := mustStore(t, t.TempDir(), "http://"+addr)

	img := mustPull(t, s, "modes")

	for p, want := range map[string]struct {
		mode     fs.FileMode
		uid, gid uint32
	}{
		"bin/su":   {0o755 | fs.ModeSetuid, 0, 0},
		"shared":   {fs.ModeDir | 0o775 | fs.ModeSetgid, 1000, 1000},
		"home/u":   {fs.ModeDir | 0o500, 1000, 1001},
		"home/u/f": {0o400, 1000, 1001},
		"home/u/l": {fs.ModeSymlink | 0o777, 1000, 1001},
		"home/u/h": {0o400, 1000, 1001},
	} {
		fi, err := os.Lstat(filepath.Join(img.Rootfs, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != want.mode || st.Uid != want.uid || st.Gid != want.gid {
			t.Errorf("%s: %v %d:%d, want %v %d:%d", p, fi.Mode(), st.Uid, st.Gid, want.mode, want.uid, want.gid)
		}
	}
	f, _ := os.Stat(filepath.Join(img.Rootfs, "home/u/f"))
	h, _ := os.Stat(filepath.Join(img.Rootfs, "home/u/h"))
	if !os.SameFile(f, h) {
		t.Error("home/u/h is not a hard link of home/u/f")
	}
	if _, err := os.Lstat(filepath.Join(img.Rootfs, "dev/null")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("device node was created: %v", err)
	}
}

// TestPullHostileImage goes through the registry and mutate.Extract, which
// filters some attacks itself; TestUnpackHostile covers the unpacker alone.
func TestPullHostileImage(t *testing.T) {
	t.Parallel()
	addr := imagetest.Registry(t)
	outside := t.TempDir()
	type E = imagetest.TarEntry

	t.Run("dotdot fails the pull", func(t *testing.T) {
		layer := imagetest.TarBytes(t, E{Name: "../escape", Body: "x"})
		imagetest.Push(t, addr, "library/dotdot:latest", imagetest.NewImage(t, v1.Config{}, imagetest.Layer(t, layer)))
		root := filepath.Join(outside, "store1")
		s := mustStore(t, root, "http://"+addr)

		_, err := s.Pull(context.Background(), "dotdot")

		t.Log(err)
		if !errors.Is(err, ErrImagePull) || !strings.Contains(err.Error(), "unsafe tar path") {
			t.Errorf("err = %v, want ErrImagePull about the unsafe path", err)
		}
		if got := storeEntries(t, root); len(got) != 0 {
			t.Errorf("store root holds %v after a failed pull", got)
		}
		for _, p := range []string{filepath.Join(outside, "escape"), filepath.Join(root, "escape")} {
			assertNotExist(t, p)
		}
	})

	t.Run("links stay inside", func(t *testing.T) {
		abs := filepath.Join(outside, "abs")
		layer := imagetest.TarBytes(t,
			E{Name: abs + "/escape", Body: "x"},
			E{Name: "evil", Type: tar.TypeSymlink, Linkname: outside},
			E{Name: "evil/pwned", Body: "x"},
			E{Name: "up", Type: tar.TypeSymlink, Linkname: "../../.."},
			E{Name: "up/x", Body: "x"},
			E{Name: "passwd", Type: tar.TypeLink, Linkname: "/etc/passwd"},
		)
		imagetest.Push(t, addr, "library/links:latest", imagetest.NewImage(t, v1.Config{}, imagetest.Layer(t, layer)))
		root := filepath.Join(outside, "store2")
		s := mustStore(t, root, "http://"+addr)

		img := mustPull(t, s, "links")

		for _, p := range []string{abs, filepath.Join(outside, "pwned"), filepath.Join(outside, "x"), filepath.Join(root, "x")} {
			assertNotExist(t, p)
		}
		// Extract drops evil/pwned itself (a non-directory hides what is
		// below it) and "up" (a relative link leaving the root).
		if _, err := os.Lstat(filepath.Join(img.Rootfs, abs, "escape")); err != nil {
			t.Errorf("want the absolute name inside the rootfs: %v", err)
		}
		assertNotExist(t, filepath.Join(img.Rootfs, "passwd"))
	})
}

func assertNotExist(tb testing.TB, p string) {
	tb.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		tb.Errorf("%s exists (err %v): written outside the rootfs", p, err)
	}
}

func TestNewStoreRemovesUnfinishedUnpacks(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	half := filepath.Join(root, tmpPrefix+"abc-123", "rootfs", "bin")
	if err := os.MkdirAll(half, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, refsDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, refsDir, tmpPrefix+"1"), nil, 0o600); err != nil {
		t.Fatal(err)
	}

	mustStore(t, root, "")

	if got := storeEntries(t, root); len(got) != 0 {
		t.Errorf("store root still holds %v", got)
	}
	if entries, _ := os.ReadDir(filepath.Join(root, refsDir)); len(entries) != 0 {
		t.Errorf("refs still holds %v", entries)
	}
}

func TestMirrorOption(t *testing.T) {
	t.Parallel()
	for mirror, want := range map[string]string{
		"http://127.0.0.1:5000":   "127.0.0.1:5000/library/alpine:latest",
		"https://mirror.example/": "mirror.example/library/alpine:latest",
		"mirror.example:443":      "mirror.example:443/library/alpine:latest",
	} {
		s := mustStore(t, t.TempDir(), mirror)
		r, _ := name.ParseReference("alpine")
		src, err := s.source(r)
		if err != nil || src.Name() != want {
			t.Errorf("mirror %q: source = %v, %v; want %s", mirror, src, err, want)
		}
		if insecure := strings.HasPrefix(mirror, "http://"); s.mirrorInsecure != insecure {
			t.Errorf("mirror %q: insecure = %v", mirror, s.mirrorInsecure)
		}
	}
	for _, bad := range []string{"ftp://x", "https://x/some/path", "http://"} {
		if _, err := NewStore(t.TempDir(), Options{Mirror: bad}); err == nil {
			t.Errorf("mirror %q accepted", bad)
		}
	}
}

func TestPullWithExpiredContext(t *testing.T) {
	t.Parallel()
	addr := imagetest.Registry(t)
	s := mustStore(t, t.TempDir(), "http://"+addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	if _, err := s.Pull(ctx, "alpine"); !errors.Is(err, ErrImagePull) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want ErrImagePull wrapping the deadline", err)
	}
	mustPull(t, s, "alpine")
}
