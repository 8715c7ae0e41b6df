package imagetest

import (
	"archive/tar"
	"bytes"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// BusyboxPATH is the PATH in the Busybox image config.
const BusyboxPATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Epoch is every entry's mtime, so Busybox has the same digest on every run
// and machine with the same busybox binary.
var Epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// TarEntry describes one entry of a layer built by Layer.
type TarEntry struct {
	Name     string
	Type     byte // tar.TypeReg when zero
	Linkname string
	Mode     int64 // 0o644 for files, 0o755 for directories when zero
	Uid, Gid int
	Body     string
}

// TarBytes returns an uncompressed tar archive of entries, in order.
// Nothing is cleaned or checked, so it can express hostile archives.
func TarBytes(tb testing.TB, entries ...TarEntry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{
			Name: e.Name, Typeflag: e.Type, Linkname: e.Linkname, Mode: e.Mode,
			Uid: e.Uid, Gid: e.Gid, ModTime: Epoch, Format: tar.FormatPAX,
		}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
			if hdr.Typeflag == tar.TypeDir {
				hdr.Mode = 0o755
			}
		}
		if hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeGNUSparse {
			hdr.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			tb.Fatalf("tar header %q: %v", e.Name, err)
		}
		if _, err := io.WriteString(tw, e.Body); err != nil {
			tb.Fatalf("tar body %q: %v", e.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// Layer returns a gzip-compressed image layer holding the tar archive data.
func Layer(tb testing.TB, data []byte) v1.Layer {
	tb.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// NewImage returns a linux/GOARCH image of layers, bottom first, with cfg.
func NewImage(tb testing.TB, cfg v1.Config, layers ...v1.Layer) v1.Image {
	tb.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		tb.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		tb.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", runtime.GOARCH, cfg
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		tb.Fatal(err)
	}
	return img
}

// busyboxLayer is built once per process: compressing the two-megabyte
// binary takes about a second under the race detector, and layers are
// immutable, so every image can share it.
var busyboxLayer = sync.OnceValues(func() (v1.Layer, error) {
	data, err := busyboxTar()
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithCompressedCaching)
})

func busyboxTar() ([]byte, error) {
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(hdr *tar.Header, body []byte) error {
		hdr.ModTime, hdr.Format = Epoch, tar.FormatPAX
		hdr.Size = int64(len(body))
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	for _, d := range []string{"bin", "proc", "dev", "sys", "tmp", "etc", "root"} {
		mode := int64(0o755)
		switch d {
		case "tmp":
			mode = 0o1777
		case "root":
			mode = 0o700
		}
		if err := add(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: mode}, nil); err != nil {
			return nil, err
		}
	}
	if err := add(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755}, bin); err != nil {
		return nil, err
	}
	for _, a := range Applets {
		hdr := &tar.Header{Name: path.Join("bin", a), Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}
		if err := add(hdr, nil); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Busybox returns a one-layer image of /bin/busybox, its Applets as symlinks
// and the empty directories a container needs, with Cmd ["sh"]. The test is
// skipped when busybox-static is not installed.
func Busybox(tb testing.TB) v1.Image {
	tb.Helper()
	RequireBusybox(tb)
	layer, err := busyboxLayer()
	if err != nil {
		tb.Fatalf("busybox layer: %v", err)
	}
	return NewImage(tb, v1.Config{Cmd: []string{"sh"}, Env: []string{BusyboxPATH}}, layer)
}

// Registry starts an in-memory registry on 127.0.0.1 over plain http for the
// life of the test and returns its "host:port". Busybox is pushed as
// library/alpine:latest and library/busybox:latest, so with the address as
// the registry mirror, "alpine" and "busybox" pull without Docker Hub. Child
// processes of the test can use it too.
func Registry(tb testing.TB) string {
	tb.Helper()
	img := Busybox(tb)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(tbWriter{tb}, "registry: ", 0))))
	tb.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	Push(tb, addr, "library/alpine:latest", img)
	Push(tb, addr, "library/busybox:latest", img)
	return addr
}

// Push uploads img to the plain-http registry at addr as repo:tag,
// e.g. Push(tb, addr, "library/hostile:latest", img).
func Push(tb testing.TB, addr, ref string, img v1.Image) {
	tb.Helper()
	tag, err := name.NewTag(addr+"/"+ref, name.Insecure)
	if err != nil {
		tb.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		tb.Fatalf("push %s: %v", tag, err)
	}
}

// tbWriter sends the registry's failed requests to the test log; it logs
// every request, and the successful ones bury what matters.
type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	line := strings.TrimSuffix(string(p), "\n")
	if fields := strings.Fields(line); len(fields) > 3 {
		w.tb.Log(line)
	}
	return len(p), nil
}
