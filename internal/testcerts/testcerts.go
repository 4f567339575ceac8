// Package testcerts provides RSA keys and X.509 certificates for tests, examples and the tour.
//
// The RSA keys are fixtures committed under testdata (generating 4096-bit keys under the race
// detector takes seconds). They are test keys: never use them for anything real.
// Helpers panic on failure: they are meant for tests and demos only.
package testcerts

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"embed"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"sync"
	"time"
)

//go:embed testdata/*.pem
var fixtures embed.FS

var (
	keysMu sync.Mutex
	keys   = map[string]*rsa.PrivateKey{}
)

// Counts of the fixture keys available per size.
const (
	Keys2048 = 8
	Keys3072 = 2
	Keys4096 = 2
)

// RSA returns fixture key i (starting at 0) of the given size: 2048 (i < Keys2048), 3072
// (i < Keys3072) or 4096 (i < Keys4096). The same (bits, i) always returns the same key.
func RSA(bits, i int) *rsa.PrivateKey {
	name := fmt.Sprintf("testdata/rsa%d-%d.pem", bits, i)
	keysMu.Lock()
	defer keysMu.Unlock()
	if k, ok := keys[name]; ok {
		return k
	}
	data, err := fixtures.ReadFile(name)
	if err != nil {
		panic(fmt.Sprintf("testcerts: no fixture key %s", name))
	}
	block, _ := pem.Decode(data)
	if block == nil {
		panic("testcerts: bad fixture " + name)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		panic(err)
	}
	keys[name] = k.(*rsa.PrivateKey)
	return keys[name]
}

// EC returns a new P-256 key (Entra rejects EC client assertions: use it to test that path).
func EC() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// Options describe a certificate made by Cert. The zero value is a leaf certificate valid from
// an hour ago for a year, self-signed, with a random common name.
type Options struct {
	CommonName string
	NotBefore  time.Time
	NotAfter   time.Time
	IsCA       bool
	// Issuer and IssuerKey sign the certificate; nil means self-signed.
	Issuer    *x509.Certificate
	IssuerKey crypto.Signer
	// DNSNames and IPAddresses for TLS server certificates.
	DNSNames []string
	IPs      []string
}

// Cert returns a certificate for key's public key, shaped by opts.
func Cert(key crypto.Signer, opts Options) *x509.Certificate {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		panic(err)
	}
	if opts.CommonName == "" {
		opts.CommonName = fmt.Sprintf("azcredkit-test-%d", serial)
	}
	if opts.NotBefore.IsZero() {
		opts.NotBefore = time.Now().Add(-time.Hour)
	}
	if opts.NotAfter.IsZero() {
		opts.NotAfter = opts.NotBefore.Add(365 * 24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: opts.CommonName},
		NotBefore:             opts.NotBefore,
		NotAfter:              opts.NotAfter,
		BasicConstraintsValid: true,
		IsCA:                  opts.IsCA,
		DNSNames:              opts.DNSNames,
	}
	for _, ip := range opts.IPs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, parseIP(ip))
	}
	if opts.IsCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}
	}
	parent, signer := tmpl, key
	if opts.Issuer != nil {
		parent, signer = opts.Issuer, opts.IssuerKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		panic(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return c
}

// Chain returns [leaf, intermediate, root] where leaf is for leafKey and the CA certificates use
// other fixture keys.
func Chain(leafKey *rsa.PrivateKey, commonName string) []*x509.Certificate {
	rootKey, interKey := RSA(2048, Keys2048-1), RSA(2048, Keys2048-2)
	root := Cert(rootKey, Options{CommonName: "azcredkit test root", IsCA: true})
	inter := Cert(interKey, Options{CommonName: "azcredkit test intermediate", IsCA: true, Issuer: root, IssuerKey: rootKey})
	leaf := Cert(leafKey, Options{CommonName: commonName, Issuer: inter, IssuerKey: interKey})
	return []*x509.Certificate{leaf, inter, root}
}

func parseIP(s string) net.IP {
	ip := net.ParseIP(s)
	if ip == nil {
		panic("testcerts: bad IP " + s)
	}
	return ip
}
