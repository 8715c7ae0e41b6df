package image

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/miniku/miniku/runtime/image/imagetest"
)

// countingRegistry is a mirror that answers nothing but counts requests, so
// a test can show a pull never asked a registry.
func countingRegistry(t *testing.T) (string, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &n
}

func smallImage(t *testing.T, body string) v1.Image {
	layer := imagetest.Layer(t, imagetest.TarBytes(t, imagetest.TarEntry{Name: "hello", Body: body}))
	return imagetest.NewImage(t, v1.Config{Cmd: []string{"/hello"}}, layer)
}

// TestImportThenPullWithoutRegistry: a docker-save tarball and an OCI layout
// tarball import into the store under their references, and pulls of those
// references then use them without one request to a registry.
func TestImportThenPullWithoutRegistry(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, ref, pull string
		archive         func(*testing.T, v1.Image) string
		nameFlag        string
	}{
		{name: "docker save", ref: "offline:1.0", pull: "offline:1.0",
			archive: func(t *testing.T, img v1.Image) string { return imagetest.DockerArchive(t, "offline:1.0", img) }},
		{name: "OCI layout with a full reference", pull: "example.com/team/app:2",
			archive: func(t *testing.T, img v1.Image) string { return imagetest.OCIArchive(t, "example.com/team/app:2", img) }},
		{name: "OCI layout with a bare tag and --name", pull: "app:3", nameFlag: "app:3",
			archive: func(t *testing.T, img v1.Image) string { return imagetest.OCIArchive(t, "3", img) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mirror, requests := countingRegistry(t)
			root := filepath.Join(t.TempDir(), "images")
			s := mustStore(t, root, mirror)
			img := smallImage(t, tc.name)
			want, err := img.Digest()
			if err != nil {
				t.Fatal(err)
			}

			got, err := s.Import(context.Background(), tc.archive(t, img), tc.nameFlag)
			if err != nil {
				t.Fatalf("import: %v", err)
			}
			if len(got) != 1 || got[0].Digest != want.String() {
				t.Fatalf("imported %+v, want one image %s", got, want)
			}
			pulled, err := s.Pull(context.Background(), tc.pull)
			if err != nil {
				t.Fatalf("pull %s after import: %v", tc.pull, err)
			}
			if pulled.Digest != want.String() || pulled.Rootfs != got[0].Rootfs {
				t.Errorf("pull = %+v, want the imported %+v", pulled, got[0])
			}
			if data, err := os.ReadFile(filepath.Join(pulled.Rootfs, "hello")); err != nil || string(data) != tc.name {
				t.Errorf("rootfs/hello = %q, %v", data, err)
			}
			if n := requests.Load(); n != 0 {
				t.Errorf("the registry got %d requests; an imported image needs none", n)
			}
			if n := s.unpacks.Load(); n != 1 {
				t.Errorf("%d unpacks, want 1", n)
			}
		})
	}
}

