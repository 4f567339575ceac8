package credential_test

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testcerts"
	"github.com/azcredkit/azcredkit/keyvault"
)

// hsmEnv adds a Managed HSM (keys only) to kvEnv, usable by the managed identity stand-in, and
// records the client assertion headers the app presents.
type hsmEnv struct {
	*kvEnv
	hsm *emulator.Vault

	mu      sync.Mutex
	headers []map[string]any
}

func newHSMEnv(t testing.TB) *hsmEnv {
	t.Helper()
	h := &hsmEnv{kvEnv: newKVEnv(t)}
	h.hsm = emulator.NewVault(h.entra, emulator.VaultOptions{Tenant: tenantA, ManagedHSM: true})
	t.Cleanup(h.hsm.Close)
	h.entra.OnToken(func(r *emulator.TokenRequest) *emulator.ErrorResponse {
		if r.ClientID == clientID {
			h.mu.Lock()
			h.headers = append(h.headers, r.AssertionHeader)
			h.mu.Unlock()
		}
		return nil
	})
	return h
}

func (h *hsmEnv) keyURL() string { return h.hsm.URL() + "/keys/app-signer" }

func (h *hsmEnv) lastHeader() map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.headers[len(h.headers)-1]
}

func (h *hsmEnv) options() *credential.ManagedHSMCredentialOptions {
	return &credential.ManagedHSMCredentialOptions{SignedAssertionCredentialOptions: *h.env.options(), Vault: h.vaultCO}
}

// newKeyVersion creates a version of the HSM key app-signer with fixture key idx (not the last two
// fixtures, which sign testcerts.Chain's CA certificates) and returns a certificate chain for it
// (leaf, intermediate, root).
func (h *hsmEnv) newKeyVersion(idx int) (*rsa.PrivateKey, []*x509.Certificate) {
	key := testcerts.RSA(2048, idx)
	h.hsm.CreateKey("app-signer", key, emulator.KeyOptions{HSM: true})
	return key, testcerts.Chain(key, "hsm-app-signer")
}

// writePEM writes certs to path as PEM CERTIFICATE blocks.
func writePEM(t testing.TB, path string, certs ...*x509.Certificate) {
	t.Helper()
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	require.NoError(t, os.WriteFile(path, out, 0o600))
}

func x5cOf(t testing.TB, hdr map[string]any) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for _, v := range hdr["x5c"].([]any) {
		der, err := base64.StdEncoding.DecodeString(v.(string))
		require.NoError(t, err)
		c, err := x509.ParseCertificate(der)
		require.NoError(t, err)
		out = append(out, c)
	}
	return out
}

func TestManagedHSMCredentialFollowsKeyVersions(t *testing.T) {
	h := newHSMEnv(t)
	_, chain1 := h.newKeyVersion(3)
	h.app.AddCertificate(chain1[0])
	path := filepath.Join(t.TempDir(), "chain.pem")
	unrelated := testcerts.Chain(testcerts.RSA(2048, 2), "someone else")[0]
	writePEM(t, path, chain1[2], unrelated, chain1[0], chain1[1]) // any order
	o := h.options()
	o.SendCertificateChain = true
	c, err := credential.NewManagedHSMCredential(tenantA, clientID, h.keyURL(), credential.CertificatesFromFile(path), h.miCred, o)
	require.NoError(t, err)

	concurrentTokens(t, c, 20)
	assert.Equal(t, x5t(chain1[0]), h.lastHeader()["x5t"])
	got := x5cOf(t, h.lastHeader())
	require.Len(t, got, 3, "the leaf and its issuers, in order")
	for i := range got {
		assert.True(t, got[i].Equal(chain1[i]), "x5c[%d]", i)
	}
	assert.Equal(t, int64(1), h.hsm.Count("keys/get"))
	assert.Equal(t, int64(1), h.hsm.Count("keys/sign"), "20 cold callers: one HSM signature")
	assert.Equal(t, int64(1), c.SignCount())

	// The key rotates: a new version, its certificate added to the file and registered on the
	// app, the old one removed. Entra rejects the old certificate; the credential reads the key
	// and the file again, switches and retries once.
	_, chain2 := h.newKeyVersion(4)
	writePEM(t, path, chain1[0], chain2[0], chain2[1], chain2[2])
	h.app.AddCertificate(chain2[0])
	h.app.RemoveCertificate(chain1[0])
	tok, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{storageScope}})
	require.NoError(t, err)
	_, err = h.entra.Verify(tok.Token)
	require.NoError(t, err)
	assert.Equal(t, x5t(chain2[0]), h.lastHeader()["x5t"])
	assert.Equal(t, int64(2), h.hsm.Count("keys/get"))
	assert.Equal(t, int64(2), c.SignCount())
}

