// Package pki keeps a data dir's certificate authority and the serving
// certificates it signs, as k3s does: the CA is created once at first start
// and kept, serving certificates are re-issued when they near expiry or
// their host names change. Clients trust the CA's certificate
// (CAPath) and nothing else.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/miniku/miniku/bus"
)

const (
	// CAValidity is the CA's lifetime (k3s: 10 years). MiniKu does not
	// rotate it: a new CA means handing every client its certificate again.
	CAValidity = 10 * 365 * 24 * time.Hour
	// ServerValidity is a serving certificate's lifetime (k3s: a year).
	ServerValidity = 365 * 24 * time.Hour
	// RenewBefore: a serving certificate closer than this to its expiry
	// is re-issued at the next start (k3s renews 90 days ahead).
	RenewBefore = 90 * 24 * time.Hour
)

// Dir is where the data dir keeps the CA and serving certificates.
func Dir(dataDir string) string { return filepath.Join(dataDir, "tls") }

// CAPath is the CA certificate clients pass (curl --cacert, --nats-ca,
// miniku --ca).
func CAPath(dataDir string) string { return filepath.Join(Dir(dataDir), "ca.crt") }

// caKeyPath holds the CA's private key followed by its certificate: one
// file, so that two processes starting on one data dir at once cannot end
// up with a key from one and a certificate from the other (ensureCA).
func caKeyPath(dataDir string) string { return filepath.Join(Dir(dataDir), "ca.key") }

// ServerPaths are the certificate and key files of the serving
// certificate called name ("nats", "apiserver").
func ServerPaths(dataDir, name string) (certFile, keyFile string) {
	return filepath.Join(Dir(dataDir), name+".crt"), filepath.Join(Dir(dataDir), name+".key")
}

// CA is a loaded certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// EnsureCA returns the data dir's CA, creating it (ECDSA P-256, mode 0600
// for the key) if there is none yet. The CA certificate at CAPath is
// rewritten from the key file when missing or different.
func EnsureCA(dataDir string, now time.Time) (*CA, error) {
	dir := Dir(dataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create tls dir: %w", err)
	}
	keyPath := caKeyPath(dataDir)
	data, err := readPrivate(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		data, err = createCA(keyPath, now)
	}
	if err != nil {
		return nil, err
	}
	ca, certPEM, err := parseCA(keyPath, data)
	if err != nil {
		return nil, err
	}
	if cur, err := os.ReadFile(CAPath(dataDir)); err != nil || !bytes.Equal(cur, certPEM) {
		if err := bus.WriteFileAtomic(CAPath(dataDir), certPEM, 0o644); err != nil {
			return nil, fmt.Errorf("write CA certificate: %w", err)
		}
	}
	return ca, nil
}

// createCA writes a new CA into keyPath unless another process has just
// done so, and returns what keyPath holds then. os.Link never replaces an
// existing file, so the first writer wins and everyone uses its CA.
func createCA(keyPath string, now time.Time) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		// k3s names its CA "k3s-server-ca@<unix time>": the time tells
		// one CA from the next after a data dir is wiped.
		Subject:               pkix.Name{CommonName: fmt.Sprintf("miniku-ca@%d", now.Unix())},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	data := append(keyPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	tmp, err := os.CreateTemp(filepath.Dir(keyPath), ".ca.key.tmp*")
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := writeAll(tmp, data); err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	if err := os.Link(tmp.Name(), keyPath); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create CA: %w", err)
		}
		return readPrivate(keyPath)
	}
	return data, nil
}

