// Package certs makes TLS work without a public certificate authority: on
// first use it creates a small private CA and a server certificate signed
// by it, and later reuses them. Clients trust the CA file (ca.pem), which
// is copied to them once; the server certificate can then be renewed, or
// reissued for new host names, without touching the clients.
package certs

import (
	"bytes"
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
)

// File names inside the directory given to Ensure.
const (
	CAFile    = "ca.pem"         // the CA certificate: what clients trust
	CAKeyFile = "ca-key.pem"     // the CA's private key (0600): signs new server certificates
	CertFile  = "server.pem"     // the server certificate
	KeyFile   = "server-key.pem" // the server's private key (0600)
)

const (
	caValidity     = 10 * 365 * 24 * time.Hour
	serverValidity = 2 * 365 * 24 * time.Hour
	// renewBefore is how long before its expiry a server certificate is
	// replaced: Ensure runs at each start, and a server may run for weeks.
	renewBefore = 30 * 24 * time.Hour
)

// Files are the paths of the certificate files in a directory.
type Files struct {
	CA    string // CA certificate (PEM)
	CAKey string // CA private key (PEM, 0600)
	Cert  string // server certificate (PEM)
	Key   string // server private key (PEM, 0600)
}

// FilesIn returns the paths of the files Ensure keeps in dir.
func FilesIn(dir string) Files {
	return Files{
		CA:    filepath.Join(dir, CAFile),
		CAKey: filepath.Join(dir, CAKeyFile),
		Cert:  filepath.Join(dir, CertFile),
		Key:   filepath.Join(dir, KeyFile),
	}
}

// DefaultHosts are the names every server certificate covers besides the
// hosts given to Ensure: the loopback names and addresses, and this
// machine's host name (with .local, its mDNS name, when it has no domain).
func DefaultHosts() []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if name, err := os.Hostname(); err == nil && name != "" {
		hosts = append(hosts, name)
		if !strings.Contains(name, ".") {
			hosts = append(hosts, name+".local")
		}
	}
	return hosts
}

// Ensure makes dir hold a CA and a server certificate it signed for hosts
// (DNS names or IP addresses) plus DefaultHosts, creating what is missing.
// An existing CA is kept; the server certificate is reissued when its hosts
// differ, when it expires within 30 days, or when it does not match its key
// or the CA. Files are written atomically, keys with mode 0600.
func Ensure(dir string, hosts []string) (Files, error) {
	return ensure(dir, hosts, time.Now())
}

func ensure(dir string, hosts []string, now time.Time) (Files, error) {
	files := FilesIn(dir)
	wanted, err := hostSet(append(DefaultHosts(), hosts...))
	if err != nil {
		return files, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return files, fmt.Errorf("certs: %w", err)
	}
	ca, caKey, err := loadOrCreateCA(files, now)
	if err != nil {
		return files, err
	}
	reason, err := reissueReason(files, ca, wanted, now)
	if err != nil {
		return files, err
	}
	if reason == "" {
		return files, nil
	}
	if err := createServerCert(files, ca, caKey, wanted, now); err != nil {
		return files, fmt.Errorf("certs: server certificate (%s): %w", reason, err)
	}
	return files, nil
}

// ClientConfig returns a TLS client configuration that trusts the CA in
// caFile (and nothing else).
func ClientConfig(caFile string) (*tls.Config, error) {
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("certs: no certificate in %s", caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// ServerConfig returns a TLS server configuration with the server
// certificate of f.
func ServerConfig(f Files) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// loadOrCreateCA reads the CA, or creates it if neither its certificate
// nor its key exists. A CA certificate without its key is an error: making
// a new CA would silently break every client that trusts the old one.
func loadOrCreateCA(f Files, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	_, certErr := os.Stat(f.CA)
	_, keyErr := os.Stat(f.CAKey)
	if errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist) {
		return createCA(f, now)
	}
	cert, err := readCert(f.CA)
	if err != nil {
		return nil, nil, err
	}
	key, err := readKey(f.CAKey)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (the CA certificate %s exists: remove it too to make a new CA, then give clients the new one)", err, f.CA)
	}
	if !cert.IsCA || !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("certs: %s and %s are not a CA certificate and its key", f.CA, f.CAKey)
	}
	if !now.Before(cert.NotAfter) {
		return nil, nil, fmt.Errorf("certs: the CA in %s expired on %s: remove %s and %s to make a new one, then give clients the new %s",
			f.CA, cert.NotAfter.Format(time.DateOnly), f.CA, f.CAKey, CAFile)
	}
	return cert, key, nil
}

