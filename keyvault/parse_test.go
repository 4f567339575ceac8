package keyvault_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/stretchr/testify/require"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/azcredkit/azcredkit/internal/testcerts"
	"github.com/azcredkit/azcredkit/keyvault"
)

type fileCase struct {
	name     string
	files    []string // concatenated
	password string
	b64      bool
	want     error // nil: success
	bits     int
	chainLen int
	leafCN   string
}

var fileCases = []fileCase{
	{name: "separate cert and key files", files: []string{"leaf2048.pem", "leaf2048.key"}, bits: 2048, chainLen: 1, leafCN: "openssl leaf 2048"},
	{name: "combined, key first, with chain", files: []string{"combined-keyfirst.pem"}, bits: 2048, chainLen: 3, leafCN: "openssl leaf 2048"},
	{name: "combined, certificate first", files: []string{"combined-certfirst.pem"}, bits: 2048, chainLen: 1},
	{name: "PKCS#1 key", files: []string{"combined-pkcs1.pem"}, bits: 3072, chainLen: 1, leafCN: "openssl leaf 3072"},
	{name: "RSA 4096 PEM", files: []string{"leaf4096.key", "leaf4096.pem", "int.pem"}, bits: 4096, chainLen: 2},
	{name: "modern PFX with chain", files: []string{"modern-chain.pfx"}, password: "P@ss-w0rd", bits: 2048, chainLen: 2, leafCN: "openssl leaf 2048"},
	{name: "modern PFX base64 (Key Vault secret value)", files: []string{"modern-4096.pfx"}, b64: true, bits: 4096, chainLen: 1},
	{name: "legacy RC2/3DES PFX with chain", files: []string{"legacy-chain.pfx"}, password: "legacy", bits: 3072, chainLen: 2},
	{name: "legacy 3DES PFX", files: []string{"legacy-3des.pfx"}, password: "3des", bits: 2048, chainLen: 1},

	{name: "Key Vault's own PFX layout (3DES both bags, SHA-1 MAC, 2000 iterations)", files: []string{"keyvault-3des.pfx"}, bits: 2048, chainLen: 2, leafCN: "openssl leaf 2048"},
	{name: "negative serial number, PEM", files: []string{"negserial-combined.pem"}, bits: 2048, chainLen: 1, leafCN: "openssl negative serial"},
	{name: "negative serial number, modern PFX", files: []string{"negserial.pfx"}, b64: true, bits: 2048, chainLen: 1, leafCN: "openssl negative serial"},
	{name: "negative serial number, legacy RC2 PFX", files: []string{"negserial-legacy.pfx"}, password: "legacy", bits: 2048, chainLen: 1, leafCN: "openssl negative serial"},

	{name: "wrong PFX password", files: []string{"modern-chain.pfx"}, password: "nope", want: keyvault.ErrWrongPassword},
	{name: "missing PFX password", files: []string{"legacy-chain.pfx"}, want: keyvault.ErrWrongPassword},
	{name: "PFX without key", files: []string{"nokey.pfx"}, want: keyvault.ErrNotExportable},
	{name: "PEM certificate without key", files: []string{"leaf2048.pem"}, want: keyvault.ErrNotExportable},
	{name: "DER certificate alone", files: []string{"leaf2048.cer"}, want: keyvault.ErrNotExportable},
	{name: "PEM key without certificate", files: []string{"leaf2048.key"}, want: keyvault.ErrInvalidCertificate},
	{name: "encrypted PEM key", files: []string{"leaf2048-encrypted.key", "leaf2048.pem"}, want: keyvault.ErrEncryptedPEM},
	{name: "EC PEM", files: []string{"ec-combined.pem"}, want: keyvault.ErrUnsupportedKey},
	{name: "EC PFX", files: []string{"ec.pfx"}, want: keyvault.ErrUnsupportedKey},
	{name: "expired certificate", files: []string{"expired-combined.pem"}, want: keyvault.ErrCertificateExpired},
	{name: "key of another certificate", files: []string{"leaf3072.pem", "leaf2048.key"}, want: keyvault.ErrKeyMismatch},
}

