package image

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/miniku/miniku/runtime/image/imagetest"
)

// TestPullRefusesDecompressionBomb: a small gzip layer that expands past the
// store's limit fails the pull and leaves nothing behind, while an image
// under the limit still pulls.
func TestPullRefusesDecompressionBomb(t *testing.T) {
	t.Parallel()
	addr := imagetest.Registry(t)
	const limit = 8 << 20
	zeros := strings.Repeat("\x00", 32<<20)
	layer := imagetest.Layer(t, imagetest.TarBytes(t, imagetest.TarEntry{Name: "bomb", Body: zeros}))
	if size, err := layer.Size(); err != nil || size > 1<<20 {
		t.Fatalf("compressed bomb layer is %d bytes (%v), want a small one", size, err)
	}
	imagetest.Push(t, addr, "library/bomb:latest", imagetest.NewImage(t, v1.Config{}, layer))

	root := filepath.Join(t.TempDir(), "images")
	s, err := NewStore(root, Options{Mirror: "http://" + addr, MaxImageSize: limit, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Pull(context.Background(), "bomb")
	t.Log(err)
	if !errors.Is(err, ErrImagePull) || !errors.Is(err, ErrImageTooLarge) {
		t.Fatalf("pull of a 32 MiB bomb with an 8 MiB limit: err = %v, want ErrImagePull and ErrImageTooLarge", err)
	}
	if got := storeEntries(t, root); len(got) != 0 {
		t.Errorf("store root holds %v after a refused pull", got)
	}
	if _, err := s.Pull(context.Background(), "busybox"); err != nil {
		t.Errorf("busybox is under the limit but did not pull: %v", err)
	}
}

func TestDefaultMaxImageSize(t *testing.T) {
	s, err := NewStore(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.maxSize != DefaultMaxImageSize {
		t.Errorf("maxSize = %d, want the default %d", s.maxSize, DefaultMaxImageSize)
	}
	if s, _ = NewStore(t.TempDir(), Options{MaxImageSize: -1}); s.maxSize != 0 {
		t.Errorf("negative MaxImageSize: maxSize = %d, want no limit", s.maxSize)
	}
}
