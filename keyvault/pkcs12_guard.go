package keyvault

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"unicode/utf16"

	"github.com/azcredkit/azcredkit/keyvault/internal/rc2"
)

// The PKCS#12 guard. go-pkcs12's DecodeChain hands every key bag of a file to
// x509.ParsePKCS8PrivateKey, and a crafted RSA key keeps crypto/x509 busy for minutes (see
// checkRSAKeyShape); DecodeChain offers no hook between decryption and parsing. So before it runs,
// inspectPKCS12 walks the file exactly as DecodeChain (go-pkcs12 v0.7.4, getSafeContents) will:
// with its ASN.1 layouts (copied below), the password it will use (chosen by the MAC, as it
// does), and its decryptions (PBE-SHA1-3DES, PBE-SHA1-RC2-40/128, PBES2 with AES), and checks
// every key in every SafeContents, encrypted or not. Where DecodeChain would refuse the file
// before it parses a key, the guard lets it say why; where the guard cannot see what DecodeChain
// would parse, it refuses the file itself (fail closed).

// Bounds on the key derivations of a PKCS#12 file: OpenSSL 3 uses 2,048 iterations, Windows
// 2,000 to 10,000 (.NET accepts 600,000 in all, the JDK 5,000,000 per derivation). The counts are
// the file's: without a bound, a 3 KB file asking for 2^40 iterations keeps DecodeChain busy for
// days (SSLMate/go-pkcs12#80).
const (
	maxPKCS12Iterations      = 1 << 20 // per derivation
	maxPKCS12TotalIterations = 1 << 21 // MAC and every PBE/PBKDF2 parameter set together
)

var (
	oidPBKDF2          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidPKCS12PBE       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1} // pbeWithSHAAnd*: this arc
	oidDataContent     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidEncryptedDataCT = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 6}
	oidKeyBag          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 1}
	oidShroudedKeyBag  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 2}
	oidCertBagType     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 3}
	oidX509CertType    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 22, 1}
	oidPBES2           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBMAC1          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 14}
	oidPBEWithSHA3DES  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1, 3}
	oidPBEWithSHARC2   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1, 5} // 128-bit
	oidPBEWithSHARC240 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1, 6}
	oidHMACWithSHA1    = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACWithSHA256  = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACWithSHA512  = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}
	oidAES128CBC       = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC       = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC       = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidDigestSHA1      = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidDigestSHA256    = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidDigestSHA512    = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
)

// go-pkcs12's layouts (pkcs12.go, mac.go, crypto.go, safebags.go of v0.7.4).
type (
	p12PFX struct {
		Version  int
		AuthSafe p12ContentInfo
		MacData  p12MacData `asn1:"optional"`
	}
	p12ContentInfo struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue `asn1:"tag:0,explicit,optional"`
	}
	p12MacData struct {
		Mac struct {
			Algorithm pkix.AlgorithmIdentifier
			Digest    []byte
		}
		MacSalt    []byte
		Iterations int `asn1:"optional,default:1"`
	}
	p12EncryptedData struct {
		Version              int
		EncryptedContentInfo struct {
			ContentType                asn1.ObjectIdentifier
			ContentEncryptionAlgorithm pkix.AlgorithmIdentifier
			EncryptedContent           []byte `asn1:"tag:0,optional"`
		}
	}
	p12SafeBag struct {
		ID         asn1.ObjectIdentifier
		Value      asn1.RawValue `asn1:"tag:0,explicit"`
		Attributes []struct {
			ID    asn1.ObjectIdentifier
			Value asn1.RawValue `asn1:"set"`
		} `asn1:"set,optional"`
	}
	p12CertBag struct {
		ID   asn1.ObjectIdentifier
		Data []byte `asn1:"tag:0,explicit"`
	}
	p12EncryptedPrivateKeyInfo struct {
		Algorithm pkix.AlgorithmIdentifier
		Data      []byte
	}
	p12PBEParams struct {
		Salt       []byte
		Iterations int
	}
	p12PBES2Params struct {
		KDF, Enc pkix.AlgorithmIdentifier
	}
	p12PBKDF2Params struct {
		Salt       asn1.RawValue
		Iterations int
		KeyLength  int                      `asn1:"optional"`
		PRF        pkix.AlgorithmIdentifier `asn1:"optional"`
	}
	p12PBMAC1Params struct {
		KDF, MacAlg pkix.AlgorithmIdentifier
	}
)