func TestManagedHSMCredentialPeriodicCheck(t *testing.T) {
	h := newHSMEnv(t)
	_, chain1 := h.newKeyVersion(3)
	h.app.AddCertificate(chain1[0])
	path := filepath.Join(t.TempDir(), "chain.pem")
	writePEM(t, path, chain1...)
	var logs logBuffer
	o := h.options()
	o.RotationCheckInterval = 50 * time.Millisecond
	o.Logger = logs.logger()
	c, err := credential.NewManagedHSMCredential(tenantA, clientID, h.keyURL(), credential.CertificatesFromFile(path), h.miCred, o)
	require.NoError(t, err)
	endpoint := h.entra.TokenEndpoint(tenantA)
	thumb := func() any {
		a, err := c.Assertion(context.Background(), endpoint)
		require.NoError(t, err)
		hdr, _ := decodeJWT(t, a)
		return hdr["x5t"]
	}
	require.Equal(t, x5t(chain1[0]), thumb())

	// A new key version without a certificate: the credential keeps the version in use.
	h.newKeyVersion(4)
	time.Sleep(100 * time.Millisecond)
	require.Eventually(t, func() bool { thumb(); return h.hsm.Count("keys/get") >= 2 }, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, x5t(chain1[0]), thumb())
	_, err = c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
	require.NoError(t, err, "tokens keep flowing with the old version")

	// Its certificate arrives: the next check switches to it.
	key3 := testcerts.RSA(2048, 4)
	chain3 := testcerts.Chain(key3, "hsm-app-signer-v2")
	h.app.AddCertificate(chain3[0])
	writePEM(t, path, chain1[0], chain3[0])
	require.Eventually(t, func() bool { return thumb() == x5t(chain3[0]) }, 5*time.Second, 20*time.Millisecond)
	assert.Contains(t, logs.String(), "rotated")
	assert.Contains(t, logs.String(), "no valid certificate has the key's public key")
}

func TestManagedHSMCredentialChainFromKeyVault(t *testing.T) {
	h := newHSMEnv(t)
	key, chain := h.newKeyVersion(3)
	// The certificate for the HSM key, kept in a Key Vault (its own copy of the key is not used).
	h.vault.ImportCertificate("app-signer-cert", chain, key, emulator.CertificateOptions{})
	h.app.AddCertificate(chain[0])
	src, err := credential.CertificatesFromKeyVault(h.certURL("app-signer-cert"), h.miCred, &h.vaultCO)
	require.NoError(t, err)
	c, err := credential.NewManagedHSMCredential(tenantA, clientID, h.keyURL(), src, h.miCred, h.options())
	require.NoError(t, err)
	tok, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
	require.NoError(t, err)
	claims, err := h.entra.Verify(tok.Token)
	require.NoError(t, err)
	assert.Equal(t, "2", claims["appidacr"])
	assert.Equal(t, int64(1), h.vault.Count("certificates/get"))
	assert.Zero(t, h.vault.Count("secrets/get"), "only the public certificate is read")
	assert.Zero(t, h.vault.Count("keys/sign"), "the Key Vault does not sign")
	assert.Equal(t, int64(1), h.hsm.Count("keys/sign"), "the Managed HSM signs")
}

func TestManagedHSMCredentialErrors(t *testing.T) {
	h := newHSMEnv(t)
	_, chain := h.newKeyVersion(3)
	h.app.AddCertificate(chain[0])
	ctx := context.Background()
	scope := policy.TokenRequestOptions{Scopes: []string{vaultRes}}

	_, err := credential.NewManagedHSMCredential(tenantA, clientID, h.keyURL(), nil, h.miCred, h.options())
	require.ErrorIs(t, err, assertion.ErrInvalidOptions)
	_, err = credential.NewManagedHSMCredential(tenantA, clientID, h.hsm.URL()+"/certificates/app-signer", credential.StaticCertificates(chain), h.miCred, h.options())
	require.ErrorIs(t, err, keyvault.ErrInvalidURL)
	_, err = credential.NewManagedHSMCredential(tenantA, clientID, h.keyURL(), credential.StaticCertificates(chain), nil, h.options())
	require.ErrorIs(t, err, assertion.ErrInvalidOptions)

	// No certificate for the key.
	other := testcerts.Chain(testcerts.RSA(2048, 2), "not the HSM key")
	c, err := credential.NewManagedHSMCredential(tenantA, clientID, h.keyURL(), credential.StaticCertificates(other), h.miCred, h.options())
	require.NoError(t, err)
	_, err = c.GetToken(ctx, scope)
	require.ErrorIs(t, err, keyvault.ErrKeyMismatch)
	assert.Contains(t, err.Error(), "issue a certificate for this key version")

	// An unreadable certificate file.
	bad := filepath.Join(t.TempDir(), "bad.pem")
	require.NoError(t, os.WriteFile(bad, []byte("-----BEGIN NOTHING-----\n-----END NOTHING-----\n"), 0o600))
	c, err = credential.NewManagedHSMCredential(tenantA, clientID, h.keyURL(), credential.CertificatesFromFile(bad), h.miCred, h.options())
	require.NoError(t, err)
	_, err = c.GetToken(ctx, scope)
	require.ErrorIs(t, err, keyvault.ErrInvalidCertificate)

	// The identity may not sign: Managed HSM's local RBAC role is named.
	h.hsm.Deny(miClientID, "keys/sign")
	c, err = credential.NewManagedHSMCredential(tenantA, clientID, h.keyURL(), credential.StaticCertificates(chain), h.miCred, h.options())
	require.NoError(t, err)
	_, err = c.GetToken(ctx, scope)
	require.ErrorIs(t, err, keyvault.ErrAccessDenied)
	assert.Contains(t, err.Error(), "Managed HSM Crypto User")
}
