package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sys/unix"
)

// Config is the part of an image's config the runtime uses to start a process.
type Config struct {
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
	User       string   `json:"user,omitempty"`
}

// Image is a pulled, unpacked image.
type Image struct {
	// Ref is the normalised reference as pulled, e.g.
	// "index.docker.io/library/alpine:latest"; never the mirror's name.
	Ref string
	// Digest is the digest of the platform image manifest ("sha256:..."); for a
	// multi-arch tag it is the linux/GOARCH entry's, not the index's.
	Digest string
	// Rootfs is shared by every container of the image and must not be written
	// to; containers get their own writable layer on top.
	Rootfs string
	Config Config
}

// Options configures a Store.
type Options struct {
	// Mirror, like dockerd's registry-mirrors, serves every docker.io pull:
	// "http://127.0.0.1:5000" (plain http) or "https://mirror.example". There
	// is no fallback to Docker Hub when the mirror fails.
	Mirror string
	// MaxImageSize bounds the uncompressed size of one image; zero means
	// DefaultMaxImageSize, negative means no limit.
	MaxImageSize int64
	// GCMinAge spares images used more recently from CollectImages; zero
	// means DefaultGCMinAge, negative none.
	GCMinAge time.Duration
	// KeepUnfinished opens a store another process (a running node) may be
	// unpacking into: its unfinished unpacks are not swept away.
	KeepUnfinished bool
	Logger         *slog.Logger
}

const (
	tmpPrefix  = ".tmp-"
	refsDir    = "refs"
	configFile = "config.json"
	rootfsDir  = "rootfs"
)

// Store pulls images into a directory. It is safe for concurrent use; one
// process must own the directory.
type Store struct {
	root           string
	mirrorHost     string
	mirrorInsecure bool
	maxSize        int64 // 0: no limit
	gcMinAge       time.Duration
	log            *slog.Logger

	mu       sync.Mutex
	inflight map[string]*unpackCall // by digest hex

	unpacks atomic.Int64 // for tests: how many unpacks started
}

// unpackCall lets concurrent pulls of one digest wait for a single unpack.
type unpackCall struct {
	done chan struct{}
	cfg  Config
	err  error
}

// NewStore opens or creates the image store at root (<data-dir>/images) and
// removes unpacks left behind by a crash.
func NewStore(root string, opts Options) (*Store, error) {
	s := &Store{root: root, log: opts.Logger, inflight: map[string]*unpackCall{}}
	switch {
	case opts.MaxImageSize == 0:
		s.maxSize = DefaultMaxImageSize
	case opts.MaxImageSize > 0:
		s.maxSize = opts.MaxImageSize
	}
	switch {
	case opts.GCMinAge == 0:
		s.gcMinAge = DefaultGCMinAge
	case opts.GCMinAge > 0:
		s.gcMinAge = opts.GCMinAge
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "image")
	if opts.Mirror != "" {
		host, insecure, err := parseMirror(opts.Mirror)
		if err != nil {
			return nil, fmt.Errorf("image store: registry mirror %q: %w", opts.Mirror, err)
		}
		s.mirrorHost, s.mirrorInsecure = host, insecure
	}
	// 0700: images are untrusted and may hold setuid binaries; host users
	// have no business reaching them.
	if err := os.MkdirAll(filepath.Join(root, refsDir), 0o700); err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	for _, dir := range []string{root, filepath.Join(root, refsDir)} {
		if opts.KeepUnfinished {
			break
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), tmpPrefix) {
				if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
					return nil, fmt.Errorf("image store: remove unfinished %s: %w", e.Name(), err)
				}
			}
		}
	}
	return s, nil
}

func parseMirror(mirror string) (host string, insecure bool, err error) {
	if !strings.Contains(mirror, "://") {
		mirror = "https://" + mirror
	}
	u, err := url.Parse(mirror)
	if err != nil {
		return "", false, err
	}
	switch u.Scheme {
	case "http":
		insecure = true
	case "https":
	default:
		return "", false, fmt.Errorf("scheme %q: want http or https", u.Scheme)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", false, errors.New("want scheme://host[:port] only")
	}
	if _, err := name.NewRegistry(u.Host); err != nil {
		return "", false, err
	}
	return u.Host, insecure, nil
}

// Pull returns the image ref names, following Kubernetes' default
// imagePullPolicy: a digest or a tag other than "latest" that is already in
// the store (pulled or imported) is used as it is, without asking a registry
// (IfNotPresent); ":latest" or no tag is resolved at the registry every time
// (Always) and unpacked unless that digest is already unpacked. If the
// registry cannot be reached but ref was pulled before, the cached image is
// returned with a warning, so nodes keep starting pods through a registry
// outage.
func (s *Store) Pull(ctx context.Context, ref string) (Image, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return Image{}, fmt.Errorf("%w: pull %s: %w", ErrImagePull, ref, err)
	}
	img, err := s.pull(ctx, r)
	if err != nil {
		return Image{}, fmt.Errorf("%w: pull %s: %w", ErrImagePull, r.Name(), err)
	}
	return img, nil
}

