package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/miniku/miniku/runtime/image/imagetest"
)

type hostileCase struct {
	name    string
	entries []imagetest.TarEntry
	wantErr bool
	// inside are rootfs-relative paths the entries must land on instead.
	inside []string
	// absent are rootfs-relative paths that must not be created.
	absent []string
}

// hostileCases are tar streams that try to write outside the rootfs. outside
// is an absolute directory next to the rootfs that must stay empty; "../outside"
// from the rootfs reaches it too.
func hostileCases(outside string) []hostileCase {
	type E = imagetest.TarEntry
	return []hostileCase{
		{name: "dotdot", entries: []E{{Name: "../outside/escape", Body: "x"}}, wantErr: true},
		{name: "nested dotdot", entries: []E{{Name: "a/../../outside/escape", Body: "x"}}, wantErr: true},
		{name: "dotdot dir", entries: []E{{Name: "../outside/d/", Type: tar.TypeDir}}, wantErr: true},
		{
			name:    "absolute name",
			entries: []E{{Name: outside + "/escape", Body: "x"}, {Name: "/abs/escape", Body: "x"}},
			inside:  []string{outside + "/escape", "abs/escape"},
		},
		{
			name: "absolute symlink parent",
			entries: []E{
				{Name: "evil", Type: tar.TypeSymlink, Linkname: outside},
				{Name: "evil/pwned", Body: "x"},
			},
			inside: []string{outside + "/pwned"},
		},
		{
			name: "relative symlink climbing out",
			entries: []E{
				{Name: "up", Type: tar.TypeSymlink, Linkname: "../../.."},
				{Name: "up/x", Body: "x"},
				{Name: "d/", Type: tar.TypeDir},
				{Name: "d/l", Type: tar.TypeSymlink, Linkname: "../../outside"},
				{Name: "d/l/y", Body: "y"},
			},
			inside: []string{"x", "outside/y"},
		},
		{
			name: "directory through symlink",
			entries: []E{
				{Name: "d", Type: tar.TypeSymlink, Linkname: outside},
				{Name: "d/sub/", Type: tar.TypeDir},
			},
			inside: []string{outside + "/sub"},
		},
		{
			name: "file replaces symlink instead of following it",
			entries: []E{
				{Name: "f", Type: tar.TypeSymlink, Linkname: outside + "/target"},
				{Name: "f", Body: "x"},
				{Name: "g", Type: tar.TypeSymlink, Linkname: "../outside/target2"},
				{Name: "g", Body: "x"},
			},
			inside: []string{"f", "g"},
		},
		{
			name:    "hard link to host file",
			entries: []E{{Name: "passwd", Type: tar.TypeLink, Linkname: "/etc/passwd"}},
			absent:  []string{"passwd"},
		},
		{
			// Inside the rootfs /etc is the link itself: a loop, not the host's /etc.
			name: "self-referencing absolute symlink",
			entries: []E{
				{Name: "etc", Type: tar.TypeSymlink, Linkname: "/etc"},
				{Name: "etc/passwd", Body: "x"},
			},
			wantErr: true,
		},
		{
			name: "hard link through symlink",
			entries: []E{
				{Name: "e", Type: tar.TypeSymlink, Linkname: "/etc"},
				{Name: "pw", Type: tar.TypeLink, Linkname: "e/passwd"},
			},
			absent: []string{"pw", "etc"},
		},
		{
			name:    "hard link dotdot",
			entries: []E{{Name: "pw", Type: tar.TypeLink, Linkname: "../../../../../etc/passwd"}},
			wantErr: true,
		},
		{
			name: "hard link to symlink",
			entries: []E{
				{Name: "s", Type: tar.TypeSymlink, Linkname: outside + "/t"},
				{Name: "h", Type: tar.TypeLink, Linkname: "s"},
				{Name: "h", Body: "x"},
			},
			inside: []string{"s", "h"},
		},
		{
			name: "symlink loop",
			entries: []E{
				{Name: "a", Type: tar.TypeSymlink, Linkname: "b"},
				{Name: "b", Type: tar.TypeSymlink, Linkname: "a"},
				{Name: "a/x", Body: "x"},
			},
			wantErr: true,
		},
		{
			name:    "file replaces root",
			entries: []E{{Name: ".", Body: "x"}},
			wantErr: true,
		},
		{
			// Holes read back as zeros: a tiny archive could fill the disk.
			name:    "sparse file",
			entries: []E{{Name: "sparse", Type: tar.TypeGNUSparse, Body: "x"}},
			wantErr: true,
			absent:  []string{"sparse"},
		},
		{
			name: "device nodes skipped",
			entries: []E{
				{Name: "null", Type: tar.TypeChar},
				{Name: "sda", Type: tar.TypeBlock},
				{Name: "fifo", Type: tar.TypeFifo},
			},
			absent: []string{"null", "sda", "fifo"},
		},
	}
}