// unmarshalAll is go-pkcs12's unmarshal: asn1.Unmarshal refusing trailing data.
func unmarshalAll(in []byte, out any) error {
	rest, err := asn1.Unmarshal(in, out)
	if err == nil && len(rest) != 0 {
		err = errors.New("trailing data")
	}
	return err
}

// pfxContents is what DecodeChain will read in a PKCS#12 file.
type pfxContents struct {
	certs [][]byte // the certificate bags' DER, in order
	keys  [][]byte // the key bags' PKCS#8 (shrouded ones decrypted), in order
}

// errPKCS12Unreadable: the MAC refuses the password, or (a file without a MAC) part of it does
// not decrypt: the guard refuses the file rather than let DecodeChain parse what it has not seen.
var errPKCS12Unreadable = errors.New("the PKCS#12 cannot be decrypted with this password")

// inspectPKCS12 checks, before DecodeChain parses them, the iteration counts and every private
// key of a PKCS#12 file (see the top of this file). It returns nil contents and no error when
// DecodeChain refuses the file before it parses any key (it says why); errPKCS12Unreadable when
// the guard cannot see every key; an error wrapping ErrInvalidCertificate or ErrUnsupportedKey
// for a key or a work factor it refuses.
func inspectPKCS12(der []byte, password string) (*pfxContents, error) {
	budget := &iterationBudget{}
	if err := budget.charge(der); err != nil {
		return nil, err
	}
	pw, ok := bmpZeroTerminated(password)
	if !ok {
		return nil, nil // DecodeChain refuses a password outside UCS-2
	}
	var pfx p12PFX
	if unmarshalAll(der, &pfx) != nil || pfx.Version != 3 || !pfx.AuthSafe.ContentType.Equal(oidDataContent) {
		return nil, nil
	}
	var authSafe asn1.RawValue
	if unmarshalAll(pfx.AuthSafe.Content.Bytes, &authSafe) != nil {
		return nil, nil
	}
	macVerified := false
	if len(pfx.MacData.Mac.Algorithm.Algorithm) == 0 {
		if password != "" {
			return nil, nil // "no MAC in data"
		}
	} else {
		// DecodeChain's choice: the password, or for "" an empty byte string if that is what
		// the MAC was computed with.
		macOK, err := verifyPKCS12MAC(&pfx.MacData, authSafe.Bytes, pw)
		if err == nil && !macOK && password == "" {
			pw = nil
			macOK, err = verifyPKCS12MAC(&pfx.MacData, authSafe.Bytes, pw)
		}
		switch {
		case errors.Is(err, errNotImplemented):
			return nil, fmt.Errorf("%w: the PKCS#12 uses a MAC this library cannot read (%v); re-export it (openssl pkcs12 -export)", ErrInvalidCertificate, err)
		case err != nil:
			return nil, nil // a malformed MAC: DecodeChain refuses it
		case !macOK:
			return nil, errPKCS12Unreadable
		}
		macVerified = true
	}
	// decrypt is pbDecrypt; after the MAC accepted the password, data that does not decrypt is
	// malformed, not a wrong password.
	decrypt := func(alg pkix.AlgorithmIdentifier, data []byte) ([]byte, error) {
		out, err := pbDecrypt(alg, data, pw)
		if errors.Is(err, errPKCS12Unreadable) && macVerified {
			err = fmt.Errorf("%w: malformed PKCS#12 (its MAC holds, but part of it does not decrypt)", ErrInvalidCertificate)
		}
		return out, err
	}
	var safes []p12ContentInfo
	if unmarshalAll(authSafe.Bytes, &safes) != nil || len(safes) < 1 || len(safes) > 2 {
		return nil, nil
	}
	var bags []p12SafeBag
	for _, ci := range safes {
		var data []byte
		switch {
		case ci.ContentType.Equal(oidDataContent):
			if unmarshalAll(ci.Content.Bytes, &data) != nil {
				return nil, nil
			}
		case ci.ContentType.Equal(oidEncryptedDataCT):
			var ed p12EncryptedData
			if unmarshalAll(ci.Content.Bytes, &ed) != nil || ed.Version != 0 {
				return nil, nil
			}
			var err error
			if data, err = decrypt(ed.EncryptedContentInfo.ContentEncryptionAlgorithm, ed.EncryptedContentInfo.EncryptedContent); err != nil {
				return nil, err
			}
			// The SafeContents was encrypted: the parameters of the key bags inside count too.
			if err := budget.charge(data); err != nil {
				return nil, err
			}
		default:
			return nil, nil
		}
		var sc []p12SafeBag
		if unmarshalAll(data, &sc) != nil {
			return nil, nil
		}
		bags = append(bags, sc...)
	}
	out := &pfxContents{}
	for _, b := range bags {
		switch {
		case b.ID.Equal(oidCertBagType):
			var cb p12CertBag
			if unmarshalAll(b.Value.Bytes, &cb) == nil && cb.ID.Equal(oidX509CertType) {
				out.certs = append(out.certs, cb.Data)
			}
		case b.ID.Equal(oidKeyBag):
			if err := checkRSAKeyShape(b.Value.Bytes); err != nil {
				return nil, fmt.Errorf("the PKCS#12 key: %w", err)
			}
			out.keys = append(out.keys, b.Value.Bytes)
		case b.ID.Equal(oidShroudedKeyBag):
			var epki p12EncryptedPrivateKeyInfo
			if unmarshalAll(b.Value.Bytes, &epki) != nil {
				continue // DecodeChain stops here: no key after it is parsed
			}
			p8, err := decrypt(epki.Algorithm, epki.Data)
			if err != nil {
				return nil, err
			}
			if err := checkRSAKeyShape(p8); err != nil {
				return nil, fmt.Errorf("the PKCS#12 key: %w", err)
			}
			out.keys = append(out.keys, p8)
		}
	}
	return out, nil
}