func (s *Store) pull(ctx context.Context, r name.Reference) (Image, error) {
	log := s.log.With("ref", r.Name())
	if ifNotPresent(r) {
		if img, err := s.cached(r); err == nil {
			log.Debug("image present, not pulling", "digest", img.Digest)
			return img, nil
		}
	}
	src, err := s.source(r)
	if err != nil {
		return Image{}, err
	}
	rimg, err := remote.Image(src,
		remote.WithContext(ctx),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}),
	)
	if err != nil {
		if ctx.Err() != nil || !unreachable(err) {
			return Image{}, err
		}
		img, cerr := s.cached(r)
		if cerr != nil {
			return Image{}, err
		}
		log.Warn("registry unreachable, using the image pulled before", "digest", img.Digest, "err", err)
		return img, nil
	}
	d, err := rimg.Digest()
	if err != nil {
		return Image{}, fmt.Errorf("manifest digest: %w", err)
	}
	cfg, err := s.ensure(ctx, d, rimg, log)
	if err != nil {
		return Image{}, err
	}
	if err := s.saveRef(r.Name(), d); err != nil {
		// The image is usable; only the outage fallback is lost.
		log.Warn("record pulled digest", "err", err)
	}
	return Image{Ref: r.Name(), Digest: d.String(), Rootfs: s.rootfs(d.Hex), Config: cfg}, nil
}

// ifNotPresent is Kubernetes' default pull policy: IfNotPresent unless the
// tag is latest (or implied).
func ifNotPresent(r name.Reference) bool {
	if _, ok := r.(name.Digest); ok {
		return true
	}
	return r.Identifier() != "latest"
}

// source points docker.io references at the mirror, keeping the repository
// path and tag or digest.
func (s *Store) source(r name.Reference) (name.Reference, error) {
	if s.mirrorHost == "" || r.Context().RegistryStr() != name.DefaultRegistry {
		return r, nil
	}
	var opts []name.Option
	if s.mirrorInsecure {
		opts = append(opts, name.Insecure)
	}
	repo := s.mirrorHost + "/" + r.Context().RepositoryStr()
	if d, ok := r.(name.Digest); ok {
		return name.NewDigest(repo+"@"+d.DigestStr(), opts...)
	}
	return name.NewTag(repo+":"+r.Identifier(), opts...)
}

// unreachable reports whether err means the registry could not give an
// answer, as opposed to answering "no" (not found, unauthorized), which must
// not be papered over with a stale image.
func unreachable(err error) bool {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return true
	}
	return terr.StatusCode >= 500 || terr.StatusCode == http.StatusTooManyRequests
}

// ensure returns the config of the unpacked image d, unpacking it first unless
// it is on disk; concurrent callers for one digest share a single unpack.
func (s *Store) ensure(ctx context.Context, d v1.Hash, rimg v1.Image, log *slog.Logger) (Config, error) {
	for {
		s.mu.Lock()
		c, busy := s.inflight[d.Hex]
		if !busy {
			// Checked under the lock so a pull cannot miss an unpack that
			// finished between the check and registering its own.
			cfg, err := s.loadConfig(d.Hex)
			if err == nil {
				s.touch(d.Hex)
			}
			if err == nil || !errors.Is(err, fs.ErrNotExist) {
				s.mu.Unlock()
				return cfg, err
			}
			c = &unpackCall{done: make(chan struct{})}
			s.inflight[d.Hex] = c
			s.mu.Unlock()

			c.cfg, c.err = s.unpackImage(ctx, d, rimg, log)
			s.mu.Lock()
			delete(s.inflight, d.Hex)
			s.mu.Unlock()
			close(c.done)
			return c.cfg, c.err
		}
		s.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return Config{}, ctx.Err()
		}
		if c.err == nil {
			return c.cfg, nil
		}
		// The unpacking caller gave up; that is no reason for this one to.
		if (errors.Is(c.err, context.Canceled) || errors.Is(c.err, context.DeadlineExceeded)) && ctx.Err() == nil {
			continue
		}
		return Config{}, c.err
	}
}

