package emulator

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// Content types of certificate secrets.
const (
	// ContentTypePKCS12 is a base64 PKCS#12 (PFX) secret with the password "".
	ContentTypePKCS12 = "application/x-pkcs12"
	// ContentTypePEM is a PEM secret: key and certificates.
	ContentTypePEM = "application/x-pem-file"
)

// secretValue builds the secret of a certificate as Key Vault returns it: base64 PKCS#12 with
// the password "" or PEM text; without the key when nonExportable.
func secretValue(chain []*x509.Certificate, key crypto.Signer, opts CertificateOptions) (string, error) {
	withKey := !opts.NonExportable
	if withKey && !exportableKey(key) {
		return "", errors.New("the key cannot be exported (use NonExportable for an opaque crypto.Signer)")
	}
	if opts.ContentType == ContentTypePEM {
		return pemSecret(chain, key, withKey, opts)
	}
	var der []byte
	var err error
	switch {
	case withKey && !opts.CACertsFirst && opts.LegacyPKCS12 && !opts.KeyVaultPKCS12:
		der, err = pkcs12.LegacyRC2.Encode(key, chain[0], chain[1:], "")
	case withKey && !opts.CACertsFirst && !opts.LegacyPKCS12 && !opts.KeyVaultPKCS12:
		der, err = pkcs12.Modern2023.Encode(key, chain[0], chain[1:], "")
	default:
		certs := chain
		if opts.CACertsFirst {
			certs = append(append([]*x509.Certificate(nil), chain[1:]...), chain[0])
		}
		var k crypto.Signer
		if withKey {
			k = key
		}
		layout := pfxLegacy
		switch {
		case opts.KeyVaultPKCS12:
			layout = pfxKeyVault
		case !opts.LegacyPKCS12:
			layout = pfxModern
		}
		der, err = encodePFX(certs, k, layout)
	}
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(der), nil
}

func exportableKey(key crypto.Signer) bool {
	switch key.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
		return true
	}
	return false
}

func pemSecret(chain []*x509.Certificate, key crypto.Signer, withKey bool, opts CertificateOptions) (string, error) {
	var certs, keyPEM []byte
	for _, c := range chain {
		certs = append(certs, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if withKey {
		var block *pem.Block
		rk, isRSA := key.(*rsa.PrivateKey)
		ek, isEC := key.(*ecdsa.PrivateKey)
		switch {
		case isRSA && opts.PKCS1LabeledPrivateKey:
			block = &pem.Block{Type: "PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}
		case isRSA && opts.PKCS1Key:
			block = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}
		case isEC && (opts.PKCS1Key || opts.PKCS1LabeledPrivateKey):
			der, err := x509.MarshalECPrivateKey(ek)
			if err != nil {
				return "", err
			}
			typ := "EC PRIVATE KEY"
			if opts.PKCS1LabeledPrivateKey {
				typ = "PRIVATE KEY"
			}
			block = &pem.Block{Type: typ, Bytes: der}
		default:
			der, err := x509.MarshalPKCS8PrivateKey(key)
			if err != nil {
				return "", err
			}
			block = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
		}
		keyPEM = pem.EncodeToMemory(block)
	}
	if opts.CACertsFirst {
		return string(certs) + string(keyPEM), nil
	}
	return string(keyPEM) + string(certs), nil
}

// PKCS#12 structures (RFC 7292) for encodePFX.
var (
	oidData             = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidEncryptedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 6}
	oidCertBagType      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 3}
	oidShroudedKeyBag   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 2}
	oidX509Certificate  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 22, 1}
	oidPBES2            = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACWithSHA256   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidAES256CBC        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidPBEWithSHA3DES   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1, 3}
	oidSHA1Digest       = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256Digest     = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	pfxEmptyPassword    = []byte{0, 0} // "" as a zero-terminated BMPString
	pfxIterationsModern = 2048
)

type p12ContentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue
}

type p12EncryptedData struct {
	Version              int
	EncryptedContentInfo p12EncryptedContentInfo
}

