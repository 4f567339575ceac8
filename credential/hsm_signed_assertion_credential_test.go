package credential_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testcerts"
	"github.com/azcredkit/azcredkit/keyvault"
)

func (k *kvEnv) hsmOptions(alg string) *credential.HSMSignedAssertionCredentialOptions {
	return &credential.HSMSignedAssertionCredentialOptions{SignedAssertionCredentialOptions: *k.options(), Vault: k.vaultCO, Algorithm: alg}
}

func (k *kvEnv) importHSM(name string, idx int) []*x509.Certificate {
	key := testcerts.RSA(2048, idx)
	chain := testcerts.Chain(key, fmt.Sprintf("hsm-%s-%d", name, idx))
	k.importCert(name, chain, key, emulator.CertificateOptions{NonExportable: true, HSM: true})
	return chain
}

func TestHSMCredentialSignsInTheVault(t *testing.T) {
	for _, alg := range []string{"", assertion.PS256, assertion.RS256} {
		t.Run("alg "+alg, func(t *testing.T) {
			k := newKVEnv(t)
			chain := k.importHSM("hsm-cert", 0)
			var hdr map[string]any
			k.entra.OnToken(func(r *emulator.TokenRequest) *emulator.ErrorResponse {
				if r.ClientID == clientID {
					hdr = r.AssertionHeader
				}
				return nil
			})
			c, err := credential.NewHSMSignedAssertionCredential(tenantA, clientID, k.certURL("hsm-cert"), k.miCred, k.hsmOptions(alg))
			require.NoError(t, err)
			tok, err := c.GetToken(context.Background(), vaultScope)
			require.NoError(t, err)
			claims, err := k.entra.Verify(tok.Token)
			require.NoError(t, err)
			require.Equal(t, "2", claims["appidacr"], "v1 token (Key Vault)")
			want := alg
			if want == "" {
				want = assertion.PS256
			}
			require.Equal(t, want, hdr["alg"])
			require.Equal(t, x5t(chain[0]), hdr["x5t"])
			require.Equal(t, int64(1), k.vault.Count("certificates/get"))
			require.Equal(t, int64(1), k.vault.Count("keys/sign"))
			require.Zero(t, k.vault.Count("secrets/get"), "the secret is never read")
		})
	}
}

func TestHSMCredentialSignOpBudget(t *testing.T) {
	ctx := context.Background()
	t.Run("100 concurrent cold callers", func(t *testing.T) {
		k := newKVEnv(t)
		k.importHSM("hsm-cert", 1)
		c, err := credential.NewHSMSignedAssertionCredential(tenantA, clientID, k.certURL("hsm-cert"), k.miCred, k.hsmOptions(""))
		require.NoError(t, err)
		k.vault.Inject(emulator.Fault{Count: 1, Delay: 100 * time.Millisecond, Match: func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/certificates/") }})
		concurrentTokens(t, c, 100)
		require.Equal(t, int64(1), k.vault.Count("certificates/get"))
		require.Equal(t, int64(1), k.vault.Count("keys/sign"))
		require.Equal(t, int64(2), k.entra.Count("token"), "one for the vault credential, one for the app")
	})
	t.Run("5 scopes in one assertion lifetime", func(t *testing.T) {
		k := newKVEnv(t)
		k.importHSM("hsm-cert", 2)
		c, err := credential.NewHSMSignedAssertionCredential(tenantA, clientID, k.certURL("hsm-cert"), k.miCred, k.hsmOptions(""))
		require.NoError(t, err)
		for i := range 5 {
			_, err := c.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{fmt.Sprintf("https://r%d.example/.default", i)}})
			require.NoError(t, err)
		}
		require.Equal(t, int64(1), k.vault.Count("keys/sign"))
		require.Equal(t, int64(1), c.SignCount())
		require.Equal(t, int64(6), k.entra.Count("token"))
	})
	t.Run("steady state with short tokens", func(t *testing.T) {
		k := newKVEnv(t)
		k.entra.SetTokenLifetime(2 * time.Second)
		k.importHSM("hsm-cert", 3)
		c, err := credential.NewHSMSignedAssertionCredential(tenantA, clientID, k.certURL("hsm-cert"), k.miCred, k.hsmOptions(""))
		require.NoError(t, err)
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			_, err := c.GetToken(ctx, vaultScope)
			require.NoError(t, err)
			time.Sleep(20 * time.Millisecond)
		}
		require.GreaterOrEqual(t, k.entra.Count("token:client_credentials"), int64(4), "tokens were refreshed")
		require.Equal(t, int64(1), k.vault.Count("keys/sign"), "at most one sign per assertion lifetime, whatever the token lifetime")
	})
}