// iterationBudget counts the key derivation iterations a PKCS#12 file asks for.
type iterationBudget struct{ total int64 }

// charge adds the iterations of the MAC and of every PBE/PBKDF2 parameter set in der (walking
// every SEQUENCE, OCTET STRING and constructed value that is not encrypted) and fails beyond the
// bounds. Malformed data passes: DecodeChain reports it.
func (b *iterationBudget) charge(der []byte) error {
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
			b.total = maxPKCS12TotalIterations + 1
			return false
		}
		b.total += n.Int64()
		return b.total <= maxPKCS12TotalIterations
	}
	var pfx []asn1.RawValue // version, authSafe[, macData]
	if _, err := asn1.Unmarshal(der, &pfx); err == nil && len(pfx) >= 3 {
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

// bmpZeroTerminated is the password as go-pkcs12 encodes it: UCS-2 big-endian, zero-terminated.
func bmpZeroTerminated(password string) ([]byte, bool) {
	out := make([]byte, 0, 2*len(password)+2)
	for _, r := range password {
		if r > 0xffff || utf16.IsSurrogate(r) {
			return nil, false
		}
		out = append(out, byte(r>>8), byte(r))
	}
	return append(out, 0, 0), true
}

// utf8Password decodes the BMP password back to UTF-8, as go-pkcs12 does for PBES2 and PBMAC1.
func utf8Password(bmp []byte) string {
	if len(bmp) >= 2 && bmp[len(bmp)-2] == 0 && bmp[len(bmp)-1] == 0 {
		bmp = bmp[:len(bmp)-2]
	}
	u := make([]uint16, len(bmp)/2)
	for i := range u {
		u[i] = uint16(bmp[2*i])<<8 | uint16(bmp[2*i+1])
	}
	return string(utf16.Decode(u))
}

// errNotImplemented marks an algorithm go-pkcs12 does not implement either.
var errNotImplemented = errors.New("algorithm not implemented")

// verifyPKCS12MAC is go-pkcs12's verifyMac: whether the MAC of message under password holds.
func verifyPKCS12MAC(m *p12MacData, message, password []byte) (bool, error) {
	var newHash func() hash.Hash
	var key []byte
	switch alg := m.Mac.Algorithm; {
	case alg.Algorithm.Equal(oidPBMAC1):
		var params p12PBMAC1Params
		var kdf p12PBKDF2Params
		if unmarshalAll(alg.Parameters.FullBytes, &params) != nil {
			return false, errors.New("malformed PBMAC1 parameters")
		}
		if !params.KDF.Algorithm.Equal(oidPBKDF2) {
			return false, fmt.Errorf("%w: PBMAC1 KDF %v", errNotImplemented, params.KDF.Algorithm)
		}
		if unmarshalAll(params.KDF.Parameters.FullBytes, &kdf) != nil || kdf.Salt.Tag != asn1.TagOctetString || kdf.KeyLength < 20 || kdf.KeyLength > 64 {
			return false, errors.New("malformed PBMAC1 parameters")
		}
		prf, err := prfFor(kdf.PRF)
		if err != nil {
			return false, err
		}
		if newHash = map[string]func() hash.Hash{oidHMACWithSHA1.String(): sha1.New, oidHMACWithSHA256.String(): sha256.New, oidHMACWithSHA512.String(): sha512.New}[params.MacAlg.Algorithm.String()]; newHash == nil {
			return false, fmt.Errorf("%w: PBMAC1 MAC %v", errNotImplemented, params.MacAlg.Algorithm)
		}
		if key, err = pbkdf2.Key(prf, utf8Password(password), kdf.Salt.Bytes, kdf.Iterations, kdf.KeyLength); err != nil {
			return false, err
		}
	case alg.Algorithm.Equal(oidDigestSHA1):
		newHash, key = sha1.New, pkcs12KDF(sha1.New, 64, m.MacSalt, password, m.Iterations, 3, sha1.Size)
	case alg.Algorithm.Equal(oidDigestSHA256):
		newHash, key = sha256.New, pkcs12KDF(sha256.New, 64, m.MacSalt, password, m.Iterations, 3, sha256.Size)
	case alg.Algorithm.Equal(oidDigestSHA512):
		newHash, key = sha512.New, pkcs12KDF(sha512.New, 128, m.MacSalt, password, m.Iterations, 3, sha512.Size)
	default:
		return false, fmt.Errorf("%w: MAC digest %v", errNotImplemented, alg.Algorithm)
	}
	mac := hmac.New(newHash, key)
	mac.Write(message)
	return hmac.Equal(mac.Sum(nil), m.Mac.Digest), nil
}

func prfFor(alg pkix.AlgorithmIdentifier) (func() hash.Hash, error) {
	switch {
	case alg.Algorithm == nil, alg.Algorithm.Equal(oidHMACWithSHA1):
		return sha1.New, nil
	case alg.Algorithm.Equal(oidHMACWithSHA256):
		return sha256.New, nil
	case alg.Algorithm.Equal(oidHMACWithSHA512):
		return sha512.New, nil
	}
	return nil, fmt.Errorf("%w: PBKDF2 PRF %v", errNotImplemented, alg.Algorithm)
}

// pbDecrypt is go-pkcs12's pbDecrypt: data decrypted with alg and the BMP password, padding
// removed. It fails with an error wrapping ErrInvalidCertificate for an algorithm go-pkcs12
// cannot read either, and errPKCS12Unreadable when the data does not decrypt.
func pbDecrypt(alg pkix.AlgorithmIdentifier, data, password []byte) ([]byte, error) {
	unsupported := func(what string) error {
		return fmt.Errorf("%w: the PKCS#12 uses an algorithm this library cannot read (%s); re-export it with AES-256 (openssl pkcs12 -export)", ErrInvalidCertificate, what)
	}
	var block cipher.Block
	var iv []byte
	var err error
	switch {
	case alg.Algorithm.Equal(oidPBES2):
		var params p12PBES2Params
		var kdf p12PBKDF2Params
		if unmarshalAll(alg.Parameters.FullBytes, &params) != nil {
			return nil, unsupported("malformed PBES2 parameters")
		}
		if !params.KDF.Algorithm.Equal(oidPBKDF2) {
			return nil, unsupported("PBES2 KDF " + params.KDF.Algorithm.String())
		}
		if unmarshalAll(params.KDF.Parameters.FullBytes, &kdf) != nil {
			return nil, errPKCS12Unreadable
		}
		if kdf.Salt.Tag != asn1.TagOctetString {
			return nil, unsupported("a PBKDF2 salt that is not an octet string")
		}
		prf, err := prfFor(kdf.PRF)
		if err != nil {
			return nil, unsupported(err.Error())
		}
		keyLen := map[string]int{oidAES128CBC.String(): 16, oidAES192CBC.String(): 24, oidAES256CBC.String(): 32}[params.Enc.Algorithm.String()]
		if keyLen == 0 {
			return nil, unsupported("PBES2 cipher " + params.Enc.Algorithm.String())
		}
		key, err := pbkdf2.Key(prf, utf8Password(password), kdf.Salt.Bytes, kdf.Iterations, keyLen)
		if err != nil {
			return nil, errPKCS12Unreadable
		}
		if block, err = aes.NewCipher(key); err != nil {
			return nil, errPKCS12Unreadable
		}
		iv = params.Enc.Parameters.Bytes
	case alg.Algorithm.Equal(oidPBEWithSHA3DES), alg.Algorithm.Equal(oidPBEWithSHARC2), alg.Algorithm.Equal(oidPBEWithSHARC240):
		var params p12PBEParams
		if unmarshalAll(alg.Parameters.FullBytes, &params) != nil {
			return nil, errPKCS12Unreadable
		}
		kdf := func(id byte, size int) []byte {
			return pkcs12KDF(sha1.New, 64, params.Salt, password, params.Iterations, id, size)
		}
		iv = kdf(2, 8)
		switch {
		case alg.Algorithm.Equal(oidPBEWithSHA3DES):
			block, err = des.NewTripleDESCipher(kdf(1, 24))
		case alg.Algorithm.Equal(oidPBEWithSHARC2):
			block, err = rc2.New(kdf(1, 16), 128)
		default:
			block, err = rc2.New(kdf(1, 5), 40)
		}
		if err != nil {
			return nil, errPKCS12Unreadable
		}
	default:
		return nil, unsupported("PBE " + alg.Algorithm.String())
	}
	bs := block.BlockSize()
	if len(iv) != bs || len(data) == 0 || len(data)%bs != 0 {
		return nil, errPKCS12Unreadable
	}
	out := make([]byte, len(data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, data)
	pad := int(out[len(out)-1])
	if pad == 0 || pad > bs || !bytes.Equal(out[len(out)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		return nil, errPKCS12Unreadable
	}
	return out[:len(out)-pad], nil
}

// pkcs12KDF is the key derivation of RFC 7292 appendix B.2 with newHash, whose block size is v
// bytes (id 1: key, 2: IV, 3: MAC key). As go-pkcs12's pbkdf, it treats iterations < 1 as 1.
func pkcs12KDF(newHash func() hash.Hash, v int, salt, password []byte, iterations int, id byte, size int) []byte {
	fill := func(p []byte) []byte {
		if len(p) == 0 {
			return nil
		}
		n := v * ((len(p) + v - 1) / v)
		return bytes.Repeat(p, (n+len(p)-1)/len(p))[:n]
	}
	in := append(fill(salt), fill(password)...)
	h := newHash()
	var out []byte
	for len(out) < size {
		h.Reset()
		h.Write(bytes.Repeat([]byte{id}, v))
		h.Write(in)
		a := h.Sum(nil)
		for i := 1; i < iterations; i++ {
			h.Reset()
			h.Write(a)
			a = h.Sum(a[:0])
		}
		out = append(out, a...)
		// I_j = (I_j + B + 1) mod 2^(8v), B = a repeated to v bytes.
		b := bytes.Repeat(a, (v+len(a)-1)/len(a))[:v]
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
