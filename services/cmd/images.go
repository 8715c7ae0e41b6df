//go:build linux

package cmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	mkrt "github.com/miniku/miniku/runtime"
	"github.com/miniku/miniku/runtime/image"
	"github.com/miniku/miniku/schemas"
)

const imagesUsage = `usage: miniku images <import|ls|rm> [--data-dir DIR] ...

Manage the node's image store under <data-dir>/images directly on the node
(no apiserver involved), as 'k3s ctr images' does. Each works while the node
runs: an import lands atomically, and rm refuses an image a container uses.

  images import [--name REF] FILE...   load 'docker save' or OCI layout tarballs
  images ls                            list images: references, digest, size, last use
  images rm REF|DIGEST...              remove images and their references
`

// cmdImages is `miniku images`; its output goes to stdout.
func cmdImages(ctx context.Context, args []string, stderr io.Writer) error {
	return images(ctx, args, os.Stdout, stderr)
}

func images(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, imagesUsage)
		return nil
	}
	sub := args[0]
	fs := flag.NewFlagSet("images "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs, true)
	var ref, maxSize *string
	switch sub {
	case "import":
		ref = fs.String("name", "", "reference for the image (when the archive holds one), e.g. myapp:1.0")
		maxSize = fs.String("max-image-size", schemas.FormatMemory(image.DefaultMaxImageSize), "largest uncompressed image (0: no limit)")
	case "ls", "list", "rm":
	default:
		fmt.Fprint(stderr, imagesUsage)
		return fmt.Errorf("images: unknown subcommand %q", sub)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	log, err := c.logger(stderr)
	if err != nil {
		return err
	}
	opts := image.Options{Logger: log, KeepUnfinished: true}
	if maxSize != nil {
		if *maxSize == "0" {
			opts.MaxImageSize = -1
		} else if opts.MaxImageSize, err = schemas.ParseMemory(*maxSize); err != nil || opts.MaxImageSize < 1 {
			return fmt.Errorf("--max-image-size %q: want a quantity such as 8Gi, or 0", *maxSize)
		}
	}
	store, err := image.NewStore(filepath.Join(c.dataDir, "images"), opts)
	if err != nil {
		return err
	}
	switch sub {
	case "import":
		if fs.NArg() == 0 {
			return errors.New("images import: give one or more tarballs")
		}
		if *ref != "" && fs.NArg() > 1 {
			return errors.New("images import: --name fits only one tarball")
		}
		for _, f := range fs.Args() {
			imgs, err := store.Import(ctx, f, *ref)
			if err != nil {
				return err
			}
			for _, img := range imgs {
				fmt.Fprintf(stdout, "imported %s %s\n", img.Ref, img.Digest)
			}
		}
		return nil
	case "rm":
		if fs.NArg() == 0 {
			return errors.New("images rm: name one or more images")
		}
		inUse, err := imagesInUse(c.dataDir, log)
		if err != nil {
			return err
		}
		var errs []error
		for _, r := range fs.Args() {
			info, err := store.Remove(r, inUse)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			fmt.Fprintf(stdout, "deleted %s %s\n", strings.Join(info.Refs, ","), info.Digest)
		}
		return errors.Join(errs...)
	default:
		if fs.NArg() > 0 {
			return fmt.Errorf("images ls: unexpected arguments %q", fs.Args())
		}
		list, err := store.List()
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 3, ' ', 0)
		fmt.Fprintln(tw, "IMAGE\tDIGEST\tSIZE\tLAST USED")
		for i := len(list) - 1; i >= 0; i-- { // most recently used first
			img := list[i]
			refs := img.Refs
			if len(refs) == 0 {
				refs = []string{"<none>"}
			}
			for _, r := range refs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r, shortDigest(img.Digest), humanBytes(img.Size),
					time.Since(img.LastUsed).Round(time.Second).String()+" ago")
			}
		}
		return tw.Flush()
	}
}

// imagesInUse returns the image root filesystems of every container of
// every node under dataDir.
func imagesInUse(dataDir string, log *slog.Logger) (map[string]bool, error) {
	dirs, err := filepath.Glob(filepath.Join(dataDir, "nodes", "*", "containers"))
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, d := range dirs {
		rt, err := mkrt.New(d, log)
		if err != nil {
			return nil, err
		}
		list, err := rt.List()
		if err != nil {
			return nil, fmt.Errorf("containers in %s: %w", d, err)
		}
		for _, c := range list {
			r, err := rt.ImageRootfs(c.ID)
			if err != nil && !errors.Is(err, mkrt.ErrNotFound) {
				return nil, err
			}
			if r != "" {
				out[r] = true
			}
		}
		_ = rt.Close()
	}
	return out, nil
}

func shortDigest(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGi", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMi", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKi", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}