func TestHSMCredentialBadInput(t *testing.T) {
	ctx := context.Background()
	t.Run("EC certificate", func(t *testing.T) {
		k := newKVEnv(t)
		ec := testcerts.EC()
		k.vault.ImportCertificate("hsm-cert", []*x509.Certificate{testcerts.Cert(ec, testcerts.Options{})}, ec, emulator.CertificateOptions{NonExportable: true, HSM: true})
		c, err := credential.NewHSMSignedAssertionCredential(tenantA, clientID, k.certURL("hsm-cert"), k.miCred, k.hsmOptions(""))
		require.NoError(t, err)
		_, err = c.GetToken(ctx, vaultScope)
		require.ErrorIs(t, err, keyvault.ErrUnsupportedKey)
		require.ErrorContains(t, err, "hsm-cert")
	})
	t.Run("algorithm", func(t *testing.T) {
		k := newKVEnv(t)
		_, err := credential.NewHSMSignedAssertionCredential(tenantA, clientID, k.certURL("hsm-cert"), k.miCred, k.hsmOptions("ES256"))
		require.ErrorIs(t, err, assertion.ErrUnsupportedAlgorithm)
	})
	t.Run("no keys/sign permission", func(t *testing.T) {
		k := newKVEnv(t)
		k.importHSM("hsm-cert", 4)
		k.vault.Deny(miClientID, "keys/sign")
		c, err := credential.NewHSMSignedAssertionCredential(tenantA, clientID, k.certURL("hsm-cert"), k.miCred, k.hsmOptions(""))
		require.NoError(t, err)
		_, err = c.GetToken(ctx, vaultScope)
		require.ErrorIs(t, err, keyvault.ErrAccessDenied)
		require.ErrorContains(t, err, "keys/sign")
		require.ErrorContains(t, err, "Key Vault Crypto User")
	})
	t.Run("disabled key", func(t *testing.T) {
		k := newKVEnv(t)
		key := testcerts.RSA(2048, 5)
		chain := testcerts.Chain(key, "disabled-key")
		v := k.importCert("hsm-cert", chain, key, emulator.CertificateOptions{NonExportable: true, HSM: true})
		k.vault.SetEnabled("hsm-cert", v, false)
		c, err := credential.NewHSMSignedAssertionCredential(tenantA, clientID, k.certURL("hsm-cert"), k.miCred, k.hsmOptions(""))
		require.NoError(t, err)
		_, err = c.GetToken(ctx, vaultScope)
		require.ErrorIs(t, err, keyvault.ErrDisabled)
	})
	t.Run("throttled signing survived", func(t *testing.T) {
		k := newKVEnv(t)
		k.importHSM("hsm-cert", 6)
		k.vault.Inject(emulator.Fault{Count: 1, Status: http.StatusTooManyRequests, RetryAfter: time.Second, Match: func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/sign") }})
		c, err := credential.NewHSMSignedAssertionCredential(tenantA, clientID, k.certURL("hsm-cert"), k.miCred, k.hsmOptions(""))
		require.NoError(t, err)
		start := time.Now()
		_, err = c.GetToken(ctx, vaultScope)
		require.NoError(t, err)
		require.GreaterOrEqual(t, time.Since(start), time.Second)
	})
	t.Run("sign latency beyond the caller's deadline", func(t *testing.T) {
		k := newKVEnv(t)
		k.importHSM("hsm-cert", 7)
		k.vault.Inject(emulator.Fault{Count: 1, Delay: 2 * time.Second, Match: func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/sign") }})
		c, err := credential.NewHSMSignedAssertionCredential(tenantA, clientID, k.certURL("hsm-cert"), k.miCred, k.hsmOptions(""))
		require.NoError(t, err)
		dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err = c.GetToken(dctx, vaultScope)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Less(t, time.Since(start), time.Second)
		// The shared work went on: the next caller gets a token, with no second sign.
		_, err = c.GetToken(ctx, vaultScope)
		require.NoError(t, err)
		require.Equal(t, int64(1), k.vault.Count("keys/sign"))
	})
}

func TestKeyVaultSignerWithSignedAssertionCredential(t *testing.T) {
	ctx := context.Background()
	k := newKVEnv(t)
	key := testcerts.RSA(2048, 1)
	cert := testcerts.Cert(key, testcerts.Options{CommonName: "standalone-key"})
	k.vault.CreateKey("signing-key", key, emulator.KeyOptions{HSM: true})
	k.app.AddCertificate(cert)
	s, err := keyvault.NewSigner(k.vault.URL()+"/keys/signing-key", k.miCred, assertion.RS256, &k.vaultCO)
	require.NoError(t, err)
	c, err := credential.NewSignedAssertionCredential(tenantA, clientID, []*x509.Certificate{cert}, s, k.options())
	require.NoError(t, err)
	_, err = c.GetToken(ctx, vaultScope)
	require.NoError(t, err)
	require.Equal(t, int64(1), s.SignCount())
	require.Equal(t, int64(1), k.vault.Count("keys/get"), "the unversioned URL was resolved once")
	require.Contains(t, s.KeyID(), "/keys/signing-key/")
	require.NotNil(t, s.Public())

	ec := testcerts.EC()
	k.vault.CreateKey("ec-key", ec, emulator.KeyOptions{})
	es, err := keyvault.NewSigner(k.vault.URL()+"/keys/ec-key", k.miCred, "", &k.vaultCO)
	require.NoError(t, err)
	_, err = es.Sign(ctx, make([]byte, 32))
	require.ErrorIs(t, err, keyvault.ErrUnsupportedKey)

	_, err = keyvault.NewSigner(k.vault.URL()+"/certificates/x", k.miCred, "", &k.vaultCO)
	require.ErrorIs(t, err, keyvault.ErrInvalidURL)
	_, err = keyvault.NewSigner(k.vault.URL()+"/keys/x", k.miCred, "HS256", &k.vaultCO)
	require.ErrorIs(t, err, assertion.ErrUnsupportedAlgorithm)
}

func TestHSMCredentialRotation(t *testing.T) {
	ctx := context.Background()
	k := newKVEnv(t)
	chain1 := k.importHSM("hsm-cert", 0)
	c, err := credential.NewHSMSignedAssertionCredential(tenantA, clientID, k.certURL("hsm-cert"), k.miCred, k.hsmOptions(""))
	require.NoError(t, err)
	_, err = c.GetToken(ctx, vaultScope)
	require.NoError(t, err)

	// A new version (new key, new kid) replaces the old one on the app registration.
	chain2 := k.importHSM("hsm-cert", 1)
	k.app.RemoveCertificate(chain1[0])
	var kids []string
	k.entra.OnToken(func(r *emulator.TokenRequest) *emulator.ErrorResponse {
		if r.ClientID == clientID {
			kids = append(kids, fmt.Sprint(r.AssertionHeader["x5t"]))
		}
		return nil
	})
	_, err = c.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}})
	require.NoError(t, err, "rejected certificate: reload and retry once")
	require.Equal(t, []string{x5t(chain1[0]), x5t(chain2[0])}, kids)
	require.Equal(t, int64(2), k.vault.Count("certificates/get"))
	require.Equal(t, int64(2), k.vault.Count("keys/sign"), "one signature per key version")
	require.Zero(t, k.vault.Count("secrets/get"))
	a, err := c.Assertion(ctx, k.entra.TokenEndpoint(tenantA))
	require.NoError(t, err)
	h, _ := decodeJWT(t, a)
	require.Equal(t, x5t(chain2[0]), h["x5t"])
}
