package keyvault

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/pbkdf2"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
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
	"unicode/utf16"

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
// Errors wrap ErrWrongPassword, ErrEncryptedPEM, ErrNotExportable (certificates but no key),
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
			c, err := x509.ParseCertificate(block.Bytes)
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
		return nil, nil, fmt.Errorf("%w: the PEM holds %d certificate(s) (leaf %q, thumbprint %s) but no private key; for a file, add the key (cat cert.pem key.pem > combined.pem)",
			ErrNotExportable, len(certs), truncate(certs[0].Subject.CommonName, 64), assertion.Thumbprint(certs[0]))
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
	if err := checkPKCS12Work(der); err != nil {
		return nil, nil, err
	}
	if err := checkPKCS12Keys(der, password); err != nil {
		return nil, nil, err
	}
	k, leaf, cas, err := pkcs12.DecodeChain(der, password)
	if err != nil {
		var ni pkcs12.NotImplementedError
		switch {
		case errors.Is(err, pkcs12.ErrIncorrectPassword), errors.Is(err, pkcs12.ErrDecryption):
			if password == "" {
				return nil, nil, fmt.Errorf("%w: the PFX is protected by a password: pass it", ErrWrongPassword)
			}
			return nil, nil, fmt.Errorf("%w: check the password the PFX was exported with", ErrWrongPassword)
		case strings.Contains(err.Error(), "private key missing"):
			return nil, nil, fmt.Errorf("%w: the PKCS#12 holds certificates but no private key", ErrNotExportable)
		case errors.As(err, &ni):
			return nil, nil, fmt.Errorf("%w: the PKCS#12 uses an algorithm this library cannot read (%v); re-export it with AES-256 (openssl pkcs12 -export)", ErrInvalidCertificate, ni)
		case strings.Contains(err.Error(), "unknown algorithm"):
			return nil, nil, fmt.Errorf("%w: the PKCS#12 private key's algorithm is not RSA", ErrUnsupportedKey)
		}
		return nil, nil, fmt.Errorf("%w: neither PEM nor PKCS#12 (%v)", ErrInvalidCertificate, err)
	}
	return append([]*x509.Certificate{leaf}, cas...), k, nil
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

// checkRSAKeyShape rejects, before crypto/x509 parses it, an RSA key (PKCS#1, or PKCS#8 holding
// PKCS#1) that is too large or whose primes are larger than half its modulus: for a key without
// CRT values, x509.ParsePKCS1PrivateKey computes q^(p-2) mod p before checking that p*q = N, which
// takes minutes for a crafted 20 KB key. Anything that is not an RSA key passes unchanged.
func checkRSAKeyShape(der []byte) error {
	var p8 struct {
		Version int
		Algo    pkix.AlgorithmIdentifier
		Key     []byte
	}
	if rest, err := asn1.Unmarshal(der, &p8); err == nil && len(rest) == 0 {
		if !p8.Algo.Algorithm.Equal(oidRSAEncryption) {
			return nil
		}
		der = p8.Key
	}
	var k []asn1.RawValue // version, N, E, D, P, Q[, Dp, Dq, Qinv[, other primes]]
	if rest, err := asn1.Unmarshal(der, &k); err != nil || len(rest) != 0 || len(k) < 6 {
		return nil // not PKCS#1: the parsers say so
	}
	size := func(v asn1.RawValue) int { return len(bytes.TrimLeft(v.Bytes, "\x00")) * 8 }
	n := size(k[1])
	switch {
	case n > MaxRSAKeyBits+8:
		return fmt.Errorf("%w: the RSA key has about %d bits, more than the %d this library reads; use a 2048 to 4096-bit key", ErrUnsupportedKey, n, MaxRSAKeyBits)
	case size(k[4]) > n/2+64 || size(k[5]) > n/2+64:
		return fmt.Errorf("%w: the RSA private key is malformed (its primes do not fit its modulus)", ErrInvalidCertificate)
	case len(k) > 9:
		return fmt.Errorf("%w: multi-prime RSA keys are not supported", ErrUnsupportedKey)
	}
	return nil
}

// Bounds on the key derivations of a PKCS#12 file: OpenSSL 3 uses 2,048 iterations, Windows
// 2,000 to 10,000 (.NET accepts 600,000 in all, the JDK 5,000,000 per derivation). The counts are
// the file's: without a bound, a 3 KB file asking for 2^40 iterations keeps DecodeChain busy for
// days (SSLMate/go-pkcs12#80).
const (
	maxPKCS12Iterations      = 1 << 20 // per derivation
	maxPKCS12TotalIterations = 1 << 21 // MAC and every PBE/PBKDF2 parameter set together
)

var (
	oidPBKDF2    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidPKCS12PBE = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1} // pbeWithSHAAnd*: this arc
)