func createCA(f Files, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: CA key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	template := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"tutti"}, CommonName: "tutti local CA"},
		NotBefore:             now.Add(-time.Hour), // tolerates clocks a little behind
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: CA certificate: %w", err)
	}
	// The key first: a crash between the two leaves a key without a
	// certificate, which the next run replaces, never a certificate
	// without its key.
	if err := writeKey(f.CAKey, key); err != nil {
		return nil, nil, err
	}
	if err := writePEM(f.CA, "CERTIFICATE", der, 0o644); err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// reissueReason says why the server certificate must be made anew, or ""
// if it is fine.
func reissueReason(f Files, ca *x509.Certificate, wanted []string, now time.Time) (string, error) {
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "missing", nil
	case err != nil:
		return fmt.Sprintf("unreadable: %v", err), nil
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return fmt.Sprintf("unreadable: %v", err), nil
	}
	if err := cert.CheckSignatureFrom(ca); err != nil {
		return "not signed by the CA", nil
	}
	if now.Add(renewBefore).After(cert.NotAfter) {
		return "expires on " + cert.NotAfter.Format(time.DateOnly), nil
	}
	if have := certHosts(cert); !slices.Equal(have, wanted) {
		return fmt.Sprintf("hosts changed from %v to %v", have, wanted), nil
	}
	return "", nil
}

func createServerCert(f Files, ca *x509.Certificate, caKey *ecdsa.PrivateKey, hosts []string, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := serialNumber()
	if err != nil {
		return err
	}
	template := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"tutti"}, CommonName: hosts[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(serverValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ca.NotAfter.Before(template.NotAfter) {
		template.NotAfter = ca.NotAfter // not valid beyond its issuer
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			template.IPAddresses = append(template.IPAddresses, ip)
		} else {
			template.DNSNames = append(template.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	// The key first: a crash in between leaves a pair that does not match,
	// which the next run reissues.
	if err := writeKey(f.Key, key); err != nil {
		return err
	}
	return writePEM(f.Cert, "CERTIFICATE", der, 0o644)
}

// hostSet checks and normalises hosts: lower case, IPs in their canonical
// form, sorted, without duplicates.
func hostSet(hosts []string) ([]string, error) {
	var set []string
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if ip := net.ParseIP(h); ip != nil {
			h = ip.String()
		} else if h == "" || strings.ContainsAny(h, " /:@") {
			return nil, fmt.Errorf("certs: invalid host name %q", h)
		}
		set = append(set, h)
	}
	slices.Sort(set)
	return slices.Compact(set), nil
}

// certHosts returns the hosts cert covers, as hostSet normalises them.
func certHosts(cert *x509.Certificate) []string {
	hosts := slices.Clone(cert.DNSNames)
	for _, ip := range cert.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	set, _ := hostSet(hosts)
	return set
}

func serialNumber() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certs: serial number: %w", err)
	}
	return serial, nil
}

func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("certs: %s holds no PEM certificate", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", path, err)
	}
	return cert, nil
}

func readKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("certs: %s holds no PEM private key", path)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", path, err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("certs: %s: not an ECDSA key", path)
	}
	return ec, nil
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	return writePEM(path, "PRIVATE KEY", der, 0o600)
}

// writePEM writes one PEM block so that path holds the old content or the
// new, even across a crash.
func writePEM(path, blockType string, der []byte, mode os.FileMode) error {
	var buf bytes.Buffer
	if err := pem.Encode(&buf, &pem.Block{Type: blockType, Bytes: der}); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	err = tmp.Chmod(mode)
	if err == nil {
		_, err = tmp.Write(buf.Bytes())
	}
	if err == nil {
		err = tmp.Sync()
	}
	if closeErr := tmp.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	return nil
}
