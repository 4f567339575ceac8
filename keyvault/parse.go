package keyvault

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/azcredkit/azcredkit/assertion"
)

// MaxCertificateSize bounds the data ParseCertificate reads (a Key Vault secret is at most 25 KB).
const MaxCertificateSize = 1 << 20

// ParseCertificate reads a certificate chain and its RSA private key from data, in the formats Key
// Vault stores in a certificate's secret and that tools write to disk:
//
//   - PKCS#12 (PFX), raw DER or base64 (as a Key Vault secret value): modern AES-256-CBC +
//     PBKDF2 + SHA-256 MAC (OpenSSL 3, current Key Vault, Windows) and legacy 3DES/RC2 + SHA-1;
//     the CA certificates may come before the leaf, with or without localKeyID.
//   - PEM: certificate(s) and key in any order, PKCS#8 or PKCS#1 keys recognised by content, not
//     by the block label (Key Vault has been seen to label a PKCS#1 key "PRIVATE KEY").
//
// password is the PKCS#12 password ("" for Key Vault secrets); it is ignored for PEM. The leaf
// (chain[0]) is the certificate that matches the private key; the other certificates follow in
// issuer order, for the x5c header. key is an *rsa.PrivateKey.
//
// Certificates with a negative serial number (old makecert and Windows certificates, which Key
// Vault still returns) are read, without the process-wide GODEBUG x509negativeserial=1. The work is
// bounded whatever the input (see the package documentation, "Untrusted input").
//
// Errors wrap ErrWrongPassword, ErrEncryptedPEM, ErrNotExportable (certificates but no key, also
// a DER .cer/.crt file alone),
// ErrKeyMismatch, ErrUnsupportedKey (EC, Ed25519, DSA, RSA under 2048 bits),
// ErrCertificateExpired (expired or not yet valid) or ErrInvalidCertificate, and say what to do.
// They never contain key material.
func ParseCertificate(data []byte, password string) (chain []*x509.Certificate, key crypto.PrivateKey, err error) {
	c, k, err := parseCertificate(data, password, time.Now())
	if err != nil {
		return nil, nil, err
	}
	return c, k, nil
}

func parseCertificate(data []byte, password string, now time.Time) ([]*x509.Certificate, *rsa.PrivateKey, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil, fmt.Errorf("%w: the data is empty", ErrInvalidCertificate)
	}
	if len(data) > MaxCertificateSize {
		return nil, nil, fmt.Errorf("%w: %d bytes is more than the %d a certificate with its key can take", ErrInvalidCertificate, len(data), MaxCertificateSize)
	}
	var certs []*x509.Certificate
	var key crypto.PrivateKey
	var err error
	if bytes.Contains(data, []byte("-----BEGIN")) {
		certs, key, err = parsePEM(data)
	} else {
		der := data
		if b, ok := decodeBase64(data); ok {
			der = b
		}
		if c, cerr := parseX509Certificate(der); cerr == nil {
			// A .cer/.crt file: a certificate alone, not a PKCS#12.
			return nil, nil, fmt.Errorf("the data is a DER certificate (%q, thumbprint %s) with no private key; for a file, export the certificate with its key (PKCS#12/PFX, or PEM: cat cert.pem key.pem > combined.pem); for a Key Vault secret: %w",
				truncate(c.Subject.CommonName, 64), assertion.Thumbprint(c), ErrNotExportable)
		}
		certs, key, err = parsePKCS12(der, password)
	}
	if err != nil {
		return nil, nil, err
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("%w: the private key is %s; create the certificate with an RSA key (2048 bits or more)", ErrUnsupportedKey, keyKind(key))
	}
	chain, err := orderChain(certs, rk)
	if err != nil {
		return nil, nil, err
	}
	if err := assertion.CheckRSAPublicKey(&rk.PublicKey); err != nil {
		return nil, nil, err
	}
	if err := assertion.CheckValidity(chain[0], now); err != nil {
		return nil, nil, err
	}
	return chain, rk, nil
}

