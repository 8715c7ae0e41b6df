package pki_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miniku/miniku/bus/pki"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// The CA is created once, its key private, and kept by later starts.
func TestCACreatedOnceAndKept(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, err := pki.EnsureCA(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert.IsCA || ca.Cert.NotAfter.Before(now.Add(9*365*24*time.Hour)) {
		t.Fatalf("CA: IsCA %v, NotAfter %v", ca.Cert.IsCA, ca.Cert.NotAfter)
	}
	if m := mode(t, filepath.Join(pki.Dir(dir), "ca.key")); m != 0o600 {
		t.Fatalf("ca.key mode %v, want 0600", m)
	}
	if m := mode(t, pki.Dir(dir)); m != 0o700 {
		t.Fatalf("tls dir mode %v, want 0700", m)
	}
	if !readCert(t, pki.CAPath(dir)).Equal(ca.Cert) {
		t.Fatal("ca.crt is not the CA's certificate")
	}
	again, err := pki.EnsureCA(dir, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !again.Cert.Equal(ca.Cert) {
		t.Fatal("a second start made a new CA")
	}
	// A lost ca.crt is written again from the key file.
	if err := os.Remove(pki.CAPath(dir)); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.EnsureCA(dir, now); err != nil {
		t.Fatal(err)
	}
	if !readCert(t, pki.CAPath(dir)).Equal(ca.Cert) {
		t.Fatal("ca.crt not restored")
	}
	// A key other users can read is refused, like a credentials file.
	if err := os.Chmod(filepath.Join(pki.Dir(dir), "ca.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.EnsureCA(dir, now); err == nil {
		t.Fatal("world-readable CA key accepted")
	}
}

// Processes starting on one data dir at once (nats and apiserver) agree
// on one CA.
func TestConcurrentStartsShareOneCA(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	cas := make([]*x509.Certificate, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ca, err := pki.EnsureCA(dir, time.Now())
			errs[i] = err
			if err == nil {
				cas[i] = ca.Cert
			}
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !cas[i].Equal(cas[0]) {
			t.Fatalf("start %d got another CA", i)
		}
	}
	if !readCert(t, pki.CAPath(dir)).Equal(cas[0]) {
		t.Fatal("ca.crt is not the shared CA")
	}
}

// A serving certificate works for a TLS client that trusts only ca.crt,
// on every loopback name.
func TestServerCertTrustedThroughCA(t *testing.T) {
	dir := t.TempDir()
	cert, key, err := pki.EnsureServerCert(dir, "apiserver", pki.Hosts("127.0.0.1:6443"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if m := mode(t, key); m != 0o600 {
		t.Fatalf("key mode %v, want 0600", m)
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	_, port, _ := net.SplitHostPort(ts.Listener.Addr().String())
	pool, err := pki.Pool(pki.CAPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(c.CloseIdleConnections)
	for _, host := range []string{"127.0.0.1", "localhost"} {
		resp, err := c.Get("https://" + net.JoinHostPort(host, port) + "/")
		if err != nil {
			t.Fatalf("https via %s: %v", host, err)
		}
		resp.Body.Close()
	}
	// Another data dir's CA does not trust it.
	other := t.TempDir()
	if _, err := pki.EnsureCA(other, time.Now()); err != nil {
		t.Fatal(err)
	}
	otherPool, err := pki.Pool(pki.CAPath(other))
	if err != nil {
		t.Fatal(err)
	}
	c2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: otherPool}}}
	if resp, err := c2.Get("https://127.0.0.1:" + port + "/"); err == nil {
		resp.Body.Close()
		t.Fatal("a client trusting another CA connected")
	}
}

// The certificate is kept while valid for the same hosts, and re-issued
// when the hosts change, when it nears expiry, or when the CA changed.
func TestServerCertRenewal(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	hosts := pki.Hosts("127.0.0.1:4222")
	cert, _, err := pki.EnsureServerCert(dir, "nats", hosts, now)
	if err != nil {
		t.Fatal(err)
	}
	first := readCert(t, cert)
	serial := func() string { return readCert(t, cert).SerialNumber.String() }

	tests := []struct {
		name  string
		hosts []string
		at    time.Time
		renew bool
	}{
		{"same hosts, a day later", hosts, now.Add(24 * time.Hour), false},
		{"hosts in another order", append([]string{hosts[len(hosts)-1]}, hosts[:len(hosts)-1]...), now, false},
		{"a new listen address", pki.Hosts("127.0.0.1:4222", "10.1.2.3:4222"), now, true},
		{"back to the old hosts", hosts, now, true},
		{"within RenewBefore of expiry", hosts, first.NotAfter.Add(-pki.RenewBefore + time.Hour), true},
	}
	for _, tc := range tests {
		before := serial()
		if _, _, err := pki.EnsureServerCert(dir, "nats", tc.hosts, tc.at); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if renewed := serial() != before; renewed != tc.renew {
			t.Fatalf("%s: renewed %v, want %v", tc.name, renewed, tc.renew)
		}
	}
	c := readCert(t, cert)
	if !slices.ContainsFunc(c.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.ParseIP("127.0.0.1")) }) ||
		!slices.Contains(c.DNSNames, "localhost") {
		t.Fatalf("SANs %v %v lack loopback", c.IPAddresses, c.DNSNames)
	}

	// A new CA (the tls dir's CA files replaced) re-issues the certificate.
	if err := os.Remove(filepath.Join(pki.Dir(dir), "ca.key")); err != nil {
		t.Fatal(err)
	}
	before := serial()
	if _, _, err := pki.EnsureServerCert(dir, "nats", hosts, now); err != nil {
		t.Fatal(err)
	}
	ca, err := pki.EnsureCA(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	if serial() == before || readCert(t, cert).CheckSignatureFrom(ca.Cert) != nil {
		t.Fatal("certificate of the old CA kept")
	}
}

func TestHostsOfWildcardListenIncludeInterfaces(t *testing.T) {
	h := pki.Hosts("0.0.0.0:6443")
	for _, want := range []string{"127.0.0.1", "::1", "localhost"} {
		if !slices.Contains(h, want) {
			t.Fatalf("Hosts(0.0.0.0:6443) = %v, lacks %s", h, want)
		}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLinkLocalUnicast() && !slices.Contains(h, n.IP.String()) {
			t.Fatalf("Hosts(0.0.0.0:6443) = %v, lacks interface address %s", h, n.IP)
		}
	}
	if h := pki.Hosts("192.0.2.7:6443"); !slices.Contains(h, "192.0.2.7") {
		t.Fatalf("Hosts(192.0.2.7:6443) = %v", h)
	}
}
