//go:build linux

package cmd

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/miniku/miniku/bus"
	"github.com/miniku/miniku/bus/pki"
	"github.com/miniku/miniku/services/apiserver"
)

// TLS by default: `up`, `nats` and `apiserver` serve NATS and the HTTPS
// API with certificates from the data dir's CA (bus/pki), and every
// component trusts that CA, so passwords and tokens never cross even
// loopback in clear.

// serverCert is the serving certificate called name for the listen
// addresses, signed by the data dir's CA (both created as needed).
func serverCert(dataDir, name string, addrs ...string) (certFile, keyFile string, err error) {
	certFile, keyFile, err = pki.EnsureServerCert(dataDir, name, pki.Hosts(addrs...), time.Now())
	if err != nil {
		return "", "", fmt.Errorf("%s TLS certificate: %w", name, err)
	}
	return certFile, keyFile, nil
}

// natsTLS picks the NATS server's certificate: the one given, else one
// from the data dir's CA. ca is what clients should trust: the CA, or for
// a given certificate the certificate itself (right when self-signed).
func natsTLS(dataDir, addr, tlsCert, tlsKey string) (cert, key, ca string, err error) {
	if tlsCert != "" || tlsKey != "" {
		return tlsCert, tlsKey, tlsCert, nil
	}
	cert, key, err = serverCert(dataDir, "nats", addr)
	return cert, key, pki.CAPath(dataDir), err
}

// natsCAFile is the CA a component trusts for NATS: --nats-ca, else the
// data dir's CA when there is one (a component on the NATS server's host).
// With a CA the connection must be TLS (bus.Options.TLSCA).
func (c *common) natsCAFile() string {
	if c.natsCA != "" || c.dataDir == "" {
		return c.natsCA
	}
	if p := pki.CAPath(c.dataDir); fileExists(p) {
		return p
	}
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func loopbackAddr(addr string) bool {
	h, _, err := net.SplitHostPort(addr)
	return err == nil && bus.IsLoopback(h)
}

// urlOf is scheme://addr, or "" for no address (a listener turned off).
func urlOf(scheme, addr string) string {
	if addr == "" {
		return ""
	}
	return scheme + "://" + addr
}

// upKubeconfig writes <data-dir>/kubeconfig for up's HTTPS API, trusting
// the data dir's CA (or a --tls-cert, right when self-signed), or removes
// a stale one when up serves no HTTPS: kubectl sends no token over plain
// HTTP. A port only known once bound (":0") gets none. Failing to write it
// is logged, not fatal: the API and the miniku CLI work without it.
func upKubeconfig(dataDir string, cfg apiserver.Config, tlsCert string, log *slog.Logger) {
	path := filepath.Join(dataDir, KubeconfigName)
	server, _ := cliTarget(dataDir, "", cfg.HTTPSAddr, tlsCert)
	if cfg.HTTPSAddr == "" || server == "" {
		if err := os.Remove(path); err == nil {
			log.Info("removed the kubeconfig of an earlier start: no HTTPS address to put in it", "path", path)
		}
		return
	}
	caFile := tlsCert
	if caFile == "" {
		caFile = pki.CAPath(dataDir)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		log.Warn("no kubeconfig written", "err", err)
		return
	}
	if path, err = writeKubeconfig(dataDir, server, caPEM, cfg.Token); err != nil {
		log.Warn("no kubeconfig written", "err", err)
		return
	}
	log.Info("kubeconfig for kubectl, client-go and Helm", "path", path, "example", "KUBECONFIG="+path+" kubectl get --raw /readyz")
}
