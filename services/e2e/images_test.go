package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/miniku/miniku/runtime/image/imagetest"
	"github.com/miniku/miniku/schemas"
)

func runImages(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(miniku(t), append([]string{"images"}, args...)...).CombinedOutput()
	return string(out), err
}

// TestImagesImportOffline: a docker-save tarball and an OCI layout tarball
// imported with `miniku images import` run as pods on a node whose only
// registry is dead; `images ls` lists them, `images rm` refuses one a
// container uses and removes it once the pod is gone.
func TestImagesImportOffline(t *testing.T) {
	c := newCluster(t)
	img := imagetest.Busybox(t)
	docker := imagetest.DockerArchive(t, "offline/app:1.0", img)
	oci := imagetest.OCIArchive(t, "example.com/offline/tool:2", withFile(t, img))
	for _, f := range []string{docker, oci} {
		if out, err := runImages(t, "import", "--data-dir", c.dataDir, f); err != nil {
			t.Fatalf("images import %s: %v\n%s", f, err, out)
		}
	}
	ls, err := runImages(t, "ls", "--data-dir", c.dataDir)
	if err != nil || !strings.Contains(ls, "index.docker.io/offline/app:1.0") || !strings.Contains(ls, "example.com/offline/tool:2") {
		t.Fatalf("images ls: %v\n%s", err, ls)
	}

	c.registry = freeAddr(t) // nothing listens: no registry at all
	c.upEvict(t)
	a := c.api
	a.mustPost("/pods", `{"name":"app","image":"offline/app:1.0","restartPolicy":"Never","command":["sleep","1000"]}`)
	a.mustPost("/pods", `{"name":"tool","image":"example.com/offline/tool:2","restartPolicy":"Never","command":["sleep","1000"]}`)
	waitPhase(t, a, "app", schemas.PodRunning)
	waitPhase(t, a, "tool", schemas.PodRunning)

	out, err := runImages(t, "rm", "--data-dir", c.dataDir, "offline/app:1.0")
	if err == nil || !strings.Contains(out, "in use") {
		t.Errorf("images rm of an image a container runs: %v\n%s; want it refused", err, out)
	}
	deletePod(t, a, "/pods/app")
	deletePod(t, a, "/pods/tool")
	waitGone(t, a, c.dataDir, "app", 60*time.Second)
	waitGone(t, a, c.dataDir, "tool", 60*time.Second)
	if out, err := runImages(t, "rm", "--data-dir", c.dataDir, "offline/app:1.0"); err != nil || !strings.Contains(out, "deleted") {
		t.Fatalf("images rm after the pod is gone: %v\n%s", err, out)
	}
	ls, err = runImages(t, "ls", "--data-dir", c.dataDir)
	if err != nil || strings.Contains(ls, "offline/app") || !strings.Contains(ls, "example.com/offline/tool:2") {
		t.Errorf("images ls after rm: %v\n%s", err, ls)
	}
	// Gone from the store, the image cannot start without a registry.
	a.mustPost("/pods", `{"name":"again","image":"offline/app:1.0","restartPolicy":"Never","command":["sleep","1000"]}`)
	eventually(t, 60*time.Second, func() error {
		p, ok, err := a.getPod("again")
		if err != nil || !ok {
			return fmt.Errorf("pod again: %v %v", ok, err)
		}
		if p.Status == schemas.PodRunning {
			t.Fatalf("a removed image still runs")
		}
		if !strings.Contains(p.Reason, "ImagePull") {
			return fmt.Errorf("pod again is %s %s", p.Status, p.Reason)
		}
		return nil
	})
}

// withFile returns img with one more layer holding a small file, so the OCI
// archive holds an image of its own digest.
func withFile(t *testing.T, img v1.Image) v1.Image {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	extra := imagetest.Layer(t, imagetest.TarBytes(t, imagetest.TarEntry{Name: "etc/tool", Body: "2"}))
	return imagetest.NewImage(t, cf.Config, append(layers, extra)...)
}
