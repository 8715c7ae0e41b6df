// Package encrypt seals values at rest with AES-256-GCM, in the format of
// kube-apiserver's EncryptionConfiguration aesgcm provider (what k3s's
// --secrets-encryption configures): every stored value is
//
//	k8s:enc:aesgcm:v1:<key name>:<12-byte nonce><ciphertext and tag>
//
// with a fresh random nonce per write and the value's storage key as
// additional data, so a value copied to another key does not open. The
// key name in the prefix lets keys rotate: the first key seals, every key
// opens.
//
// It is its own package, apart from bus, because it is pure crypto and a
// key file: bus only declares the small interface it needs (bus.Sealer),
// and only the process that serves the API is given a key.
//
// Random 96-bit nonces keep the chance of a repeat under 2^-32 for up to
// 2^32 writes under one key (NIST SP 800-38D); Kubernetes documents the
// same bound for aesgcm and asks for rotation well before it. MiniKu writes
// a Secret when a user or Helm does, many orders of magnitude fewer.
package encrypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Prefix starts every sealed value; the key name and ':' follow it.
const Prefix = "k8s:enc:aesgcm:v1:"

// KeyFile is the key file's name in a data directory.
const KeyFile = "secrets-encryption.key"

// Errors Open returns, wrapped with what it was opening.
var (
	// ErrNotSealed: the value does not start with Prefix (stored in
	// clear, or by something else).
	ErrNotSealed = errors.New("value is not encrypted (no " + Prefix + " prefix)")
	// ErrUnknownKey: sealed under a key this process does not have (a
	// lost or replaced key file); the value may be fine.
	ErrUnknownKey = errors.New("value is encrypted with an unknown key")
	// ErrAuth: the value does not authenticate: it was changed, truncated,
	// or moved from another storage key.
	ErrAuth = errors.New("value does not authenticate (tampered with, or moved from another key)")
)

const nonceSize = 12

type key struct {
	name string
	aead cipher.AEAD
}

// AESGCM seals with its first key and opens with any of them. It holds no
// key bytes in a printable field: formatting it shows only key names.
type AESGCM struct {
	keys []key
}

// Key is one named 256-bit key.
type Key struct {
	Name   string
	Secret []byte
}

// New builds an AESGCM from keys; the first one seals. Names must be
// non-empty, without ':', and unique.
func New(keys ...Key) (*AESGCM, error) {
	if len(keys) == 0 {
		return nil, errors.New("encrypt: no key")
	}
	a := &AESGCM{}
	seen := map[string]bool{}
	for _, k := range keys {
		if k.Name == "" || strings.ContainsAny(k.Name, ": \t\r\n") || seen[k.Name] {
			return nil, fmt.Errorf("encrypt: invalid or duplicate key name %q", k.Name)
		}
		seen[k.Name] = true
		if len(k.Secret) != 32 {
			return nil, fmt.Errorf("encrypt: key %s is %d bytes, want 32 (AES-256)", k.Name, len(k.Secret))
		}
		block, err := aes.NewCipher(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("encrypt: key %s: %w", k.Name, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("encrypt: key %s: %w", k.Name, err)
		}
		a.keys = append(a.keys, key{name: k.Name, aead: aead})
	}
	return a, nil
}

// String names the keys, never their bytes.
func (a *AESGCM) String() string {
	names := make([]string, len(a.keys))
	for i, k := range a.keys {
		names[i] = k.name
	}
	return "aesgcm[" + strings.Join(names, ",") + "]"
}

// Seal encrypts plaintext under the first key, bound to additional (the
// storage key).
func (a *AESGCM) Seal(plaintext, additional []byte) ([]byte, error) {
	k := a.keys[0]
	prefix := Prefix + k.name + ":"
	out := make([]byte, len(prefix)+nonceSize, len(prefix)+nonceSize+len(plaintext)+k.aead.Overhead())
	copy(out, prefix)
	nonce := out[len(prefix):]
	// crypto/rand.Read never fails: it panics if the kernel has no
	// randomness, rather than returning a weak nonce.
	_, _ = rand.Read(nonce)
	return k.aead.Seal(out, nonce, plaintext, additional), nil
}

// Open decrypts what Seal wrote for the same additional data.
func (a *AESGCM) Open(stored, additional []byte) ([]byte, error) {
	if !bytes.HasPrefix(stored, []byte(Prefix)) {
		return nil, ErrNotSealed
	}
	rest := stored[len(Prefix):]
	i := bytes.IndexByte(rest, ':')
	if i < 0 {
		return nil, fmt.Errorf("%w: no key name", ErrAuth)
	}
	name, body := string(rest[:i]), rest[i+1:]
	for _, k := range a.keys {
		if k.name != name {
			continue
		}
		if len(body) < nonceSize+k.aead.Overhead() {
			return nil, fmt.Errorf("%w: %d bytes is too short", ErrAuth, len(body))
		}
		plain, err := k.aead.Open(nil, body[:nonceSize], body[nonceSize:], additional)
		if err != nil {
			return nil, ErrAuth
		}
		return plain, nil
	}
	return nil, fmt.Errorf("%w %q (have %s)", ErrUnknownKey, name, a)
}

// keyFile is the key file's JSON: a list of keys, the first one sealing,
// as EncryptionConfiguration's aesgcm provider lists them.
type keyFile struct {
	Keys []struct {
		Name   string `json:"name"`
		Secret string `json:"secret"` // base64 of 32 bytes
	} `json:"keys"`
}

// LoadOrCreate reads the key file at path, creating it with one new random
// key if it does not exist. The file is created whole or not at all (a
// temp file linked into place, which fails if another process created it
// first: then its key is used), mode 0600; a file others can read is
// refused, like an ssh private key.
func LoadOrCreate(path string) (*AESGCM, error) {
	a, err := Load(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return a, err
	}
	if err := create(path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create secrets encryption key %s: %w", path, err)
	}
	return Load(path)
}

// Load reads the key file at path.
func Load(path string) (*AESGCM, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secrets encryption key %s has mode %v: other users could read it; chmod 600 it", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var kf keyFile
	if err := json.Unmarshal(data, &kf); err != nil {
		return nil, fmt.Errorf("secrets encryption key %s: %w", path, err)
	}
	keys := make([]Key, 0, len(kf.Keys))
	for _, k := range kf.Keys {
		secret, err := base64.StdEncoding.DecodeString(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("secrets encryption key %s: key %q: not base64", path, k.Name)
		}
		keys = append(keys, Key{Name: k.Name, Secret: secret})
	}
	a, err := New(keys...)
	if err != nil {
		return nil, fmt.Errorf("secrets encryption key %s: %w", path, err)
	}
	return a, nil
}

func create(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	// A random name: two apiservers that each created their own key (a
	// file not copied between hosts) then see each other's values as
	// sealed under an unknown key — kept — not as forgeries, which the
	// API may delete.
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	var kf keyFile
	kf.Keys = append(kf.Keys, struct {
		Name   string `json:"name"`
		Secret string `json:"secret"`
	}{Name: "key-" + hex.EncodeToString(id), Secret: base64.StdEncoding.EncodeToString(secret)})
	data, err := json.Marshal(kf)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// Link, not rename: two first starts at once must not each replace
	// the other's key after one of them has sealed with it.
	return os.Link(tmp.Name(), path)
}
