package keyvault

import (
	"bytes"
	"crypto/cipher"
	"crypto/des"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/internal/testcerts"
	"github.com/azcredkit/azcredkit/internal/testguard"
	"github.com/azcredkit/azcredkit/keyvault/internal/rc2"
)

// The DoS guard (checkRSAKeyShape, inspectPKCS12) must see every RSA key that crypto/x509 will
// parse, however the key reaches it: these tests wrap the crafted key that once kept
// ParseCertificate busy for minutes (testdata/fuzz/FuzzParseCertificate/hang-pem-rsa-key-without-crt)
// in every way PEM and go-pkcs12 accept, and require a prompt, typed refusal.

var writeSeeds = flag.Bool("write-fuzz-seeds", false, "write the crafted inputs of the guard tests to testdata/fuzz/FuzzParseCertificate")

// guardDeadline bounds one parse of a crafted input (a real one takes milliseconds).
const guardDeadline = 5 * time.Second

// readSeed returns the data of a FuzzParseCertificate corpus file.
func readSeed(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzParseCertificate", name))
	require.NoError(t, err)
	lines := strings.Split(string(b), "\n")
	require.Greater(t, len(lines), 2)
	lit, ok := strings.CutPrefix(lines[1], "[]byte(")
	require.True(t, ok)
	s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
	require.NoError(t, err)
	return []byte(s)
}

// writeSeed stores data (password "") as a FuzzParseCertificate corpus file with -write-fuzz-seeds.
func writeSeed(t *testing.T, name string, data []byte) {
	t.Helper()
	if !*writeSeeds {
		return
	}
	body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\nstring(\"\")\n"
	require.NoError(t, os.WriteFile(filepath.Join("testdata", "fuzz", "FuzzParseCertificate", name), []byte(body), 0o644))
}

// craftedPKCS1 is the RSA key without CRT values, with primes far larger than its modulus,
// that crypto/x509 spends minutes on.
func craftedPKCS1(t *testing.T) []byte {
	t.Helper()
	b, _ := pem.Decode(readSeed(t, "hang-pem-rsa-key-without-crt"))
	require.NotNil(t, b)
	return b.Bytes
}

func pkcs8Of(t *testing.T, pkcs1 []byte) []byte {
	t.Helper()
	der, err := asn1.Marshal(struct {
		Version int
		Algo    pkix.AlgorithmIdentifier
		Key     []byte
	}{Algo: pkix.AlgorithmIdentifier{Algorithm: oidRSAEncryption, Parameters: asn1.NullRawValue}, Key: pkcs1})
	require.NoError(t, err)
	return der
}

// requireRefusedPromptly parses data under the no-hang guard and requires a typed error.
func requireRefusedPromptly(t *testing.T, data []byte, password string, want error, phrase string) {
	t.Helper()
	var err error
	testguard.Within(t, guardDeadline, fmt.Sprintf("ParseCertificate (%d bytes)", len(data)), func() {
		_, _, err = ParseCertificate(data, password)
	})
	require.ErrorIs(t, err, want)
	require.ErrorContains(t, err, phrase)
}

// --- a PKCS#12 writer for crafted files (any bag content, any layout) ---

type testBag struct {
	id    asn1.ObjectIdentifier
	value []byte // the bag's content (inside [0] EXPLICIT)
}

type testSafe struct {
	// enc encrypts the SafeContents: "" (plain data), "3des", "rc2-40".
	enc  string
	bags []testBag
}

var (
	oidCertBag           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 3}
	oidX509Cert          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 22, 1}
	oidEncryptedData     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 6}
	oidPBEWithSHARC2_40  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1, 6}
	oidSHA1              = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	testEmptyBMPPassword = []byte{0, 0}
)

func explicit0(der []byte) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: der}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	require.NoError(t, err)
	return b
}

// pbeEncrypt encrypts plaintext with a PKCS#12 PBE (SHA-1 KDF) and the password "".
func pbeEncrypt(t *testing.T, enc string, plaintext []byte) (pkix.AlgorithmIdentifier, []byte) {
	t.Helper()
	return pbeEncryptN(t, enc, plaintext, 2048, 2048)
}

// pbeEncryptN is pbeEncrypt with iterations, and the count written in the parameters.
func pbeEncryptN(t *testing.T, enc string, plaintext []byte, iterations int, written int64) (pkix.AlgorithmIdentifier, []byte) {
	t.Helper()
	salt := make([]byte, 8)
	_, _ = rand.Read(salt)
	var block cipher.Block
	var oid asn1.ObjectIdentifier
	var err error
	switch enc {
	case "3des":
		oid = oidPBEWithSHA3DES
		block, err = des.NewTripleDESCipher(sha1KDF(salt, testEmptyBMPPassword, iterations, 1, 24))
	case "rc2-40":
		oid = oidPBEWithSHARC2_40
		block, err = rc2.New(sha1KDF(salt, testEmptyBMPPassword, iterations, 1, 5), 40)
	default:
		t.Fatalf("unknown encryption %q", enc)
	}
	require.NoError(t, err)
	iv := sha1KDF(salt, testEmptyBMPPassword, iterations, 2, 8)
	pad := 8 - len(plaintext)%8
	out := append(append([]byte(nil), plaintext...), bytes.Repeat([]byte{byte(pad)}, pad)...)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(out, out)
	params := mustMarshal(t, struct {
		Salt       []byte
		Iterations int64
	}{salt, written})
	return pkix.AlgorithmIdentifier{Algorithm: oid, Parameters: asn1.RawValue{FullBytes: params}}, out
}

