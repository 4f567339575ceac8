package emulator

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// MaxImportSize bounds the data [ParseImport] reads (Key Vault takes certificates of a few KB).
const MaxImportSize = 1 << 20

// ParseImport reads what Key Vault's certificate import takes: a PKCS#12 (raw DER, or base64 as
// in a Key Vault secret) with password, or PEM text with the certificate(s) and an unencrypted
// private key in any order (PKCS#8, PKCS#1 or SEC 1, whatever the block label). It returns the
// chain with the certificate matching the key first and the key (RSA or ECDSA). Unlike a
// credential it accepts expired certificates and EC keys: Key Vault imports them, and tests of
// the errors need them.
//
// It does not bound the work a crafted PKCS#12 (2^40 key derivation iterations) or RSA key can
// ask for: vet data from outside first (package emulator runs keyvault.ParseCertificate, which
// does, and calls this only for what that refuses as an EC key or an expired certificate).
func ParseImport(data []byte, password string) ([]*x509.Certificate, crypto.Signer, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil, errors.New("the certificate data is empty")
	}
	if len(data) > MaxImportSize {
		return nil, nil, fmt.Errorf("the certificate data is %d bytes, more than %d", len(data), MaxImportSize)
	}
	var (
		certs []*x509.Certificate
		key   any
		err   error
	)
	if bytes.Contains(data, []byte("-----BEGIN")) {
		certs, key, err = parseImportPEM(data)
	} else {
		der := data
		if b, berr := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(data))); berr == nil {
			der = b
		}
		var leaf *x509.Certificate
		var cas []*x509.Certificate
		key, leaf, cas, err = pkcs12.DecodeChain(der, password)
		if err != nil {
			return nil, nil, fmt.Errorf("reading the PKCS#12: %w (a wrong password, or not a PKCS#12 with one private key)", err)
		}
		certs = append([]*x509.Certificate{leaf}, cas...)
	}
	if err != nil {
		return nil, nil, err
	}
	signer, ok := key.(crypto.Signer)
	switch key.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey:
	default:
		ok = false
	}
	if !ok {
		return nil, nil, fmt.Errorf("the private key is a %T: Key Vault certificates have RSA or EC keys", key)
	}
	for i, c := range certs {
		if samePublicKey(c.PublicKey, signer.Public()) {
			chain := append([]*x509.Certificate{c}, certs[:i]...)
			return append(chain, certs[i+1:]...), signer, nil
		}
	}
	return nil, nil, errors.New("no certificate matches the private key")
}

func parseImportPEM(data []byte) ([]*x509.Certificate, any, error) {
	var certs []*x509.Certificate
	var key any
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		switch {
		case b.Type == "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("reading a PEM certificate: %w", err)
			}
			certs = append(certs, c)
		case b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] != "":
			return nil, nil, errors.New("the PEM private key is encrypted: import it unencrypted or as a PKCS#12 with a password")
		case bytes.HasSuffix([]byte(b.Type), []byte("PRIVATE KEY")):
			if key != nil {
				return nil, nil, errors.New("the PEM holds more than one private key")
			}
			k, err := parseAnyKey(b.Bytes)
			if err != nil {
				return nil, nil, err
			}
			key = k
		}
	}
	if len(certs) == 0 {
		return nil, nil, errors.New("the PEM holds no CERTIFICATE block")
	}
	if key == nil {
		return nil, nil, errors.New("the PEM holds no private key: Key Vault imports a certificate with its key")
	}
	return certs, key, nil
}

// parseAnyKey reads a PKCS#8, PKCS#1 or SEC 1 private key.
func parseAnyKey(der []byte) (any, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("the PEM private key is neither PKCS#8, PKCS#1 nor SEC 1")
}