// checkPKCS12Work rejects PKCS#12 data whose MAC and PBE/PBKDF2 parameters (in every layer that
// is not encrypted) ask for too many key derivation iterations. Malformed data passes:
// DecodeChain reports it. A key bag inside an encrypted SafeContents is out of reach (rare; its
// author needs the password).
func checkPKCS12Work(der []byte) error {
	var total int64
	tooMany := func() error {
		return fmt.Errorf("%w: the PKCS#12 asks for more key derivation iterations than the %d (%d in all) this library allows; re-export it (openssl pkcs12 -export uses 2,048)", ErrInvalidCertificate, maxPKCS12Iterations, maxPKCS12TotalIterations)
	}
	// add counts the INTEGER v and reports whether the bounds still hold.
	add := func(v asn1.RawValue) bool {
		var n *big.Int
		if _, err := asn1.Unmarshal(v.FullBytes, &n); err != nil || n.Sign() <= 0 {
			return true
		}
		if !n.IsInt64() || n.Int64() > maxPKCS12Iterations {
			total = maxPKCS12TotalIterations + 1
			return false
		}
		total += n.Int64()
		return total <= maxPKCS12TotalIterations
	}
	var pfx []asn1.RawValue // version, authSafe[, macData]
	if _, err := asn1.Unmarshal(der, &pfx); err != nil {
		return nil
	}
	if len(pfx) >= 3 {
		var mac []asn1.RawValue // DigestInfo, salt[, iterations]
		if _, err := asn1.Unmarshal(pfx[2].FullBytes, &mac); err == nil && len(mac) >= 3 && !add(mac[2]) {
			return tooMany()
		}
	}
	var walk func(der []byte, depth int) bool
	walk = func(der []byte, depth int) bool {
		for len(der) > 0 && depth < 32 {
			var v asn1.RawValue
			rest, err := asn1.Unmarshal(der, &v)
			if err != nil {
				return true
			}
			der = rest
			switch {
			case v.Class == asn1.ClassUniversal && v.Tag == asn1.TagSequence:
				var oid asn1.ObjectIdentifier
				if _, err := asn1.Unmarshal(v.Bytes, &oid); err == nil && (oid.Equal(oidPBKDF2) || len(oid) == 8 && oidPKCS12PBE.Equal(oid[:7])) {
					var alg []asn1.RawValue    // an AlgorithmIdentifier: OID, parameters
					var params []asn1.RawValue // salt, iterations, ...
					if _, err := asn1.Unmarshal(v.FullBytes, &alg); err == nil && len(alg) == 2 {
						if _, err := asn1.Unmarshal(alg[1].FullBytes, &params); err == nil && len(params) >= 2 && !add(params[1]) {
							return false
						}
					}
				}
				if !walk(v.Bytes, depth+1) {
					return false
				}
			case v.IsCompound, v.Class == asn1.ClassUniversal && v.Tag == asn1.TagOctetString:
				if !walk(v.Bytes, depth+1) {
					return false
				}
			}
		}
		return true
	}
	if !walk(der, 0) {
		return tooMany()
	}
	return nil
}

var (
	oidDataContent    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidKeyBag         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 1}
	oidShroudedKeyBag = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 2}
	oidPBES2          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBEWithSHA3DES = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1, 3}
	oidHMACWithSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}
	oidAES128CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
)