// shroud encrypts a PKCS#8 key as a shrouded key bag's EncryptedPrivateKeyInfo (3DES, "").
func shroud(t *testing.T, pkcs8 []byte) []byte {
	t.Helper()
	alg, ct := pbeEncrypt(t, "3des", pkcs8)
	return mustMarshal(t, struct {
		Algo pkix.AlgorithmIdentifier
		Data []byte
	}{alg, ct})
}

// testPFX writes a PKCS#12 file with the password "" and a SHA-1 MAC.
func testPFX(t *testing.T, safes ...testSafe) []byte {
	t.Helper()
	type safeBag struct {
		ID    asn1.ObjectIdentifier
		Value asn1.RawValue
	}
	type contentInfo struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue
	}
	var cis []contentInfo
	for _, s := range safes {
		var bags []safeBag
		for _, b := range s.bags {
			bags = append(bags, safeBag{b.id, explicit0(b.value)})
		}
		contents := mustMarshal(t, bags)
		if s.enc == "" {
			cis = append(cis, contentInfo{oidDataContent, explicit0(mustMarshal(t, contents))})
			continue
		}
		alg, ct := pbeEncrypt(t, s.enc, contents)
		ed := mustMarshal(t, struct {
			Version int
			Info    struct {
				ContentType asn1.ObjectIdentifier
				Alg         pkix.AlgorithmIdentifier
				Content     []byte `asn1:"tag:0,optional"`
			}
		}{Info: struct {
			ContentType asn1.ObjectIdentifier
			Alg         pkix.AlgorithmIdentifier
			Content     []byte `asn1:"tag:0,optional"`
		}{oidDataContent, alg, ct}})
		cis = append(cis, contentInfo{oidEncryptedData, explicit0(ed)})
	}
	authSafe := mustMarshal(t, cis)
	salt := make([]byte, 8)
	_, _ = rand.Read(salt)
	mac := hmac.New(sha1.New, sha1KDF(salt, testEmptyBMPPassword, 1, 3, 20))
	mac.Write(authSafe)
	type digestInfo struct {
		Alg    pkix.AlgorithmIdentifier
		Digest []byte
	}
	return mustMarshal(t, struct {
		Version  int
		AuthSafe contentInfo
		MacData  struct {
			Mac        digestInfo
			Salt       []byte
			Iterations int
		}
	}{
		Version:  3,
		AuthSafe: contentInfo{oidDataContent, explicit0(mustMarshal(t, authSafe))},
		MacData: struct {
			Mac        digestInfo
			Salt       []byte
			Iterations int
		}{digestInfo{pkix.AlgorithmIdentifier{Algorithm: oidSHA1, Parameters: asn1.NullRawValue}, mac.Sum(nil)}, salt, 1},
	})
}

func certBag(t *testing.T, der []byte) testBag {
	t.Helper()
	return testBag{oidCertBag, mustMarshal(t, struct {
		ID   asn1.ObjectIdentifier
		Data []byte `asn1:"tag:0,explicit"`
	}{oidX509Cert, der})}
}

// TestGuardTrailingByte: one byte after the PKCS#8 SEQUENCE, which crypto/x509 ignores, once
// made the guard skip the RSA shape check (PEM and PKCS#12 key bag alike).
func TestGuardTrailingByte(t *testing.T) {
	p8 := append(pkcs8Of(t, craftedPKCS1(t)), 0)
	key := testcerts.RSA(2048, 1)
	cert := testcerts.Cert(key, testcerts.Options{})

	t.Run("PEM", func(t *testing.T) {
		data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8})
		writeSeed(t, "hang-pem-pkcs8-trailing-byte", data)
		requireRefusedPromptly(t, data, "", ErrInvalidCertificate, "malformed")
	})
	t.Run("PKCS#12 key bag", func(t *testing.T) {
		pfx := testPFX(t, testSafe{bags: []testBag{certBag(t, cert.Raw), {oidKeyBag, p8}}})
		writeSeed(t, "hang-pfx-keybag-trailing-byte", []byte(base64.StdEncoding.EncodeToString(pfx)))
		requireRefusedPromptly(t, pfx, "", ErrInvalidCertificate, "malformed")
	})
	t.Run("PKCS#12 shrouded key bag", func(t *testing.T) {
		pfx := testPFX(t, testSafe{bags: []testBag{certBag(t, cert.Raw), {oidShroudedKeyBag, shroud(t, p8[:len(p8)-1])}}})
		requireRefusedPromptly(t, pfx, "", ErrInvalidCertificate, "malformed")
	})
}