// unpackSandbox returns base/rootfs and base/outside, both empty.
func unpackSandbox(tb testing.TB) (base, rootfs, outside string) {
	base = tb.TempDir()
	rootfs, outside = filepath.Join(base, "rootfs"), filepath.Join(base, "outside")
	for _, d := range []string{rootfs, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	return base, rootfs, outside
}

// assertConfined fails unless base holds only the untouched sandbox.
func assertConfined(tb testing.TB, base string, absPaths ...string) {
	tb.Helper()
	entries, err := os.ReadDir(base)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"outside", "rootfs"}) {
		tb.Errorf("%s holds %v: written outside the rootfs", base, names)
	}
	if entries, _ := os.ReadDir(filepath.Join(base, "outside")); len(entries) != 0 {
		tb.Errorf("outside dir holds %v: written outside the rootfs", entries)
	}
	for _, p := range absPaths {
		assertNotExist(tb, p)
	}
}

func TestUnpackHostile(t *testing.T) {
	passwdBefore, err := os.Stat("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	probe, _, outside := unpackSandbox(t)
	for _, tc := range hostileCases(outside) {
		t.Run(tc.name, func(t *testing.T) {
			base, rootfs, _ := unpackSandbox(t)
			// Each case runs in its own sandbox, but absolute targets point
			// at the shared probe's outside dir, so check that one too.
			err := unpack(bytes.NewReader(imagetest.TarBytes(t, tc.entries...)), rootfs, testLogger(t))

			if (err != nil) != tc.wantErr {
				t.Errorf("unpack err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil && tc.name == "dotdot" && !errors.Is(err, errUnsafePath) {
				t.Errorf("err = %v, want errUnsafePath", err)
			}
			assertConfined(t, base, "/abs")
			assertConfined(t, probe)
			for _, p := range tc.inside {
				if _, err := os.Lstat(filepath.Join(rootfs, p)); err != nil {
					t.Errorf("want %s inside the rootfs: %v", p, err)
				}
			}
			for _, p := range tc.absent {
				assertNotExist(t, filepath.Join(rootfs, p))
			}
		})
	}
	passwdAfter, err := os.Stat("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	if n1, n2 := passwdBefore.Sys().(*syscall.Stat_t).Nlink, passwdAfter.Sys().(*syscall.Stat_t).Nlink; n1 != n2 {
		t.Errorf("/etc/passwd link count %d -> %d", n1, n2)
	}
}

func TestUnpackHardLinkResolvesInsideRootfs(t *testing.T) {
	type E = imagetest.TarEntry
	_, rootfs, _ := unpackSandbox(t)
	tarball := imagetest.TarBytes(t,
		E{Name: "etc/", Type: tar.TypeDir},
		E{Name: "etc/passwd", Body: "root:x:0:0::/root:/bin/sh\n"},
		E{Name: "link", Type: tar.TypeSymlink, Linkname: "/etc"},
		E{Name: "pw", Type: tar.TypeLink, Linkname: "/link/passwd"},
	)
	if err := unpack(bytes.NewReader(tarball), rootfs, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	inImage, err1 := os.Stat(filepath.Join(rootfs, "etc/passwd"))
	linked, err2 := os.Stat(filepath.Join(rootfs, "pw"))
	host, err3 := os.Stat("/etc/passwd")
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(inImage, linked) || os.SameFile(host, linked) {
		t.Error("pw should be a hard link of the image's etc/passwd, not the host's")
	}
}

func TestUnpackReplacesEntries(t *testing.T) {
	type E = imagetest.TarEntry
	_, rootfs, _ := unpackSandbox(t)
	tarball := imagetest.TarBytes(t,
		E{Name: "x/", Type: tar.TypeDir},
		E{Name: "x/child", Body: "c"},
		E{Name: "x", Body: "file now"},
		E{Name: "y", Body: "file"},
		E{Name: "y/", Type: tar.TypeDir, Mode: 0o700},
		E{Name: "./ro/", Type: tar.TypeDir, Mode: 0o555},
		E{Name: "ro/inside", Body: "i"},
	)
	if err := unpack(bytes.NewReader(tarball), rootfs, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(rootfs, "x")); err != nil || string(data) != "file now" {
		t.Errorf("x = %q, %v", data, err)
	}
	for p, mode := range map[string]fs.FileMode{"y": fs.ModeDir | 0o700, "ro": fs.ModeDir | 0o555} {
		if fi, err := os.Lstat(filepath.Join(rootfs, p)); err != nil || fi.Mode() != mode {
			t.Errorf("%s: %v %v, want %v", p, fi.Mode(), err, mode)
		}
	}
}

// fuzzOutside is absolute and fixed so the seeds can aim at it from every
// fuzz worker process; nothing may ever create it.
var fuzzOutside = filepath.Join(os.TempDir(), "miniku-fuzzunpack-outside")

// FuzzUnpack feeds arbitrary tar streams to the unpacker and checks that
// nothing appears next to the rootfs or at the absolute probe path, whatever
// the entries are. Seeds are the hostile cases.
func FuzzUnpack(f *testing.F) {
	for _, tc := range hostileCases(fuzzOutside) {
		f.Add(imagetest.TarBytes(f, tc.entries...))
	}
	for _, tc := range hostileCases("../outside") {
		f.Add(imagetest.TarBytes(f, tc.entries...))
	}
	log := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, data []byte) {
		base, rootfs, _ := unpackSandbox(t)
		_ = unpack(bytes.NewReader(data), rootfs, log) // errors are fine; escapes are not
		assertConfined(t, base, fuzzOutside, "/abs")
	})
}
