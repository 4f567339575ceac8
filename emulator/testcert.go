package emulator

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// TestCertificate is a self-signed certificate and its RSA key made by [NewTestCertificate]: an
// app's certificate credential on disk, for tests only.
type TestCertificate struct {
	// Certificate is the public part: register it with RegisterApp.
	Certificate *x509.Certificate
	// Key is its RSA private key.
	Key *rsa.PrivateKey
}

// NewTestCertificate makes a self-signed RSA-2048 certificate for commonName, valid from a minute
// ago for a year, with a new key from crypto/rand.
func NewTestCertificate(commonName string) (*TestCertificate, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("emulator: making an RSA key: %w", err)
	}
	cert, err := selfSigned(commonName, key, 365*24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("emulator: making a certificate: %w", err)
	}
	return &TestCertificate{Certificate: cert, Key: key}, nil
}

// PEM returns the private key (PKCS#8) and the certificate in PEM, as openssl writes a combined
// file: for credential.NewCertificateCredential and ImportCertificate.
func (c *TestCertificate) PEM() []byte {
	var out []byte
	if c.Key != nil {
		if der, err := x509.MarshalPKCS8PrivateKey(c.Key); err == nil {
			out = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		}
	}
	if c.Certificate != nil {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate.Raw})...)
	}
	return out
}

// PKCS12 returns the key and certificate as a PKCS#12 (PFX) encrypted with password the way
// OpenSSL 3 and current Key Vault do it (AES-256-CBC, PBKDF2, SHA-256 MAC).
func (c *TestCertificate) PKCS12(password string) ([]byte, error) {
	if c.Key == nil || c.Certificate == nil {
		return nil, fmt.Errorf("emulator: the TestCertificate has no key or no certificate")
	}
	der, err := pkcs12.Modern2023.Encode(c.Key, c.Certificate, nil, password)
	if err != nil {
		return nil, fmt.Errorf("emulator: encoding the PKCS#12: %w", err)
	}
	return der, nil
}