func keyKind(k crypto.PrivateKey) string {
	switch k.(type) {
	case *ecdsa.PrivateKey:
		return "an EC key"
	case ed25519.PrivateKey:
		return "an Ed25519 key"
	}
	return fmt.Sprintf("a %T", k)
}

// decodeBase64 decodes data when it is standard base64 text (whitespace allowed).
func decodeBase64(data []byte) ([]byte, bool) {
	s := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\n', '\r', '\t':
			return -1
		}
		return r
	}, string(data))
	for _, r := range s {
		if !('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '+' || r == '/' || r == '=') {
			return nil, false
		}
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	}
	return b, err == nil && len(b) > 0
}

func parsePEM(data []byte) ([]*x509.Certificate, crypto.PrivateKey, error) {
	var certs []*x509.Certificate
	var key crypto.PrivateKey
	rest := data
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch {
		case block.Type == "CERTIFICATE":
			c, err := parseX509Certificate(block.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: PEM block %d (CERTIFICATE) is malformed: %v", ErrInvalidCertificate, n, err)
			}
			certs = append(certs, c)
		case strings.HasSuffix(block.Type, "PRIVATE KEY"):
			if block.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
				return nil, nil, ErrEncryptedPEM
			}
			if key != nil {
				return nil, nil, fmt.Errorf("%w: the PEM holds more than one private key; keep only the certificate's", ErrInvalidCertificate)
			}
			if block.Type == "DSA PRIVATE KEY" {
				return nil, nil, fmt.Errorf("%w: the private key is a DSA key", ErrUnsupportedKey)
			}
			k, err := parsePrivateKey(block.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("PEM block %d (%s): %w", n, block.Type, err)
			}
			key = k
		}
	}
	switch {
	case len(certs) == 0 && key == nil:
		return nil, nil, fmt.Errorf("%w: no PEM CERTIFICATE or PRIVATE KEY block found", ErrInvalidCertificate)
	case len(certs) == 0:
		return nil, nil, fmt.Errorf("%w: the PEM holds a private key but no certificate; append the certificate (cat cert.pem key.pem > combined.pem)", ErrInvalidCertificate)
	case key == nil:
		return nil, nil, fmt.Errorf("the PEM holds %d certificate(s) (leaf %q, thumbprint %s) and no private key; for a file, add the key (cat cert.pem key.pem > combined.pem); for a Key Vault secret: %w",
			len(certs), truncate(certs[0].Subject.CommonName, 64), assertion.Thumbprint(certs[0]), ErrNotExportable)
	}
	return certs, key, nil
}