func TestImportRefusesNamelessAndJunk(t *testing.T) {
	t.Parallel()
	s := mustStore(t, t.TempDir(), "")
	if _, err := s.Import(context.Background(), imagetest.OCIArchive(t, "latest", smallImage(t, "x")), ""); err == nil ||
		!strings.Contains(err.Error(), "--name") {
		t.Errorf("import of an image named only by a tag: err = %v, want a request for --name", err)
	}
	junk := filepath.Join(t.TempDir(), "junk.tar")
	if err := os.WriteFile(junk, []byte("not a tar"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Import(context.Background(), junk, "x:1"); err == nil {
		t.Error("import of a file that is no archive succeeded")
	}
	if got := storeEntries(t, s.root); len(got) != 0 {
		t.Errorf("store holds %v after failed imports", got)
	}
}

// TestListAndRemove: ls shows each image with its references and size; rm
// by reference removes the image and its references, refuses one in use.
func TestListAndRemove(t *testing.T) {
	t.Parallel()
	s := mustStore(t, t.TempDir(), "")
	a, err := s.Import(context.Background(), imagetest.DockerArchive(t, "a:1", smallImage(t, "a")), "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Import(context.Background(), imagetest.DockerArchive(t, "b:1", smallImage(t, strings.Repeat("b", 100000))), "")
	if err != nil {
		t.Fatal(err)
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("list = %+v, want 2 images", list)
	}
	for i, want := range []Image{a[0], b[0]} {
		if list[i].Digest != want.Digest || len(list[i].Refs) != 1 || list[i].Refs[0] != want.Ref || list[i].Size <= 0 {
			t.Errorf("list[%d] = %+v, want %s %s with a size", i, list[i], want.Digest, want.Ref)
		}
	}
	if list[1].Size < 100000 {
		t.Errorf("b's size %d, want at least its 100000-byte file", list[1].Size)
	}

	if _, err := s.Remove("b:1", map[string]bool{b[0].Rootfs: true}); !errors.Is(err, ErrInUse) {
		t.Errorf("remove of an image in use: err = %v, want ErrInUse", err)
	}
	if _, err := s.Remove("nope:1", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("remove of a missing image: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Remove("a:1", nil); err != nil {
		t.Fatalf("remove a:1: %v", err)
	}
	if _, err := os.Stat(a[0].Rootfs); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a's rootfs still there: %v", err)
	}
	if _, err := s.Pull(context.Background(), "a:1"); err == nil {
		t.Error("a:1 still pulls from the store after rm")
	}
	if _, err := s.Remove(strings.TrimPrefix(b[0].Digest, "sha256:"), nil); err != nil {
		t.Errorf("remove by digest: %v", err)
	}
	if list, _ := s.List(); len(list) != 0 {
		t.Errorf("list after rm = %+v", list)
	}
}

// TestCollectImages: collection removes unused images, least recently used
// first, until enough is freed; never one in use or used within the minimum
// age.
func TestCollectImages(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	s, err := NewStore(root, Options{GCMinAge: time.Hour, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var imgs []Image
	for _, n := range []string{"old", "used", "mid", "new"} {
		got, err := s.Import(context.Background(), imagetest.DockerArchive(t, n+":1", smallImage(t, strings.Repeat(n, 50000))), "")
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, got[0])
	}
	// Last used: old 4 h ago, used 3 h, mid 2 h, new just now.
	for i, age := range []time.Duration{4 * time.Hour, 3 * time.Hour, 2 * time.Hour} {
		at := time.Now().Add(-age)
		if err := os.Chtimes(filepath.Dir(imgs[i].Rootfs), at, at); err != nil {
			t.Fatal(err)
		}
	}
	inUse := map[string]bool{imgs[1].Rootfs: true}

	freed, err := s.CollectImages(context.Background(), 1, inUse)
	if err != nil {
		t.Fatal(err)
	}
	if freed <= 0 || exists(imgs[0].Rootfs) || !exists(imgs[2].Rootfs) {
		t.Errorf("freeing 1 byte freed %d; old gone %v, mid kept %v: want only the oldest unused removed",
			freed, !exists(imgs[0].Rootfs), exists(imgs[2].Rootfs))
	}
	freed, err = s.CollectImages(context.Background(), 1<<40, inUse)
	if err != nil {
		t.Fatal(err)
	}
	if freed <= 0 || exists(imgs[2].Rootfs) {
		t.Errorf("second collection freed %d, mid still there: %v", freed, exists(imgs[2].Rootfs))
	}
	if !exists(imgs[1].Rootfs) {
		t.Error("collection removed an image a container uses")
	}
	if !exists(imgs[3].Rootfs) {
		t.Error("collection removed an image used within GCMinAge")
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestPullLatestStillAsksRegistry: ":latest" keeps imagePullPolicy Always,
// so an image pushed again under latest is picked up.
func TestPullLatestStillAsksRegistry(t *testing.T) {
	t.Parallel()
	addr := imagetest.Registry(t)
	s := mustStore(t, t.TempDir(), "http://"+addr)
	imagetest.Push(t, addr, "library/app:latest", smallImage(t, "one"))
	first := mustPull(t, s, "app")
	imagetest.Push(t, addr, "library/app:latest", smallImage(t, "two"))
	if second := mustPull(t, s, "app:latest"); second.Digest == first.Digest {
		t.Errorf("a re-pushed latest tag pulled the old digest %s", first.Digest)
	}
}