func (s *Store) unpackImage(ctx context.Context, d v1.Hash, rimg v1.Image, log *slog.Logger) (Config, error) {
	s.unpacks.Add(1)
	log = log.With("digest", d.String())
	log.Info("unpacking image")

	cf, err := rimg.ConfigFile()
	if err != nil {
		return Config{}, fmt.Errorf("image config: %w", err)
	}
	cfg := Config{
		Entrypoint: cf.Config.Entrypoint,
		Cmd:        cf.Config.Cmd,
		Env:        cf.Config.Env,
		WorkingDir: cf.Config.WorkingDir,
		User:       cf.Config.User,
	}

	tmp, err := os.MkdirTemp(s.root, tmpPrefix+d.Hex+"-")
	if err != nil {
		return Config{}, err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	rootfs := filepath.Join(tmp, rootfsDir)
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return Config{}, err
	}

	rc := mutate.Extract(rimg)
	defer rc.Close()
	var stream io.Reader = rc
	if s.maxSize > 0 {
		stream = &capReader{r: rc, max: s.maxSize}
	}
	if err := unpack(stream, rootfs, log); err != nil {
		return Config{}, fmt.Errorf("unpack %s: %w", d, err)
	}
	// Extract reports a layer whose content does not match its digest only
	// after writing the end of the tar stream, so read to the very end.
	if _, err := io.Copy(io.Discard, stream); err != nil {
		return Config{}, fmt.Errorf("unpack %s: %w", d, err)
	}
	if err := ctx.Err(); err != nil {
		return Config{}, err
	}

	data, err := json.Marshal(cfg)
	if err != nil {
		return Config{}, err
	}
	if err := os.WriteFile(filepath.Join(tmp, configFile), data, 0o600); err != nil {
		return Config{}, err
	}
	// The rename below is the commit point; without this a power loss could
	// leave a complete-looking directory with empty files in it.
	if err := syncFS(tmp); err != nil {
		return Config{}, err
	}
	final := filepath.Join(s.root, d.Hex)
	if err := os.Rename(tmp, final); err != nil {
		if _, serr := os.Stat(filepath.Join(final, configFile)); serr == nil {
			// Someone else (another process on the same root) finished first.
			return s.loadConfig(d.Hex)
		}
		return Config{}, err
	}
	if err := syncDir(s.root); err != nil {
		log.Warn("sync image store directory", "err", err)
	}
	log.Info("image unpacked")
	return cfg, nil
}

func (s *Store) rootfs(hex string) string {
	return filepath.Join(s.root, hex, rootfsDir)
}

// loadConfig reads an unpacked image's config; fs.ErrNotExist means the
// digest is not unpacked.
func (s *Store) loadConfig(hex string) (Config, error) {
	data, err := os.ReadFile(filepath.Join(s.root, hex, configFile))
	if err != nil {
		return Config{}, err
	}
	var cfg Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		return Config{}, fmt.Errorf("image %s config: %w", hex, err)
	}
	return cfg, nil
}

// refFile names the digest record of a reference. '/' cannot occur in a
// reference otherwise, so replacing it with '+' keeps names distinct; very
// long references are hashed to stay under NAME_MAX.
func (s *Store) refFile(ref string) string {
	f := strings.ReplaceAll(ref, "/", "+")
	if len(f) > 200 {
		sum := sha256.Sum256([]byte(ref))
		f = "sha256-" + hex.EncodeToString(sum[:])
	}
	return filepath.Join(s.root, refsDir, f)
}

func (s *Store) saveRef(ref string, d v1.Hash) error {
	dst := s.refFile(ref)
	f, err := os.CreateTemp(filepath.Dir(dst), tmpPrefix)
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	// The reference is kept too (after the digest, which older readers
	// take alone): a hashed file name cannot be read back.
	_, err = f.WriteString(d.String() + "\n" + ref + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), dst)
}

// cached returns the image last pulled or imported for r, or the digest r
// names, if it is unpacked.
func (s *Store) cached(r name.Reference) (Image, error) {
	var d v1.Hash
	var err error
	if dr, ok := r.(name.Digest); ok {
		d, err = v1.NewHash(dr.DigestStr())
	} else {
		var data []byte
		if data, err = os.ReadFile(s.refFile(r.Name())); err != nil {
			return Image{}, err
		}
		first, _, _ := strings.Cut(string(data), "\n")
		d, err = v1.NewHash(strings.TrimSpace(first))
	}
	if err != nil {
		return Image{}, err
	}
	s.mu.Lock()
	cfg, err := s.loadConfig(d.Hex)
	if err == nil {
		s.touch(d.Hex)
	}
	s.mu.Unlock()
	if err != nil {
		return Image{}, err
	}
	return Image{Ref: r.Name(), Digest: d.String(), Rootfs: s.rootfs(d.Hex), Config: cfg}, nil
}

func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return &os.PathError{Op: "syncfs", Path: dir, Err: err}
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