// parsePrivateKey tries PKCS#8, PKCS#1 and SEC 1, whatever the PEM label says.
func parsePrivateKey(der []byte) (crypto.PrivateKey, error) {
	if err := checkRSAKeyShape(der); err != nil {
		return nil, err
	}
	k8, err8 := x509.ParsePKCS8PrivateKey(der)
	if err8 == nil {
		return k8, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	if strings.Contains(err8.Error(), "unknown algorithm") {
		return nil, fmt.Errorf("%w: the private key's algorithm is not RSA (%v)", ErrUnsupportedKey, err8)
	}
	return nil, fmt.Errorf("%w: the private key is neither PKCS#8 nor PKCS#1 (nor SEC 1); it may be truncated", ErrInvalidCertificate)
}

func parsePKCS12(der []byte, password string) (certs []*x509.Certificate, key crypto.PrivateKey, err error) {
	defer func() {
		if r := recover(); r != nil { // a malformed file must never crash the service
			certs, key, err = nil, nil, fmt.Errorf("%w: malformed PKCS#12 data", ErrInvalidCertificate)
		}
	}()
	wrongPassword := func() error {
		if password == "" {
			return fmt.Errorf("%w: the PFX is protected by a password: pass it", ErrWrongPassword)
		}
		return fmt.Errorf("%w: check the password the PFX was exported with", ErrWrongPassword)
	}
	contents, err := inspectPKCS12(der, password)
	if err != nil {
		if errors.Is(err, errPKCS12Unreadable) {
			return nil, nil, wrongPassword()
		}
		return nil, nil, err
	}
	k, leaf, cas, err := pkcs12.DecodeChain(der, password)
	if err != nil && contents != nil && strings.Contains(err.Error(), "negative serial number") {
		// DecodeChain verified the MAC, then crypto/x509 refused a certificate's negative
		// serial number: read what the guard decrypted (and checked) instead.
		return contents.decode()
	}
	if err != nil {
		var ni pkcs12.NotImplementedError
		switch {
		case errors.Is(err, pkcs12.ErrIncorrectPassword), errors.Is(err, pkcs12.ErrDecryption):
			return nil, nil, wrongPassword()
		case strings.Contains(err.Error(), "private key missing"):
			return nil, nil, fmt.Errorf("the PKCS#12 holds certificates and no private key; for a file, export it with its key; for a Key Vault secret: %w", ErrNotExportable)
		case errors.As(err, &ni):
			return nil, nil, fmt.Errorf("%w: the PKCS#12 uses an algorithm this library cannot read (%v); re-export it with AES-256 (openssl pkcs12 -export)", ErrInvalidCertificate, ni)
		case strings.Contains(err.Error(), "unknown algorithm"):
			return nil, nil, fmt.Errorf("%w: the PKCS#12 private key's algorithm is not RSA", ErrUnsupportedKey)
		}
		return nil, nil, fmt.Errorf("%w: neither PEM nor PKCS#12 (%v)", ErrInvalidCertificate, err)
	}
	return append([]*x509.Certificate{leaf}, cas...), k, nil
}

// decode parses the certificates and the key of a PKCS#12 file as DecodeChain does, reading
// certificates with a negative serial number (parseX509Certificate).
func (c *pfxContents) decode() ([]*x509.Certificate, crypto.PrivateKey, error) {
	var certs []*x509.Certificate
	for i, der := range c.certs {
		cert, err := parseX509Certificate(der)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: PKCS#12 certificate %d is malformed: %v", ErrInvalidCertificate, i+1, err)
		}
		certs = append(certs, cert)
	}
	switch {
	case len(certs) == 0:
		return nil, nil, fmt.Errorf("%w: the PKCS#12 holds no certificate", ErrInvalidCertificate)
	case len(c.keys) == 0:
		return nil, nil, fmt.Errorf("the PKCS#12 holds certificates and no private key; for a file, export it with its key; for a Key Vault secret: %w", ErrNotExportable)
	case len(c.keys) > 1:
		return nil, nil, fmt.Errorf("%w: the PKCS#12 holds more than one private key; keep only the certificate's", ErrInvalidCertificate)
	}
	key, err := x509.ParsePKCS8PrivateKey(c.keys[0]) // checkRSAKeyShape has seen it
	if err != nil {
		if strings.Contains(err.Error(), "unknown algorithm") {
			return nil, nil, fmt.Errorf("%w: the PKCS#12 private key's algorithm is not RSA", ErrUnsupportedKey)
		}
		return nil, nil, fmt.Errorf("%w: the PKCS#12 private key is malformed", ErrInvalidCertificate)
	}
	return certs, key, nil
}

// orderChain picks the certificate whose public key is key's as the leaf and follows issuers from
// it; certificates outside that path come last.
func orderChain(certs []*x509.Certificate, key *rsa.PrivateKey) ([]*x509.Certificate, error) {
	leaf := -1
	for i, c := range certs {
		if pub, ok := c.PublicKey.(*rsa.PublicKey); ok && pub.Equal(&key.PublicKey) {
			leaf = i
			break
		}
	}
	if leaf < 0 {
		var names []string
		for i, c := range certs {
			if i == 3 {
				names = append(names, fmt.Sprintf("and %d more", len(certs)-i))
				break
			}
			names = append(names, fmt.Sprintf("%q (thumbprint %s)", truncate(c.Subject.CommonName, 64), assertion.Thumbprint(c)))
		}
		return nil, fmt.Errorf("%w: none of the %d certificate(s) %s belongs to the private key; pair the key with its own certificate",
			ErrKeyMismatch, len(certs), strings.Join(names, ", "))
	}
	used := make([]bool, len(certs))
	chain := []*x509.Certificate{certs[leaf]}
	used[leaf] = true
	for cur := certs[leaf]; !bytes.Equal(cur.RawIssuer, cur.RawSubject); {
		next := -1
		for i, c := range certs {
			if !used[i] && bytes.Equal(c.RawSubject, cur.RawIssuer) {
				next = i
				break
			}
		}
		if next < 0 {
			break
		}
		used[next] = true
		cur = certs[next]
		chain = append(chain, cur)
	}
	for i, c := range certs {
		if !used[i] {
			chain = append(chain, c)
		}
	}
	return chain, nil
}

