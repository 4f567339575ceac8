package emulator

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/azcredkit/azcredkit/internal/testcerts"
)

// TestVaultKeyVaultPKCS12 checks the PFX layout of a Key Vault-generated secret, and compares it
// with the one openssl writes with the flags that make that layout.
func TestVaultKeyVaultPKCS12(t *testing.T) {
	vf := newVaultFixture(t)
	key := testcerts.RSA(2048, 4)
	chain := testcerts.Chain(key, "leaf.example")
	vf.v.ImportCertificate("kv", chain, key, CertificateOptions{KeyVaultPKCS12: true})
	val, ct := secretValueOf(t, vf, "kv", "")
	assert.Equal(t, ContentTypePKCS12, ct)
	der, err := base64.StdEncoding.DecodeString(val)
	require.NoError(t, err)
	k, leaf, cas, err := pkcs12.DecodeChain(der, "")
	require.NoError(t, err)
	assert.True(t, key.Equal(k))
	assert.Equal(t, chain[0].Raw, leaf.Raw)
	assert.Len(t, cas, 2)
	assert.Equal(t, []string{oidSHA1Digest.String(), oidPBEWithSHA3DES.String(), oidPBEWithSHA3DES.String()}, pfxAlgorithms(t, der))
	var pfx p12PFX
	_, err = asn1.Unmarshal(der, &pfx)
	require.NoError(t, err)
	assert.Equal(t, 2000, pfx.MacData.Iterations)
	assert.Contains(t, string(der), "\x04\x04\x01\x00\x00\x00", "localKeyID 01000000")

	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not on PATH")
	}
	dir := t.TempDir()
	write := func(name string, blocks ...*pem.Block) string {
		var b []byte
		for _, blk := range blocks {
			b = append(b, pem.EncodeToMemory(blk)...)
		}
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, b, 0o600))
		return p
	}
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	keyFile := write("key.pem", &pem.Block{Type: "PRIVATE KEY", Bytes: p8})
	leafFile := write("leaf.pem", &pem.Block{Type: "CERTIFICATE", Bytes: chain[0].Raw})
	caFile := write("ca.pem", &pem.Block{Type: "CERTIFICATE", Bytes: chain[1].Raw}, &pem.Block{Type: "CERTIFICATE", Bytes: chain[2].Raw})
	fromOpenSSL := filepath.Join(dir, "openssl.pfx")
	out, err := exec.Command("openssl", "pkcs12", "-export", "-legacy", "-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES",
		"-macalg", "sha1", "-iter", "2000", "-CSP", windowsCSP, "-in", leafFile, "-inkey", keyFile, "-certfile", caFile,
		"-out", fromOpenSSL, "-passout", "pass:").CombinedOutput()
	require.NoError(t, err, string(out))
	fromEmulator := filepath.Join(dir, "emulator.pfx")
	require.NoError(t, os.WriteFile(fromEmulator, der, 0o600))

	// openssl's description of each, without the key and certificate bodies and the
	// localKeyID values (openssl uses the certificate's SHA-1; Windows and Key Vault 01000000).
	describe := func(file string) []string {
		out, err := exec.Command("openssl", "pkcs12", "-info", "-in", file, "-passin", "pass:", "-nodes").CombinedOutput()
		require.NoError(t, err, string(out))
		body := regexp.MustCompile(`(?s)-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----`)
		id := regexp.MustCompile(`localKeyID: [0-9A-F ]+`)
		s := id.ReplaceAllString(body.ReplaceAllString(string(out), "BODY"), "localKeyID: ID")
		var lines []string
		for _, l := range strings.Split(s, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				lines = append(lines, l)
			}
		}
		return lines
	}
	got := describe(fromEmulator)
	assert.Equal(t, describe(fromOpenSSL), got)
	assert.Contains(t, got, "MAC: sha1, Iteration 2000")
	assert.Contains(t, got, "PKCS7 Encrypted data: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2000")
	assert.Contains(t, got, "Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2000")
	assert.Contains(t, got, "Microsoft CSP Name: "+windowsCSP)
	raw, err := exec.Command("openssl", "pkcs12", "-info", "-in", fromEmulator, "-passin", "pass:", "-nodes").CombinedOutput()
	require.NoError(t, err, string(raw))
	localKeyIDs := 0
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.TrimSpace(l) == "localKeyID: 01 00 00 00" {
			localKeyIDs++
		}
	}
	assert.Equal(t, 2, localKeyIDs, "on the key and on its certificate")
}