type p12EncryptedContentInfo struct {
	ContentType                asn1.ObjectIdentifier
	ContentEncryptionAlgorithm pkix.AlgorithmIdentifier
	EncryptedContent           []byte `asn1:"tag:0,optional"`
}

type p12SafeBag struct {
	ID         asn1.ObjectIdentifier
	Value      asn1.RawValue
	Attributes []p12Attribute `asn1:"set,optional,omitempty"`
}

type p12Attribute struct {
	ID     asn1.ObjectIdentifier
	Values []asn1.RawValue `asn1:"set"`
}

// pfxLayout is how encodePFX encrypts and labels a PKCS#12.
type pfxLayout struct {
	legacy     bool // PBE-SHA1-3DES and a SHA-1 MAC; else PBES2 (AES-256, PBKDF2-SHA-256) and a SHA-256 MAC
	pbeIter    int  // iterations of each encryption
	macIter    int  // iterations of the MAC key
	windowsIDs bool // localKeyID 01000000 on the key and its certificate, and a Microsoft CSP name on the key
}

var (
	pfxModern   = pfxLayout{pbeIter: pfxIterationsModern, macIter: pfxIterationsModern}
	pfxLegacy   = pfxLayout{legacy: true, pbeIter: 2048, macIter: 1}
	pfxKeyVault = pfxLayout{legacy: true, pbeIter: 2000, macIter: 2000, windowsIDs: true}

	oidLocalKeyID       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 21}
	oidMicrosoftCSPName = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 17, 1}
	// windowsKeyID is the localKeyID Windows and Key Vault give the (only) key of a PFX.
	windowsKeyID = []byte{0x01, 0x00, 0x00, 0x00}
	// windowsCSP is the provider Windows names on the RSA keys it exports.
	windowsCSP = "Microsoft Enhanced RSA and AES Cryptographic Provider"
)

// windowsAttributes returns the localKeyID attribute, and with csp the Microsoft CSP name.
func windowsAttributes(csp bool) ([]p12Attribute, error) {
	id, err := asn1.Marshal(windowsKeyID)
	if err != nil {
		return nil, err
	}
	attrs := []p12Attribute{{ID: oidLocalKeyID, Values: []asn1.RawValue{{FullBytes: id}}}}
	if csp {
		var bmp []byte
		for _, r := range windowsCSP {
			bmp = append(bmp, byte(r>>8), byte(r))
		}
		attrs = append(attrs, p12Attribute{ID: oidMicrosoftCSPName, Values: []asn1.RawValue{{Class: asn1.ClassUniversal, Tag: asn1.TagBMPString, Bytes: bmp}}})
	}
	return attrs, nil
}

type p12CertBag struct {
	ID   asn1.ObjectIdentifier
	Data []byte `asn1:"tag:0,explicit"`
}

type p12EncryptedPrivateKeyInfo struct {
	Algorithm     pkix.AlgorithmIdentifier
	EncryptedData []byte
}

type p12DigestInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	Digest    []byte
}

type p12MacData struct {
	Mac        p12DigestInfo
	MacSalt    []byte
	Iterations int `asn1:"optional,default:1"`
}

type p12PFX struct {
	Version  int
	AuthSafe p12ContentInfo
	MacData  p12MacData
}

type p12PBEParams struct {
	Salt       []byte
	Iterations int
}

type p12PBKDF2Params struct {
	Salt       []byte
	Iterations int
	PRF        pkix.AlgorithmIdentifier
}

type p12PBES2Params struct {
	KDF              pkix.AlgorithmIdentifier
	EncryptionScheme pkix.AlgorithmIdentifier
}

// explicit0 wraps DER as [0] EXPLICIT.
func explicit0(der []byte) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: der}
}