// MaxRSAKeyBits is the largest RSA key ParseCertificate reads. Entra and Key Vault use 2048 to
// 4096 bits; crypto/x509 spends time cubic in the size of a key's primes before it checks them.
const MaxRSAKeyBits = 8192

var oidRSAEncryption = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}

// x509PKCS8 and x509PKCS1 are crypto/x509's own layouts (pkcs8, pkcs1PrivateKey): decoding with
// them, as crypto/x509 does, makes the guard see exactly the key crypto/x509 will compute with.
type x509PKCS8 struct {
	Version    int
	Algo       pkix.AlgorithmIdentifier
	PrivateKey []byte
}

type x509PKCS1 struct {
	Version          int
	N                *big.Int
	E                int
	D                *big.Int
	P                *big.Int
	Q                *big.Int
	Dp               *big.Int `asn1:"optional"`
	Dq               *big.Int `asn1:"optional"`
	Qinv             *big.Int `asn1:"optional"`
	AdditionalPrimes []struct {
		Prime, Exp, Coeff *big.Int
	} `asn1:"optional,omitempty"`
}

// checkRSAKeyShape rejects, before crypto/x509 parses it, an RSA key that is too large or whose
// primes do not fit its modulus: for a key without CRT values, x509.ParsePKCS1PrivateKey computes
// q^(p-2) mod p before checking that p*q = N, which takes minutes for a crafted 20 KB key.
//
// It checks every RSA key x509.ParsePKCS8PrivateKey or x509.ParsePKCS1PrivateKey could compute
// with from der, decoded as they decode it: der itself as PKCS#1, and the PKCS#1 key of der as
// PKCS#8 (which x509.ParsePKCS8PrivateKey accepts with trailing data after the SEQUENCE: a guard
// that refused to look past such data once let the crafted key through). Anything that is not an
// RSA key passes unchanged.
func checkRSAKeyShape(der []byte) error {
	if err := checkPKCS1Shape(der); err != nil {
		return err
	}
	var p8 x509PKCS8
	if _, err := asn1.Unmarshal(der, &p8); err == nil && p8.Algo.Algorithm.Equal(oidRSAEncryption) {
		return checkPKCS1Shape(p8.PrivateKey)
	}
	return nil
}

// checkPKCS1Shape checks a PKCS#1 key as x509.ParsePKCS1PrivateKey decodes it (it refuses
// trailing data, so does this).
func checkPKCS1Shape(der []byte) error {
	var k x509PKCS1
	if rest, err := asn1.Unmarshal(der, &k); err != nil || len(rest) != 0 {
		return nil // crypto/x509 refuses it before any arithmetic
	}
	bits := func(x *big.Int) int {
		if x == nil {
			return 0
		}
		return x.BitLen()
	}
	n := bits(k.N)
	half := n/2 + 64
	switch {
	case n > MaxRSAKeyBits:
		return fmt.Errorf("%w: the RSA key has %d bits, more than the %d this library reads; use a 2048 to 4096-bit key", ErrUnsupportedKey, n, MaxRSAKeyBits)
	case len(k.AdditionalPrimes) > 0:
		return fmt.Errorf("%w: multi-prime RSA keys are not supported", ErrUnsupportedKey)
	case bits(k.P) > half || bits(k.Q) > half || bits(k.Dp) > half || bits(k.Dq) > half || bits(k.Qinv) > half || bits(k.D) > n+64:
		return fmt.Errorf("%w: the RSA private key is malformed (its primes do not fit its modulus)", ErrInvalidCertificate)
	}
	return nil
}