type p12ContentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"tag:0,explicit,optional"`
}

// checkPKCS12Keys applies checkRSAKeyShape to the keys of the PKCS#12 before DecodeChain parses
// them (crypto/x509 would spend minutes on a crafted key). It reads the key bags of the
// SafeContents that are not encrypted, where OpenSSL, Windows and Key Vault put the key,
// decrypting shrouded ones (PBES2 with AES, or PBE-SHA1-3DES) with password. What it cannot read
// (a wrong password, other algorithms, a key inside an encrypted SafeContents) is left to
// DecodeChain. checkPKCS12Work has bounded the iterations.
func checkPKCS12Keys(der []byte, password string) error {
	var pfx struct {
		Version  int
		AuthSafe p12ContentInfo
		MacData  asn1.RawValue `asn1:"optional"`
	}
	var authSafe []byte
	var safes []p12ContentInfo
	if _, err := asn1.Unmarshal(der, &pfx); err != nil || !pfx.AuthSafe.ContentType.Equal(oidDataContent) {
		return nil
	}
	if _, err := asn1.Unmarshal(pfx.AuthSafe.Content.Bytes, &authSafe); err != nil {
		return nil
	}
	if _, err := asn1.Unmarshal(authSafe, &safes); err != nil {
		return nil
	}
	for _, ci := range safes {
		var contents []byte
		var bags []struct {
			ID         asn1.ObjectIdentifier
			Value      asn1.RawValue // [0] EXPLICIT: Bytes is the bag's content
			Attributes asn1.RawValue `asn1:"optional"`
		}
		if !ci.ContentType.Equal(oidDataContent) {
			continue
		}
		if _, err := asn1.Unmarshal(ci.Content.Bytes, &contents); err != nil {
			continue
		}
		if _, err := asn1.Unmarshal(contents, &bags); err != nil {
			continue
		}
		for _, b := range bags {
			var p8 []byte
			switch {
			case b.ID.Equal(oidKeyBag):
				p8 = b.Value.Bytes
			case b.ID.Equal(oidShroudedKeyBag):
				p8 = decryptShroudedKey(b.Value.Bytes, password)
			}
			if p8 == nil {
				continue
			}
			if err := checkRSAKeyShape(p8); err != nil {
				return fmt.Errorf("the PKCS#12 key: %w", err)
			}
		}
	}
	return nil
}

// decryptShroudedKey decrypts an EncryptedPrivateKeyInfo with password, or returns nil.
func decryptShroudedKey(epkiDER []byte, password string) []byte {
	var epki struct {
		Algorithm pkix.AlgorithmIdentifier
		Data      []byte
	}
	if _, err := asn1.Unmarshal(epkiDER, &epki); err != nil {
		return nil
	}
	var block cipher.Block
	var iv []byte
	switch alg := epki.Algorithm; {
	case alg.Algorithm.Equal(oidPBES2):
		var params struct{ KDF, Enc pkix.AlgorithmIdentifier }
		var kdf struct {
			Salt       []byte
			Iterations int
			KeyLength  int                      `asn1:"optional"`
			PRF        pkix.AlgorithmIdentifier `asn1:"optional"`
		}
		if _, err := asn1.Unmarshal(alg.Parameters.FullBytes, &params); err != nil || !params.KDF.Algorithm.Equal(oidPBKDF2) {
			return nil
		}
		if _, err := asn1.Unmarshal(params.KDF.Parameters.FullBytes, &kdf); err != nil {
			return nil
		}
		prf := sha1.New
		switch {
		case kdf.PRF.Algorithm.Equal(oidHMACWithSHA256):
			prf = sha256.New
		case kdf.PRF.Algorithm.Equal(oidHMACWithSHA512):
			prf = sha512.New
		case kdf.PRF.Algorithm != nil && !kdf.PRF.Algorithm.Equal(oidHMACWithSHA1):
			return nil
		}
		keyLen := map[string]int{oidAES128CBC.String(): 16, oidAES192CBC.String(): 24, oidAES256CBC.String(): 32}[params.Enc.Algorithm.String()]
		if keyLen == 0 {
			return nil
		}
		if _, err := asn1.Unmarshal(params.Enc.Parameters.FullBytes, &iv); err != nil {
			return nil
		}
		key, err := pbkdf2.Key(prf, password, kdf.Salt, kdf.Iterations, keyLen)
		if err != nil {
			return nil
		}
		if block, err = aes.NewCipher(key); err != nil {
			return nil
		}
	case alg.Algorithm.Equal(oidPBEWithSHA3DES):
		var params struct {
			Salt       []byte
			Iterations int
		}
		if _, err := asn1.Unmarshal(alg.Parameters.FullBytes, &params); err != nil {
			return nil
		}
		// The password as a zero-terminated BMPString (UTF-16BE).
		var pw []byte
		for _, r := range utf16.Encode([]rune(password + "\x00")) {
			pw = append(pw, byte(r>>8), byte(r))
		}
		key := pkcs12KDF(params.Salt, pw, params.Iterations, 1, 24)
		iv = pkcs12KDF(params.Salt, pw, params.Iterations, 2, 8)
		var err error
		if block, err = des.NewTripleDESCipher(key); err != nil {
			return nil
		}
	default:
		return nil
	}
	bs := block.BlockSize()
	if len(iv) != bs || len(epki.Data) == 0 || len(epki.Data)%bs != 0 {
		return nil
	}
	out := make([]byte, len(epki.Data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, epki.Data)
	pad := int(out[len(out)-1])
	if pad == 0 || pad > bs || !bytes.Equal(out[len(out)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		return nil // wrong password or not this algorithm: DecodeChain says so
	}
	return out[:len(out)-pad]
}

// pkcs12KDF is the SHA-1 key derivation of RFC 7292 appendix B.2 (id 1: key, 2: IV).
func pkcs12KDF(salt, password []byte, iterations int, id byte, size int) []byte {
	const u, v = sha1.Size, 64
	fill := func(p []byte) []byte {
		if len(p) == 0 {
			return nil
		}
		n := v * ((len(p) + v - 1) / v)
		return bytes.Repeat(p, (n+len(p)-1)/len(p))[:n]
	}
	in := append(fill(salt), fill(password)...)
	var out []byte
	for len(out) < size {
		h := sha1.New()
		h.Write(bytes.Repeat([]byte{id}, v))
		h.Write(in)
		a := h.Sum(nil)
		for i := 1; i < iterations; i++ {
			s := sha1.Sum(a)
			a = s[:]
		}
		out = append(out, a...)
		// I_j = (I_j + B + 1) mod 2^(8v), B = a repeated to v bytes.
		b := bytes.Repeat(a, (v+u-1)/u)[:v]
		for j := 0; j+v <= len(in); j += v {
			carry := 1
			for k := v - 1; k >= 0; k-- {
				x := int(in[j+k]) + int(b[k]) + carry
				in[j+k], carry = byte(x), x>>8
			}
		}
	}
	return out[:size]
}