// encodePFX writes a PKCS#12 file with the password "": the certificates in the given order in
// an encrypted SafeContents, then (when key is not nil) the shrouded key in a plain one (the
// order openssl writes). No bag has a friendlyName, and only with layout.windowsIDs a
// localKeyID. Modern: PBES2 (PBKDF2-HMAC-SHA-256, AES-256-CBC) and an HMAC-SHA-256 MAC; legacy:
// PBE-SHA1-3DES and an HMAC-SHA-1 MAC.
func encodePFX(certs []*x509.Certificate, key crypto.Signer, layout pfxLayout) ([]byte, error) {
	var bags []p12SafeBag
	for _, c := range certs {
		bag, err := asn1.Marshal(p12CertBag{ID: oidX509Certificate, Data: c.Raw})
		if err != nil {
			return nil, err
		}
		sb := p12SafeBag{ID: oidCertBagType, Value: explicit0(bag)}
		if layout.windowsIDs && key != nil && samePublicKey(c.PublicKey, key.Public()) {
			if sb.Attributes, err = windowsAttributes(false); err != nil {
				return nil, err
			}
		}
		bags = append(bags, sb)
	}
	certContents, err := asn1.Marshal(bags)
	if err != nil {
		return nil, err
	}
	legacy := layout.legacy
	algo, ciphertext, err := pbEncrypt(certContents, legacy, layout.pbeIter)
	if err != nil {
		return nil, err
	}
	ed, err := asn1.Marshal(p12EncryptedData{EncryptedContentInfo: p12EncryptedContentInfo{
		ContentType: oidData, ContentEncryptionAlgorithm: algo, EncryptedContent: ciphertext,
	}})
	if err != nil {
		return nil, err
	}
	safes := []p12ContentInfo{{ContentType: oidEncryptedData, Content: explicit0(ed)}}

	if key != nil {
		pk, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		kalgo, kct, err := pbEncrypt(pk, legacy, layout.pbeIter)
		if err != nil {
			return nil, err
		}
		epki, err := asn1.Marshal(p12EncryptedPrivateKeyInfo{Algorithm: kalgo, EncryptedData: kct})
		if err != nil {
			return nil, err
		}
		kb := p12SafeBag{ID: oidShroudedKeyBag, Value: explicit0(epki)}
		if layout.windowsIDs {
			if kb.Attributes, err = windowsAttributes(true); err != nil {
				return nil, err
			}
		}
		keyContents, err := asn1.Marshal([]p12SafeBag{kb})
		if err != nil {
			return nil, err
		}
		octets, err := asn1.Marshal(keyContents)
		if err != nil {
			return nil, err
		}
		safes = append(safes, p12ContentInfo{ContentType: oidData, Content: explicit0(octets)})
	}
	authSafe, err := asn1.Marshal(safes)
	if err != nil {
		return nil, err
	}
	octets, err := asn1.Marshal(authSafe)
	if err != nil {
		return nil, err
	}
	pfx := p12PFX{Version: 3, AuthSafe: p12ContentInfo{ContentType: oidData, Content: explicit0(octets)}}

	newHash, u, digestOID, iterations := sha256.New, sha256.Size, oidSHA256Digest, layout.macIter
	if legacy {
		newHash, u, digestOID = sha1.New, sha1.Size, oidSHA1Digest
	}
	salt := randomBytes(8)
	if !legacy {
		salt = randomBytes(16)
	}
	macKey := pkcs12KDF(newHash, u, 64, salt, pfxEmptyPassword, iterations, 3, u)
	mac := hmac.New(newHash, macKey)
	mac.Write(authSafe)
	pfx.MacData = p12MacData{
		Mac:        p12DigestInfo{Algorithm: pkix.AlgorithmIdentifier{Algorithm: digestOID, Parameters: asn1.NullRawValue}, Digest: mac.Sum(nil)},
		MacSalt:    salt,
		Iterations: iterations,
	}
	return asn1.Marshal(pfx)
}

