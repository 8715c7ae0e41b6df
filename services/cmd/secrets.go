package cmd

import (
	"fmt"
	"path/filepath"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/encrypt"
)

// secretsKey is the key Secrets are encrypted with in KV,
// <data-dir>/secrets-encryption.key (k3s keeps its own under its data dir
// too), created at the first start. Only the apiserver's connections get
// it: no other component may read the secrets bucket. Apiservers on
// several hosts need the same file.
func secretsKey(dataDir string) (bus.Sealer, error) {
	k, err := encrypt.LoadOrCreate(filepath.Join(dataDir, encrypt.KeyFile))
	if err != nil {
		return nil, fmt.Errorf("secrets encryption: %w", err)
	}
	return k, nil
}