func runFileCases(t *testing.T, dir string) {
	for _, tc := range fileCases {
		t.Run(tc.name, func(t *testing.T) {
			var data []byte
			for _, f := range tc.files {
				b, err := os.ReadFile(filepath.Join(dir, f))
				require.NoError(t, err)
				data = append(data, b...)
			}
			if tc.b64 {
				data = []byte(base64.StdEncoding.EncodeToString(data))
			}
			chain, key, err := keyvault.ParseCertificate(data, tc.password)
			if tc.want != nil {
				require.ErrorIs(t, err, tc.want)
				require.Nil(t, chain)
				require.Nil(t, key)
				return
			}
			require.NoError(t, err)
			rk, ok := key.(*rsa.PrivateKey)
			require.True(t, ok)
			require.Equal(t, tc.bits, rk.N.BitLen())
			require.Len(t, chain, tc.chainLen)
			require.True(t, rk.PublicKey.Equal(chain[0].PublicKey), "chain[0] is the key's certificate")
			if tc.leafCN != "" {
				require.Equal(t, tc.leafCN, chain[0].Subject.CommonName)
			}
			for i := 1; i < len(chain); i++ {
				require.Equal(t, chain[i-1].RawIssuer, chain[i].RawSubject, "issuer order")
			}
		})
	}
}

// TestParseOpenSSLFixtures reads the committed files made by testdata/gen-openssl.sh.
func TestParseOpenSSLFixtures(t *testing.T) {
	runFileCases(t, filepath.Join("testdata", "openssl"))
}

// TestParseFreshOpenSSLFiles makes the files again with this machine's openssl.
func TestParseFreshOpenSSLFiles(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not on PATH; TestParseOpenSSLFixtures covers the committed files")
	}
	if testing.Short() {
		t.Skip("generating RSA keys with openssl takes seconds")
	}
	dir := t.TempDir()
	out, err := exec.Command("bash", filepath.Join("testdata", "gen-openssl.sh"), dir).CombinedOutput()
	require.NoError(t, err, string(out))
	runFileCases(t, dir)
}

func TestModernPFXIsWhyThisParserExists(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "openssl", "modern-chain.pfx"))
	require.NoError(t, err)
	_, _, err = azidentity.ParseCertificates(data, []byte("P@ss-w0rd"))
	require.Error(t, err, "azidentity (x/crypto/pkcs12) cannot read an OpenSSL 3 PFX")
	_, _, err = keyvault.ParseCertificate(data, "P@ss-w0rd")
	require.NoError(t, err)
}