// pbEncrypt encrypts plaintext with the password "" and iterations (legacy: PBE-SHA1-3DES; else
// PBES2 with AES-256-CBC and PBKDF2-HMAC-SHA-256).
func pbEncrypt(plaintext []byte, legacy bool, iterations int) (pkix.AlgorithmIdentifier, []byte, error) {
	var (
		block cipher.Block
		iv    []byte
		algo  pkix.AlgorithmIdentifier
	)
	if legacy {
		salt := randomBytes(8)
		key := pkcs12KDF(sha1.New, sha1.Size, 64, salt, pfxEmptyPassword, iterations, 1, 24)
		iv = pkcs12KDF(sha1.New, sha1.Size, 64, salt, pfxEmptyPassword, iterations, 2, 8)
		var err error
		if block, err = des.NewTripleDESCipher(key); err != nil {
			return algo, nil, err
		}
		params, err := asn1.Marshal(p12PBEParams{Salt: salt, Iterations: iterations})
		if err != nil {
			return algo, nil, err
		}
		algo = pkix.AlgorithmIdentifier{Algorithm: oidPBEWithSHA3DES, Parameters: asn1.RawValue{FullBytes: params}}
	} else {
		salt := randomBytes(16)
		iv = randomBytes(aes.BlockSize)
		// PBES2 uses the UTF-8 password (empty), not the BMPString.
		key, err := pbkdf2.Key(sha256.New, "", salt, iterations, 32)
		if err != nil {
			return algo, nil, err
		}
		if block, err = aes.NewCipher(key); err != nil {
			return algo, nil, err
		}
		kdfParams, err := asn1.Marshal(p12PBKDF2Params{
			Salt: salt, Iterations: iterations,
			PRF: pkix.AlgorithmIdentifier{Algorithm: oidHMACWithSHA256, Parameters: asn1.NullRawValue},
		})
		if err != nil {
			return algo, nil, err
		}
		ivDER, err := asn1.Marshal(iv)
		if err != nil {
			return algo, nil, err
		}
		params, err := asn1.Marshal(p12PBES2Params{
			KDF:              pkix.AlgorithmIdentifier{Algorithm: oidPBKDF2, Parameters: asn1.RawValue{FullBytes: kdfParams}},
			EncryptionScheme: pkix.AlgorithmIdentifier{Algorithm: oidAES256CBC, Parameters: asn1.RawValue{FullBytes: ivDER}},
		})
		if err != nil {
			return algo, nil, err
		}
		algo = pkix.AlgorithmIdentifier{Algorithm: oidPBES2, Parameters: asn1.RawValue{FullBytes: params}}
	}
	bs := block.BlockSize()
	pad := bs - len(plaintext)%bs
	out := append(append([]byte(nil), plaintext...), bytes.Repeat([]byte{byte(pad)}, pad)...)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(out, out)
	return algo, out, nil
}

// pkcs12KDF is the key derivation of RFC 7292 appendix B.2: u is the hash's output size and v
// its block size, both in bytes; id 1 = key, 2 = IV, 3 = MAC key.
func pkcs12KDF(newHash func() hash.Hash, u, v int, salt, password []byte, iterations int, id byte, size int) []byte {
	fill := func(p []byte) []byte {
		if len(p) == 0 {
			return nil
		}
		n := v * ((len(p) + v - 1) / v)
		return bytes.Repeat(p, (n+len(p)-1)/len(p))[:n]
	}
	d := bytes.Repeat([]byte{id}, v)
	in := append(fill(salt), fill(password)...)
	c := (size + u - 1) / u
	out := make([]byte, 0, c*u)
	h := newHash()
	for i := 0; i < c; i++ {
		h.Reset()
		h.Write(d)
		h.Write(in)
		a := h.Sum(nil)
		for j := 1; j < iterations; j++ {
			h.Reset()
			h.Write(a)
			a = h.Sum(a[:0])
		}
		out = append(out, a...)
		if i == c-1 {
			break
		}
		b := bytes.Repeat(a, (v+len(a)-1)/len(a))[:v]
		for j := 0; j < len(in)/v; j++ {
			blk := in[j*v : (j+1)*v]
			carry := 1
			for k := v - 1; k >= 0; k-- {
				s := int(blk[k]) + int(b[k]) + carry
				blk[k] = byte(s)
				carry = s >> 8
			}
		}
	}
	return out[:size]
}

// mustSecretValue is secretValue for the import helpers, which panic on misuse.
func mustSecretValue(chain []*x509.Certificate, key crypto.Signer, opts CertificateOptions) string {
	v, err := secretValue(chain, key, opts)
	if err != nil {
		panic(fmt.Sprintf("emulator: encoding the certificate secret: %v", err))
	}
	return v
}
