package imagetest

import (
	"archive/tar"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// DockerArchive writes img as a `docker save` tarball tagged ref (the format
// `crane pull` and `skopeo copy ... docker-archive:` write too) and returns
// its path.
func DockerArchive(tb testing.TB, ref string, img v1.Image) string {
	tb.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		tb.Fatal(err)
	}
	p := filepath.Join(tb.TempDir(), "docker-save.tar")
	if err := tarball.WriteToFile(p, tag, img); err != nil {
		tb.Fatalf("write docker archive: %v", err)
	}
	return p
}

// OCIArchive writes img as an OCI image layout in a tar, as `skopeo copy ...
// oci-archive:FILE:REF` does: its index entry carries refName in the
// org.opencontainers.image.ref.name annotation (a full reference or a bare
// tag; empty: none). It returns the tar's path.
func OCIArchive(tb testing.TB, refName string, img v1.Image) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		tb.Fatal(err)
	}
	var opts []layout.Option
	if refName != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": refName}))
	}
	if err := p.AppendImage(img, opts...); err != nil {
		tb.Fatalf("write OCI layout: %v", err)
	}
	out := filepath.Join(tb.TempDir(), "oci-archive.tar")
	f, err := os.Create(out)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		tb.Fatalf("tar OCI layout: %v", err)
	}
	return out
}