func writeAll(f *os.File, data []byte) error {
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readPrivate reads a key file, refusing one other users could read.
func readPrivate(path string) ([]byte, error) {
	if err := bus.CheckPrivate(path); err != nil {
		return nil, err
	}
	return os.ReadFile(path)
}

func parseCA(path string, data []byte) (*CA, []byte, error) {
	var (
		key     crypto.Signer
		certPEM []byte
		cert    *x509.Certificate
	)
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch b.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("CA %s: key: %w", path, err)
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, nil, fmt.Errorf("CA %s: key of type %T cannot sign", path, k)
			}
			key = s
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("CA %s: certificate: %w", path, err)
			}
			cert, certPEM = c, pem.EncodeToMemory(b)
		}
	}
	if key == nil || cert == nil {
		return nil, nil, fmt.Errorf("CA %s: want a PRIVATE KEY and a CERTIFICATE block; delete the tls directory to make a new CA (every client then needs the new ca.crt)", path)
	}
	if !cert.IsCA {
		return nil, nil, fmt.Errorf("CA %s: the certificate is not a CA", path)
	}
	return &CA{Cert: cert, Key: key}, certPEM, nil
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func serial() *big.Int {
	// 128 random bits, as the CA/Browser forum asks for at least 64.
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	return n.Add(n, big.NewInt(1))
}

// EnsureServerCert returns the files of the serving certificate called
// name for hosts (IP addresses and DNS names), signed by the data dir's CA
// (created if missing). The files on disk are kept while they are signed
// by this CA, name exactly hosts, and have more than RenewBefore left;
// otherwise a new key and certificate replace them.
func EnsureServerCert(dataDir, name string, hosts []string, now time.Time) (certFile, keyFile string, err error) {
	ca, err := EnsureCA(dataDir, now)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = ServerPaths(dataDir, name)
	ips, dns := splitHosts(hosts)
	if current(ca, certFile, keyFile, ips, dns, now) {
		return certFile, keyFile, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("generate %s key: %w", name, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "miniku-" + name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(ServerValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// Client auth too: a NATS server presents the same certificate
		// when it dials another's route listener, which verifies it.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: ips,
		DNSNames:    dns,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return "", "", fmt.Errorf("sign %s certificate: %w", name, err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return "", "", err
	}
	// The key first: a crash between the two writes leaves a pair that
	// does not match, which current() rejects at the next start.
	if err := bus.WriteFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("write %s key: %w", name, err)
	}
	if err := bus.WriteFileAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", fmt.Errorf("write %s certificate: %w", name, err)
	}
	return certFile, keyFile, nil
}

// current reports whether the certificate on disk can be kept.
func current(ca *CA, certFile, keyFile string, ips []net.IP, dns []string, now time.Time) bool {
	keyPEM, err := readPrivate(keyFile)
	if err != nil {
		return false
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return false
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || cert.CheckSignatureFrom(ca.Cert) != nil {
		return false
	}
	if now.Add(RenewBefore).After(cert.NotAfter) || now.Before(cert.NotBefore) {
		return false
	}
	// Certificates issued before routes were verified lack client auth.
	if !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return false
	}
	return sameIPs(cert.IPAddresses, ips) && slices.Equal(sorted(cert.DNSNames), sorted(dns))
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

func sameIPs(a, b []net.IP) bool {
	str := func(ips []net.IP) []string {
		out := make([]string, len(ips))
		for i, ip := range ips {
			out[i] = ip.String()
		}
		return sorted(out)
	}
	return slices.Equal(str(a), str(b))
}

func splitHosts(hosts []string) (ips []net.IP, dns []string) {
	seen := map[string]bool{}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, strings.ToLower(h))
		}
	}
	return ips, dns
}

// Hosts are the names a serving certificate for listen addresses (host:port)
// needs: loopback (127.0.0.1, ::1, localhost), this machine's hostname,
// and each address's host, or every interface's address for a wildcard
// one (":6443", "0.0.0.0:6443"), since clients may use any of them.
func Hosts(addrs ...string) []string {
	hosts := []string{"127.0.0.1", "::1", "localhost"}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	wildcard := false
	for _, a := range addrs {
		h, _, err := net.SplitHostPort(a)
		if err != nil {
			continue
		}
		if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
			wildcard = true
			continue
		}
		hosts = append(hosts, h)
	}
	if wildcard {
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok && !n.IP.IsLinkLocalUnicast() {
					hosts = append(hosts, n.IP.String())
				}
			}
		}
	}
	ips, dns := splitHosts(hosts)
	out := make([]string, 0, len(ips)+len(dns))
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return append(out, dns...)
}

// Pool reads a PEM file of CA certificates.
func Pool(caFile string) (*x509.CertPool, error) {
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("CA %s: no PEM certificate in it", caFile)
	}
	return pool, nil
}
