package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDiscovery: flags beat the environment, which beats the config file,
// which beats the data dir's token and the default address.
func TestDiscovery(t *testing.T) {
	for _, k := range []string{"MINIKU_SERVER", "MINIKU_TOKEN", "MINIKU_DATA_DIR", "MINIKU_CA", "MINIKU_CONFIG"} {
		t.Setenv(k, "")
	}
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", home)
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "token"), []byte("tok-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MINIKU_DATA_DIR", data)

	c, err := (&options{}).client()
	if err != nil || c.Server != "http://127.0.0.1:8080" || c.Token != "tok-from-file" {
		t.Fatalf("defaults: %+v %v", c, err)
	}

	if err := os.MkdirAll(filepath.Join(home, "miniku"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "miniku", "config.yaml"), []byte("server: https://10.0.0.1:8443\ntoken: tok-from-config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = (&options{}).client()
	if err != nil || c.Server != "https://10.0.0.1:8443" || c.Token != "tok-from-config" {
		t.Fatalf("config file: %+v %v", c, err)
	}
	t.Setenv("MINIKU_SERVER", "127.0.0.2:9000")
	t.Setenv("MINIKU_TOKEN", "tok-from-env")
	c, err = (&options{}).client()
	if err != nil || c.Server != "http://127.0.0.2:9000" || c.Token != "tok-from-env" {
		t.Fatalf("env: %+v %v", c, err)
	}
	c, err = (&options{server: "h:1", token: "tok-flag"}).client()
	if err != nil || c.Server != "http://h:1" || c.Token != "tok-flag" || c.TokenSource != "--token" {
		t.Fatalf("flags: %+v %v", c, err)
	}
	if _, err := (&options{config: filepath.Join(home, "missing.yaml")}).client(); err == nil {
		t.Fatal("a missing --config was accepted")
	}
	if err := os.WriteFile(filepath.Join(home, "miniku", "config.yaml"), []byte("servr: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (&options{}).client(); err == nil || !strings.Contains(err.Error(), "servr") {
		t.Fatalf("a config file with an unknown key: %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	c, err := (&options{server: "127.0.0.1:1", token: "x"}).client()
	if err != nil {
		t.Fatal(err)
	}
	err = c.Do(context.Background(), "GET", "/pods", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "cannot reach apiserver at http://127.0.0.1:1: is 'miniku up' running?") {
		t.Fatalf("error %v", err)
	}
}

// TestDiscoveryDataDirConfig: the data dir's cli.yaml (written by `miniku
// up`) names the server when no flag, environment or user config does;
// those still win over it.
func TestDiscoveryDataDirConfig(t *testing.T) {
	for _, k := range []string{"MINIKU_SERVER", "MINIKU_TOKEN", "MINIKU_DATA_DIR", "MINIKU_CA", "MINIKU_CONFIG"} {
		t.Setenv(k, "")
	}
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", home)
	data := t.TempDir()
	if err := WriteLocalConfig(data, "http://127.0.0.1:18080", ""); err != nil {
		t.Fatal(err)
	}
	c, err := (&options{dataDir: data}).client()
	if err != nil || c.Server != "http://127.0.0.1:18080" {
		t.Fatalf("data dir cli.yaml: %+v %v", c, err)
	}
	c, err = (&options{dataDir: data, server: "h:1"}).client()
	if err != nil || c.Server != "http://h:1" {
		t.Fatalf("--server over cli.yaml: %+v %v", c, err)
	}
	if err := os.MkdirAll(filepath.Join(home, "miniku"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "miniku", "config.yaml"), []byte("server: http://10.0.0.1:8080\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = (&options{dataDir: data}).client()
	if err != nil || c.Server != "http://10.0.0.1:8080" {
		t.Fatalf("user config over cli.yaml: %+v %v", c, err)
	}
}
