package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func serverCert(t *testing.T, f Files) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestEnsureCreatesThenReuses(t *testing.T) {
	dir := t.TempDir() + "/tls"
	f, err := Ensure(dir, []string{"tutti-hub.example", "192.168.1.20"})
	if err != nil {
		t.Fatal(err)
	}
	if f != FilesIn(dir) {
		t.Errorf("files %+v, want %+v", f, FilesIn(dir))
	}
	for path, mode := range map[string]os.FileMode{f.CA: 0o644, f.CAKey: 0o600, f.Cert: 0o644, f.Key: 0o600} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != mode {
			t.Errorf("%s has mode %v, want %v", path, info.Mode().Perm(), mode)
		}
	}
	ca, err := readCert(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.IsCA || time.Until(ca.NotAfter) < 9*365*24*time.Hour {
		t.Errorf("CA: IsCA %v, expires %v", ca.IsCA, ca.NotAfter)
	}
	cert := serverCert(t, f)
	for _, host := range append(DefaultHosts(), "tutti-hub.example", "192.168.1.20") {
		if err := cert.VerifyHostname(host); err != nil {
			t.Errorf("server certificate: %v", err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
		t.Errorf("server certificate not valid under the CA: %v", err)
	}

	// Again, with the same hosts in another order: nothing changes.
	before := [][]byte{read(t, f.CA), read(t, f.CAKey), read(t, f.Cert), read(t, f.Key)}
	if _, err := Ensure(dir, []string{"192.168.1.20", "TUTTI-HUB.example", "localhost"}); err != nil {
		t.Fatal(err)
	}
	after := [][]byte{read(t, f.CA), read(t, f.CAKey), read(t, f.Cert), read(t, f.Key)}
	for i := range before {
		if !bytes.Equal(before[i], after[i]) {
			t.Errorf("file %d rewritten by a second Ensure", i)
		}
	}
}

func TestEnsureReissuesServerCert(t *testing.T) {
	dir := t.TempDir()
	f, err := Ensure(dir, []string{"old.example"})
	if err != nil {
		t.Fatal(err)
	}
	caPEM, firstCert := read(t, f.CA), read(t, f.Cert)

	// New hosts: a new server certificate, the same CA.
	if _, err := Ensure(dir, []string{"new.example"}); err != nil {
		t.Fatal(err)
	}
	cert := serverCert(t, f)
	if cert.VerifyHostname("new.example") != nil || cert.VerifyHostname("old.example") == nil {
		t.Errorf("reissued certificate covers %v", cert.DNSNames)
	}
	if !bytes.Equal(read(t, f.CA), caPEM) {
		t.Error("the CA changed")
	}
	if bytes.Equal(read(t, f.Cert), firstCert) {
		t.Error("certificate not reissued")
	}

	// Close to its expiry: reissued, valid again from then.
	secondCert := read(t, f.Cert)
	later := cert.NotAfter.Add(-renewBefore / 2)
	if _, err := ensure(dir, []string{"new.example"}, later); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(read(t, f.Cert), secondCert) {
		t.Error("certificate near expiry not reissued")
	}
	if renewed := serverCert(t, f); !renewed.NotAfter.After(cert.NotAfter) {
		t.Errorf("renewed certificate expires %v, the old one %v", renewed.NotAfter, cert.NotAfter)
	}

	// A server key that does not match its certificate (a crash between
	// the two writes): reissued.
	other := t.TempDir()
	g, err := Ensure(other, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.Key, read(t, g.Key), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(dir, []string{"new.example"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ServerConfig(f); err != nil {
		t.Errorf("after a mismatched key: %v", err)
	}
}

func TestEnsureRefusesCAWithoutKey(t *testing.T) {
	dir := t.TempDir()
	f, err := Ensure(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(f.CAKey); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(dir, nil); err == nil || !strings.Contains(err.Error(), f.CA) {
		t.Errorf("CA without its key: %v", err)
	}
	if _, err := Ensure(t.TempDir(), []string{"bad host/name"}); err == nil {
		t.Error("invalid host name accepted")
	}
}

// TestTLSHandshake connects a client that trusts the CA, and one that does
// not, to a server over real TLS on loopback.
func TestTLSHandshake(t *testing.T) {
	f, err := Ensure(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	serverConf, err := ServerConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverConf)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake() // fails for the distrusting client
			c.Close()
		}
	}()
	defer func() { ln.Close(); <-served }()

	trusting, err := ClientConfig(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(), trusting)
	if err != nil {
		t.Fatalf("client trusting the CA: %v", err)
	}
	if got := c.ConnectionState().PeerCertificates[0].IPAddresses; !slices.ContainsFunc(got, func(ip net.IP) bool { return ip.Equal(net.ParseIP("127.0.0.1")) }) {
		t.Errorf("server certificate IPs %v", got)
	}
	c.Close()

	strangerCA, err := Ensure(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	distrusting, err := ClientConfig(strangerCA.CA)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(), distrusting); err == nil {
		c.Close()
		t.Error("a client trusting another CA connected")
	}
	if _, err := ClientConfig(f.Key); err == nil {
		t.Error("ClientConfig took a key file for a CA")
	}
}
