//go:build linux

package cmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miniku/miniku/runtime/image"
	"github.com/miniku/miniku/schemas"
	"github.com/miniku/miniku/services/kubelet"
)

// evictFlags are a kubelet's eviction thresholds, image GC levels and image
// size limit, named after the kubelet's own flags.
type evictFlags struct {
	hard, maxImageSize *string
	gcHigh, gcLow      *int
	transition, every  *time.Duration
	gcMinAge           *time.Duration
}

const defaultEvictionHard = "memory.available<100Mi,nodefs.available<10%"

func evictionFlags(fs *flag.FlagSet) evictFlags {
	return evictFlags{
		hard: fs.String("eviction-hard", defaultEvictionHard,
			"hard eviction thresholds: memory.available<QUANTITY and nodefs.available<PERCENT% (of the data dir's filesystem); empty: none"),
		maxImageSize: fs.String("max-image-size", schemas.FormatMemory(image.DefaultMaxImageSize),
			"largest uncompressed size of one image; a pull or import past it fails (0: no limit)"),
		gcHigh: fs.Int("image-gc-high-threshold", kubelet.DefaultImageGCHighPercent,
			"disk use (percent of the data dir's filesystem) at which unused images are collected (100: never)"),
		gcLow: fs.Int("image-gc-low-threshold", kubelet.DefaultImageGCLowPercent,
			"disk use (percent) image collection brings the filesystem down to"),
		transition: fs.Duration("eviction-pressure-transition-period", kubelet.DefaultPressureTransition,
			"how long a node pressure condition stays True after the pressure was last seen"),
		every: fs.Duration("eviction-monitoring-interval", kubelet.DefaultEvictionMonitorInterval,
			"how often the kubelet measures memory and disk for eviction"),
		gcMinAge: fs.Duration("image-minimum-gc-age", image.DefaultGCMinAge,
			"an image used more recently than this is never collected"),
	}
}

// config checks the flags and returns the kubelet's eviction config and the
// image store's limits (Mirror and Logger left to the caller).
func (f evictFlags) config() (kubelet.EvictionConfig, image.Options, error) {
	cfg, size, err := f.kubeletConfig()
	if err != nil {
		return cfg, image.Options{}, err
	}
	if *f.gcMinAge <= 0 {
		return cfg, image.Options{}, errors.New("--image-minimum-gc-age must be positive")
	}
	return cfg, image.Options{MaxImageSize: size, GCMinAge: *f.gcMinAge}, nil
}

func (f evictFlags) kubeletConfig() (kubelet.EvictionConfig, int64, error) {
	cfg := kubelet.EvictionConfig{
		ImageGCHighPercent: float64(*f.gcHigh), ImageGCLowPercent: float64(*f.gcLow),
		PressureTransition: *f.transition, Interval: *f.every,
	}
	var err error
	if cfg.MemoryAvailable, cfg.NodefsAvailablePercent, err = parseEvictionHard(*f.hard); err != nil {
		return cfg, 0, fmt.Errorf("--eviction-hard: %w", err)
	}
	if *f.gcHigh < 1 || *f.gcHigh > 100 || *f.gcLow < 0 || *f.gcLow >= *f.gcHigh {
		return cfg, 0, errors.New("--image-gc-low-threshold and --image-gc-high-threshold: want 0 <= low < high <= 100")
	}
	if *f.transition <= 0 || *f.every <= 0 {
		return cfg, 0, errors.New("--eviction-pressure-transition-period and --eviction-monitoring-interval must be positive")
	}
	size := int64(-1)
	if *f.maxImageSize != "0" {
		if size, err = schemas.ParseMemory(*f.maxImageSize); err != nil || size < 1 {
			return cfg, 0, fmt.Errorf("--max-image-size %q: want a quantity such as 8Gi, or 0 for no limit", *f.maxImageSize)
		}
	}
	return cfg, size, nil
}

// parseEvictionHard reads "memory.available<100Mi,nodefs.available<10%".
// A signal left out is not checked.
func parseEvictionHard(s string) (memory int64, nodefsPercent float64, err error) {
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		signal, value, ok := strings.Cut(part, "<")
		if !ok {
			return 0, 0, fmt.Errorf("%q: want signal<value", part)
		}
		switch strings.TrimSpace(signal) {
		case "memory.available":
			if memory, err = schemas.ParseMemory(strings.TrimSpace(value)); err != nil || memory < 0 {
				return 0, 0, fmt.Errorf("%q: want a quantity such as 100Mi", part)
			}
		case "nodefs.available":
			p, perr := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(value), "%"), 64)
			if !strings.HasSuffix(strings.TrimSpace(value), "%") || perr != nil || p < 0 || p >= 100 {
				return 0, 0, fmt.Errorf("%q: want a percentage such as 10%%", part)
			}
			nodefsPercent = p
		default:
			return 0, 0, fmt.Errorf("%q: unknown signal %q (memory.available, nodefs.available)", part, signal)
		}
	}
	return memory, nodefsPercent, nil
}

// sharedImageGC lets the kubelets of `miniku up`, which share one image
// store, collect images without removing one another's: each collection
// spares the images every kubelet's containers use.
type sharedImageGC struct {
	store *image.Store
	mu    sync.Mutex
	users []*kubelet.Kubelet
}

func (g *sharedImageGC) add(k *kubelet.Kubelet) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.users = append(g.users, k)
}

func (g *sharedImageGC) CollectImages(ctx context.Context, bytes int64, inUse map[string]bool) (int64, error) {
	g.mu.Lock()
	users := append([]*kubelet.Kubelet(nil), g.users...)
	g.mu.Unlock()
	all := map[string]bool{}
	for r := range inUse {
		all[r] = true
	}
	for _, k := range users {
		used, err := k.ImagesInUse()
		if err != nil {
			// Not knowing what another node uses, collect nothing.
			return 0, fmt.Errorf("images in use: %w", err)
		}
		for r := range used {
			all[r] = true
		}
	}
	return g.store.CollectImages(ctx, bytes, all)
}

var _ kubelet.ImageCollector = (*sharedImageGC)(nil)
