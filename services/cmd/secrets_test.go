package cmd

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/encrypt"
)

// Only the apiserver's connection gets the secrets key, from the data dir.
func TestSecretsKeyOnlyForTheAPIServer(t *testing.T) {
	dir := t.TempDir()
	for _, role := range []string{bus.UserScheduler, bus.UserController, bus.KubeletUser("n")} {
		c := common{role: role, dataDir: dir}
		o, err := c.busOptions(slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if o.SecretsKey != nil {
			t.Fatalf("%s got the secrets key", role)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, encrypt.KeyFile)); !os.IsNotExist(err) {
		t.Fatalf("key file created for other roles: %v", err)
	}
	c := common{role: bus.UserAPIServer, dataDir: dir}
	o, err := c.busOptions(slog.New(slog.DiscardHandler))
	if err != nil || o.SecretsKey == nil {
		t.Fatalf("apiserver: key %v, %v", o.SecretsKey, err)
	}
	fi, err := os.Stat(filepath.Join(dir, encrypt.KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", fi, err)
	}
	// The next start seals and opens with the same key.
	o2, _ := c.busOptions(slog.New(slog.DiscardHandler))
	sealed, _ := o.SecretsKey.Seal([]byte("v"), []byte("k"))
	if _, err := o2.SecretsKey.Open(sealed, []byte("k")); err != nil {
		t.Fatalf("key changed across starts: %v", err)
	}
}
