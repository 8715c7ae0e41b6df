package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations naming an image in an OCI layout: containerd's (and docker
// save's since Docker 25) carry the full reference; the OCI one often only a
// tag.
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// Import loads the images of archive, a `docker save` tarball (or `crane
// pull`'s, which is the same format) or an OCI image layout in a tar
// (`skopeo copy ... oci-archive:`, `docker save` since Docker 25), into the
// store and records their references, as `k3s ctr images import` and
// `kind load image-archive` do. ref names the image when the archive holds
// only one, and replaces the names it carries. The images are then used by
// Pull without a registry (for tags other than latest, see Pull).
func (s *Store) Import(ctx context.Context, archive, ref string) ([]Image, error) {
	imgs, err := s.importArchive(ctx, archive, ref)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", archive, err)
	}
	return imgs, nil
}

// named is one image of an archive and the references it is to get.
type named struct {
	img  v1.Image
	refs []string
}

func (s *Store) importArchive(ctx context.Context, archive, ref string) ([]Image, error) {
	members, err := tarMembers(archive)
	if err != nil {
		return nil, err
	}
	var found []named
	switch {
	case members["oci-layout"] && members["index.json"]:
		dir, err := os.MkdirTemp(s.root, tmpPrefix+"import-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		if err := extractLayout(archive, dir); err != nil {
			return nil, err
		}
		if found, err = layoutImages(dir); err != nil {
			return nil, err
		}
	case members["manifest.json"]:
		if found, err = dockerImages(archive); err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("neither a docker save tarball (manifest.json) nor an OCI layout (oci-layout, index.json)")
	}
	if len(found) == 0 {
		return nil, errors.New("the archive holds no image")
	}
	if ref != "" {
		if len(found) != 1 {
			return nil, fmt.Errorf("the archive holds %d images; a name fits only one", len(found))
		}
		found[0].refs = []string{ref}
	}
	var out []Image
	for _, f := range found {
		if len(f.refs) == 0 {
			return nil, errors.New("an image in the archive has no name; give one (miniku images import --name REF)")
		}
		var rs []name.Reference
		for _, r := range f.refs {
			pr, err := name.ParseReference(r)
			if err != nil {
				return nil, fmt.Errorf("image name %q: %w", r, err)
			}
			rs = append(rs, pr)
		}
		d, err := f.img.Digest()
		if err != nil {
			return nil, fmt.Errorf("manifest digest: %w", err)
		}
		log := s.log.With("ref", rs[0].Name(), "digest", d.String())
		cfg, err := s.ensure(ctx, d, f.img, log)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			if err := s.saveRef(r.Name(), d); err != nil {
				return nil, fmt.Errorf("record %s: %w", r.Name(), err)
			}
			log.Info("imported image", "as", r.Name())
			out = append(out, Image{Ref: r.Name(), Digest: d.String(), Rootfs: s.rootfs(d.Hex), Config: cfg})
		}
	}
	return out, nil
}

// tarMembers lists the top-level files of the archive that tell its format.
func tarMembers(archive string) (map[string]bool, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read archive: %w", err)
		}
		switch n := path.Clean(strings.TrimPrefix(hdr.Name, "./")); n {
		case "oci-layout", "index.json", "manifest.json":
			out[n] = true
		}
	}
}

// extractLayout unpacks an OCI layout tar into dir. Only index.json,
// oci-layout and blobs/<alg>/<hex> are taken: nothing else is needed, and
// nothing can land outside dir.
func extractLayout(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		n := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		parts := strings.Split(n, "/")
		ok := n == "index.json" || n == "oci-layout" ||
			(len(parts) == 3 && parts[0] == "blobs" && parts[1] != ".." && parts[2] != ".." && parts[1] != "." && parts[2] != ".")
		if !ok {
			continue
		}
		if len(parts) == 3 {
			if err := root.MkdirAll(path.Dir(n), 0o700); err != nil {
				return err
			}
		}
		out, err := root.OpenFile(n, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, tr)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("extract %s: %w", n, err)
		}
	}
}

// layoutImages returns the linux/GOARCH image of every entry of the
// layout's index, named by its annotations.
func layoutImages(dir string) ([]named, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("OCI layout: %w", err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("OCI layout: %w", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("OCI layout index.json: %w", err)
	}
	var out []named
	for _, desc := range im.Manifests {
		var img v1.Image
		switch {
		case desc.MediaType.IsIndex():
			child, err := idx.ImageIndex(desc.Digest)
			if err != nil {
				return nil, fmt.Errorf("OCI layout: index %s: %w", desc.Digest, err)
			}
			if img, err = platformImage(child); err != nil {
				return nil, fmt.Errorf("OCI layout: index %s: %w", desc.Digest, err)
			}
		case desc.MediaType.IsImage():
			if img, err = idx.Image(desc.Digest); err != nil {
				return nil, fmt.Errorf("OCI layout: image %s: %w", desc.Digest, err)
			}
		default:
			continue
		}
		n := named{img: img}
		if full := desc.Annotations[annotationContainerdName]; full != "" {
			n.refs = []string{full}
		} else if r := desc.Annotations[annotationRefName]; strings.ContainsAny(r, ":/@") {
			n.refs = []string{r} // a full reference, not a bare tag
		}
		out = append(out, n)
	}
	return out, nil
}

// platformImage picks linux/GOARCH out of a multi-platform index.
func platformImage(idx v1.ImageIndex) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == runtime.GOARCH && d.MediaType != types.DockerManifestList {
			return idx.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("no linux/%s image in it", runtime.GOARCH)
}

// dockerImages returns every image of a docker save tarball with its tags.
func dockerImages(archive string) ([]named, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(archive) }
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, fmt.Errorf("docker archive manifest.json: %w", err)
	}
	var out []named
	for i, desc := range m {
		var tag *name.Tag
		if len(desc.RepoTags) > 0 {
			t, err := name.NewTag(desc.RepoTags[0])
			if err != nil {
				return nil, fmt.Errorf("docker archive image %d: tag %q: %w", i, desc.RepoTags[0], err)
			}
			tag = &t
		} else if len(m) > 1 {
			return nil, fmt.Errorf("docker archive image %d has no tag; give one or save images one at a time", i)
		}
		img, err := tarball.Image(opener, tag)
		if err != nil {
			return nil, fmt.Errorf("docker archive image %d: %w", i, err)
		}
		out = append(out, named{img: img, refs: desc.RepoTags})
	}
	return out, nil
}
