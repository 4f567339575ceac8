package credential_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/keyvault"
)

// TestCertificateCredentialFromOpenSSLFiles: files made by the openssl command line (see
// keyvault/testdata/gen-openssl.sh) authenticate against the Entra emulator.
func TestCertificateCredentialFromOpenSSLFiles(t *testing.T) {
	dir := filepath.Join("..", "keyvault", "testdata", "openssl")
	read := func(names ...string) []byte {
		var b []byte
		for _, n := range names {
			d, err := os.ReadFile(filepath.Join(dir, n))
			require.NoError(t, err)
			b = append(b, d...)
		}
		return b
	}
	for _, tc := range []struct {
		name     string
		data     []byte
		password string
	}{
		{"PEM cert + key files", read("leaf2048.pem", "leaf2048.key"), ""},
		{"combined PEM with chain", read("combined-keyfirst.pem"), ""},
		{"OpenSSL 3 PFX (AES-256)", read("modern-chain.pfx"), "P@ss-w0rd"},
		{"legacy PFX", read("legacy-chain.pfx"), "legacy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			chain, _, err := keyvault.ParseCertificate(tc.data, tc.password)
			require.NoError(t, err)
			e.app.AddCertificate(chain[0])
			c, err := credential.NewCertificateCredential(tenantA, clientID, tc.data, tc.password, e.options())
			require.NoError(t, err)
			tok, err := c.GetToken(context.Background(), vaultScope)
			require.NoError(t, err)
			claims, err := e.entra.Verify(tok.Token)
			require.NoError(t, err)
			require.Equal(t, "2", claims["appidacr"], "v1 token (Key Vault)")
		})
	}
	_, err := credential.NewCertificateCredential(tenantA, clientID, read("modern-chain.pfx"), "wrong", nil)
	require.ErrorIs(t, err, keyvault.ErrWrongPassword)
	_, err = credential.NewCertificateCredential(tenantA, clientID, read("leaf2048.pem"), "", nil)
	require.ErrorIs(t, err, keyvault.ErrNotExportable)
	require.ErrorContains(t, err, "CertificateCredential")
}
