package encrypt

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func testKey(name string, b byte) Key { return Key{Name: name, Secret: bytes.Repeat([]byte{b}, 32)} }

func TestSealOpen(t *testing.T) {
	a, err := New(testKey("k1", 1))
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("password=hunter2")
	s1, err := a.Seal(plain, []byte("secrets/db"))
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := a.Seal(plain, []byte("secrets/db"))
	if !bytes.HasPrefix(s1, []byte("k8s:enc:aesgcm:v1:k1:")) {
		t.Fatalf("sealed value starts %q", s1[:min(len(s1), 24)])
	}
	if bytes.Contains(s1, []byte("hunter2")) {
		t.Fatal("sealed value holds the plaintext")
	}
	if bytes.Equal(s1, s2) {
		t.Fatal("two seals of one value are equal: the nonce is not fresh")
	}
	got, err := a.Open(s1, []byte("secrets/db"))
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}

	// Moved to another key: refused.
	if _, err := a.Open(s1, []byte("secrets/other")); !errors.Is(err, ErrAuth) {
		t.Fatalf("moved value: %v, want ErrAuth", err)
	}
	// Any changed byte after the prefix, or a truncation: refused.
	for i := len(Prefix) + 3; i < len(s1); i++ {
		bad := bytes.Clone(s1)
		bad[i] ^= 0x40
		if _, err := a.Open(bad, []byte("secrets/db")); err == nil {
			t.Fatalf("value with byte %d changed opened", i)
		}
	}
	for _, n := range []int{0, len(Prefix), len(Prefix) + 3, len(Prefix) + 3 + 11, len(s1) - 1} {
		if _, err := a.Open(s1[:n], []byte("secrets/db")); err == nil {
			t.Fatalf("value cut to %d bytes opened", n)
		}
	}
	if _, err := a.Open(plain, nil); !errors.Is(err, ErrNotSealed) {
		t.Fatalf("plain value: %v, want ErrNotSealed", err)
	}
}

func TestRotation(t *testing.T) {
	old, _ := New(testKey("k1", 1))
	sealed, _ := old.Seal([]byte("x"), nil)
	both, err := New(testKey("k2", 2), testKey("k1", 1))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := both.Open(sealed, nil); err != nil || string(got) != "x" {
		t.Fatalf("old key's value after rotation: %q, %v", got, err)
	}
	fresh, _ := both.Seal([]byte("y"), nil)
	if !bytes.HasPrefix(fresh, []byte(Prefix+"k2:")) {
		t.Fatalf("rotation seals with %q", fresh[:len(Prefix)+3])
	}
	if _, err := old.Open(fresh, nil); !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), `"k2"`) {
		t.Fatalf("unknown key: %v", err)
	}
	if s := fmt.Sprint(both); strings.Contains(s, "\x02") || s != "aesgcm[k2,k1]" {
		t.Fatalf("formatted as %q", s)
	}
	for _, bad := range [][]Key{nil, {testKey("", 1)}, {testKey("a:b", 1)}, {testKey("a", 1), testKey("a", 2)}, {{Name: "short", Secret: []byte("16 bytes of key!")}}} {
		if _, err := New(bad...); err == nil {
			t.Errorf("New(%v) accepted", bad)
		}
	}
}

func TestLoadOrCreate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", KeyFile)
	// Several first starts at once agree on one key.
	var wg sync.WaitGroup
	ciphers := make([]*AESGCM, 8)
	errs := make([]error, 8)
	for i := range ciphers {
		wg.Add(1)
		go func() { defer wg.Done(); ciphers[i], errs[i] = LoadOrCreate(path) }()
	}
	wg.Wait()
	sealed, _ := ciphers[0].Seal([]byte("v"), []byte("k"))
	for i, c := range ciphers {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if _, err := c.Open(sealed, []byte("k")); err != nil {
			t.Fatalf("start %d has another key: %v", i, err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "sub", ".*tmp*")); len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
	// Another data dir's first start names its key differently: values
	// of one are "unknown key" to the other, not forgeries.
	other, err := LoadOrCreate(filepath.Join(t.TempDir(), KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Open(sealed, []byte("k")); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("another data dir's key: %v, want ErrUnknownKey", err)
	}
	// A restart reads the same key.
	again, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.Open(sealed, []byte("k")); err != nil {
		t.Fatal(err)
	}
	// Readable by others: refused.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key file: %v", err)
	}
	// Garbage: a clear error, not a new key over it.
	if err := os.WriteFile(path, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(path); err == nil {
		t.Fatal("garbage key file accepted")
	}
}

func FuzzOpen(f *testing.F) {
	a, _ := New(testKey("k1", 1))
	s, _ := a.Seal([]byte("hello"), []byte("k"))
	f.Add(s)
	f.Add([]byte(Prefix + "k1:"))
	f.Add([]byte(Prefix + "k1"))
	// Any stored value, however garbled, gives an error or its plaintext,
	// never a panic. (Forgery is TestSealOpen's: each fuzz worker would
	// seal the seed under a fresh nonce, so it cannot be compared here.)
	f.Fuzz(func(t *testing.T, data []byte) {
		if p, err := a.Open(data, []byte("k")); err == nil && len(p) > len(data) {
			t.Fatalf("opened %d bytes to %d", len(data), len(p))
		}
	})
}

func BenchmarkSeal(b *testing.B) {
	a, _ := New(testKey("k1", 1))
	for _, size := range []int{1 << 10, 1 << 20} {
		plain := make([]byte, size)
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				s, _ := a.Seal(plain, []byte("secrets/x"))
				if _, err := a.Open(s, []byte("secrets/x")); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
