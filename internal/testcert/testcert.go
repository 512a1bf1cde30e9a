// Package testcert makes throwaway self-signed TLS key pairs for localhost,
// 127.0.0.1 and ::1: for gozd's tests and its example certificate.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Pair is a self-signed certificate and its key, PEM-encoded.
type Pair struct {
	CertPEM, KeyPEM []byte
	Cert            *x509.Certificate
}

// New returns a fresh ECDSA P-256 pair, valid from an hour ago (clock skew)
// for validFor, as a server certificate for localhost, 127.0.0.1 and ::1.
func New(validFor time.Duration) (*Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	notBefore := time.Now().Add(-time.Hour)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "localhost", Organization: []string{"gozd example"}},
		NotBefore:    notBefore,
		NotAfter:     notBefore.Add(validFor),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	return selfSigned(tmpl, key)
}

// selfSigned signs tmpl with key and returns the pair PEM-encoded.
func selfSigned(tmpl *x509.Certificate, key *ecdsa.PrivateKey) (*Pair, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Pair{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}),
		Cert:    cert,
	}, nil
}

// Write writes the key (mode 0600) and the certificate into dir under the
// names given, and returns their paths.
func (p *Pair) Write(dir, keyName, certName string) (keyPath, certPath string, err error) {
	keyPath, certPath = filepath.Join(dir, keyName), filepath.Join(dir, certName)
	if err := os.WriteFile(keyPath, p.KeyPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(certPath, p.CertPEM, 0o644); err != nil {
		return "", "", err
	}
	return keyPath, certPath, nil
}

// Roots returns a certificate pool that trusts the pair.
func (p *Pair) Roots() *x509.CertPool {
	roots := x509.NewCertPool()
	roots.AddCert(p.Cert)
	return roots
}