func TestParseKeyVaultShapes(t *testing.T) {
	key := testcerts.RSA(2048, 5)
	chain := testcerts.Chain(key, "kv-shapes")
	pkcs1 := x509.MarshalPKCS1PrivateKey(key)
	certPEM := func(cs ...*x509.Certificate) []byte {
		var b bytes.Buffer
		for _, c := range cs {
			_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
		}
		return b.Bytes()
	}
	t.Run("PKCS#1 key labelled PRIVATE KEY", func(t *testing.T) {
		data := append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs1}), certPEM(chain...)...)
		got, _, err := keyvault.ParseCertificate(data, "")
		require.NoError(t, err)
		require.Len(t, got, 3)
	})
	t.Run("PFX with CA certificates before the leaf", func(t *testing.T) {
		// The key bag's localKeyID points at the first certificate, the root: the parser must
		// match the key instead.
		pfx, err := pkcs12.Modern2023.Encode(key, chain[2], []*x509.Certificate{chain[1], chain[0]}, "")
		require.NoError(t, err)
		got, _, err := keyvault.ParseCertificate(pfx, "")
		require.NoError(t, err)
		require.Equal(t, chain[0].Raw, got[0].Raw)
		require.Equal(t, chain[1].Raw, got[1].Raw)
		require.Equal(t, chain[2].Raw, got[2].Raw)
	})
	t.Run("chain in random order", func(t *testing.T) {
		data := append(certPEM(chain[2], chain[0], chain[1]), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: pkcs1})...)
		got, _, err := keyvault.ParseCertificate(data, "")
		require.NoError(t, err)
		for i := range chain {
			require.Equal(t, chain[i].Raw, got[i].Raw)
		}
	})
	t.Run("small RSA key", func(t *testing.T) {
		small, err := rsa.GenerateKey(randReader(), 1024)
		require.NoError(t, err)
		c := testcerts.Cert(small, testcerts.Options{})
		data := append(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)}), certPEM(c)...)
		_, _, err = keyvault.ParseCertificate(data, "")
		require.ErrorIs(t, err, keyvault.ErrUnsupportedKey)
		require.ErrorContains(t, err, "1024 bits")
	})
	t.Run("not yet valid", func(t *testing.T) {
		c := testcerts.Cert(key, testcerts.Options{NotBefore: farFuture})
		data := append(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: pkcs1}), certPEM(c)...)
		_, _, err := keyvault.ParseCertificate(data, "")
		require.ErrorIs(t, err, keyvault.ErrCertificateExpired)
		require.ErrorContains(t, err, "not valid before")
	})
	t.Run("two keys", func(t *testing.T) {
		k := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: pkcs1})
		_, _, err := keyvault.ParseCertificate(append(append(k, k...), certPEM(chain[0])...), "")
		require.ErrorIs(t, err, keyvault.ErrInvalidCertificate)
	})
}

func TestParseGarbage(t *testing.T) {
	pfx, err := os.ReadFile(filepath.Join("testdata", "openssl", "modern-chain.pfx"))
	require.NoError(t, err)
	pemData, err := os.ReadFile(filepath.Join("testdata", "openssl", "combined-keyfirst.pem"))
	require.NoError(t, err)
	for name, data := range map[string][]byte{
		"empty":            nil,
		"whitespace":       []byte(" \n\t"),
		"text":             []byte("hello, world"),
		"binary":           {0x30, 0x82, 0xff, 0xff, 0x00},
		"truncated PFX":    pfx[:len(pfx)/2],
		"truncated PEM":    pemData[:len(pemData)/3],
		"PEM header only":  []byte("-----BEGIN CERTIFICATE-----\n"),
		"bad PEM body":     []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
		"bad key body":     append([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), pemData[strings.Index(string(pemData), "-----BEGIN CERTIFICATE"):]...),
		"huge":             bytes.Repeat([]byte("A"), keyvault.MaxCertificateSize+1),
		"base64 garbage":   []byte(base64.StdEncoding.EncodeToString([]byte("definitely not a pfx"))),
		"DSA key label":    append([]byte("-----BEGIN DSA PRIVATE KEY-----\nAAAA\n-----END DSA PRIVATE KEY-----\n"), pemData...),
		"public key only":  []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
		"DER certificate":  mustDER(t, pemData),
		"PFX bit flipped":  flip(pfx, len(pfx)/2),
		"legacy encrypted": []byte("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00000000000000000000000000000000\n\nAAAA\n-----END RSA PRIVATE KEY-----\n"),
	} {
		t.Run(name, func(t *testing.T) {
			chain, key, err := keyvault.ParseCertificate(data, "P@ss-w0rd")
			require.Error(t, err)
			require.Nil(t, chain)
			require.Nil(t, key)
			require.NotContains(t, err.Error(), "BEGIN", "the message explains; it does not echo the input")
		})
	}
}

func mustDER(t *testing.T, pemData []byte) []byte {
	t.Helper()
	i := strings.Index(string(pemData), "-----BEGIN CERTIFICATE")
	b, _ := pem.Decode(pemData[i:])
	require.NotNil(t, b)
	return b.Bytes
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0xff
	return c
}

var farFuture = time.Now().Add(24 * time.Hour)

func randReader() io.Reader { return rand.Reader }