// sha1KDF is RFC 7292 appendix B.2 with SHA-1, written independently of the code under test
// (big.Int arithmetic, as the RFC states it).
func sha1KDF(salt, password []byte, iterations int, id byte, size int) []byte {
	const u, v = 20, 64
	rep := func(p []byte) []byte {
		var out []byte
		for len(p) > 0 && len(out) < v*((len(p)+v-1)/v) {
			out = append(out, p...)
		}
		return out[:min(len(out), v*((len(p)+v-1)/v))]
	}
	d := bytes.Repeat([]byte{id}, v)
	i := append(rep(salt), rep(password)...)
	var out []byte
	for len(out) < size {
		a := sha1.Sum(append(append([]byte(nil), d...), i...))
		for n := 1; n < iterations; n++ {
			a = sha1.Sum(a[:])
		}
		out = append(out, a[:]...)
		b := new(big.Int).SetBytes(bytes.Repeat(a[:], (v+u-1)/u)[:v])
		mod := new(big.Int).Lsh(big.NewInt(1), 8*v)
		for j := 0; j < len(i); j += v {
			x := new(big.Int).SetBytes(i[j : j+v])
			x.Add(x, b).Add(x, big.NewInt(1)).Mod(x, mod)
			x.FillBytes(i[j : j+v])
		}
	}
	return out[:size]
}

// TestGuardKeyInEncryptedSafe: DecodeChain decrypts every SafeContents with the password ("" for
// a Key Vault secret, known to whoever wrote it) and parses the keys inside; the guard once looked
// only at the SafeContents that are not encrypted.
func TestGuardKeyInEncryptedSafe(t *testing.T) {
	p8 := pkcs8Of(t, craftedPKCS1(t))
	key := testcerts.RSA(2048, 1)
	cert := testcerts.Cert(key, testcerts.Options{})
	certs := testSafe{enc: "3des", bags: []testBag{certBag(t, cert.Raw)}}
	for _, tc := range []struct {
		name, seed string
		safe       testSafe
	}{
		{"key bag, 3DES", "hang-pfx-keybag-in-3des-safe", testSafe{enc: "3des", bags: []testBag{{oidKeyBag, p8}}}},
		{"key bag, RC2-40", "hang-pfx-keybag-in-rc2-safe", testSafe{enc: "rc2-40", bags: []testBag{{oidKeyBag, p8}}}},
		{"shrouded key bag, RC2-40", "", testSafe{enc: "rc2-40", bags: []testBag{{oidShroudedKeyBag, shroud(t, p8)}}}},
		{"key bag with a trailing byte, 3DES", "", testSafe{enc: "3des", bags: []testBag{{oidKeyBag, append(p8, 0)}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pfx := testPFX(t, certs, tc.safe)
			if tc.seed != "" {
				writeSeed(t, tc.seed, []byte(base64.StdEncoding.EncodeToString(pfx)))
			}
			requireRefusedPromptly(t, pfx, "", ErrInvalidCertificate, "malformed")
		})
	}
	t.Run("iterations of a key inside an encrypted safe", func(t *testing.T) {
		alg, ct := pbeEncryptN(t, "3des", p8, 1, 1<<40)
		epki := mustMarshal(t, struct {
			Algo pkix.AlgorithmIdentifier
			Data []byte
		}{alg, ct})
		pfx := testPFX(t, certs, testSafe{enc: "rc2-40", bags: []testBag{{oidShroudedKeyBag, epki}}})
		writeSeed(t, "hang-pfx-iterations-in-rc2-safe", []byte(base64.StdEncoding.EncodeToString(pfx)))
		requireRefusedPromptly(t, pfx, "", ErrInvalidCertificate, "re-export it")
	})
	t.Run("a sound key in an encrypted safe still loads", func(t *testing.T) {
		der, err := x509MarshalPKCS8(key)
		require.NoError(t, err)
		for _, enc := range []string{"3des", "rc2-40"} {
			pfx := testPFX(t, testSafe{bags: []testBag{certBag(t, cert.Raw)}}, testSafe{enc: enc, bags: []testBag{{oidKeyBag, der}}})
			chain, k, err := ParseCertificate(pfx, "")
			require.NoError(t, err, enc)
			require.Equal(t, cert.Raw, chain[0].Raw)
			require.True(t, key.Equal(k))
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		pfx := testPFX(t, certs, testSafe{enc: "rc2-40", bags: []testBag{{oidKeyBag, p8}}})
		requireRefusedPromptly(t, pfx, "not the password", ErrWrongPassword, "check the password")
	})
}

var x509MarshalPKCS8 = x509.MarshalPKCS8PrivateKey
