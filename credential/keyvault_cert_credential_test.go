package credential_test

import (
	"context"
	"crypto/sha1" //nolint:gosec // x5t
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testcerts"
	"github.com/azcredkit/azcredkit/keyvault"
)

var vaultScope = policy.TokenRequestOptions{Scopes: []string{vaultRes}}

func TestKeyVaultCertCredentialFormats(t *testing.T) {
	for _, tc := range []struct {
		name string
		bits int
		idx  int
		o    emulator.CertificateOptions
	}{
		{"modern PFX", 2048, 0, emulator.CertificateOptions{}},
		{"legacy PFX", 2048, 1, emulator.CertificateOptions{LegacyPKCS12: true}},
		{"PFX with CA certificates first", 2048, 2, emulator.CertificateOptions{CACertsFirst: true}},
		{"PEM PKCS#8", 2048, 3, emulator.CertificateOptions{ContentType: "application/x-pem-file"}},
		{"PEM PKCS#1", 3072, 0, emulator.CertificateOptions{ContentType: "application/x-pem-file", PKCS1Key: true}},
		{"PEM PKCS#1 labelled PRIVATE KEY", 2048, 4, emulator.CertificateOptions{ContentType: "application/x-pem-file", PKCS1LabeledPrivateKey: true}},
		{"PEM certificates first", 2048, 5, emulator.CertificateOptions{ContentType: "application/x-pem-file", CACertsFirst: true}},
		{"RSA 3072 PFX", 3072, 1, emulator.CertificateOptions{}},
		{"RSA 4096 PFX", 4096, 0, emulator.CertificateOptions{}},
		{"RSA 4096 legacy PFX", 4096, 1, emulator.CertificateOptions{LegacyPKCS12: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newKVEnv(t)
			key := testcerts.RSA(tc.bits, tc.idx)
			chain := testcerts.Chain(key, "kv-"+strings.ReplaceAll(tc.name, " ", "-"))
			k.importCert("app-cert", chain, key, tc.o)
			o := k.kvOptions()
			o.SendCertificateChain = true
			var x5c []any
			k.entra.OnToken(func(r *emulator.TokenRequest) *emulator.ErrorResponse {
				if r.ClientID == clientID {
					x5c, _ = r.AssertionHeader["x5c"].([]any)
				}
				return nil
			})
			c, err := credential.NewKeyVaultCertCredential(tenantA, clientID, k.certURL("app-cert"), k.miCred, o)
			require.NoError(t, err)
			tok, err := c.GetToken(context.Background(), vaultScope)
			require.NoError(t, err)
			claims, err := k.entra.Verify(tok.Token)
			require.NoError(t, err)
			require.Equal(t, clientID, claims["appid"])
			require.Equal(t, "2", claims["appidacr"], "v1 token (Key Vault)")
			require.Len(t, x5c, 3, "the whole chain, leaf first, is sent in x5c")
			require.Equal(t, int64(1), k.vault.Count("secrets/get"))
		})
	}
}

func TestKeyVaultCertCredentialURLForms(t *testing.T) {
	k := newKVEnv(t)
	key := testcerts.RSA(2048, 0)
	chain := testcerts.Chain(key, "url-forms")
	v := k.importCert("app-cert", chain, key, emulator.CertificateOptions{})
	for _, u := range []string{
		k.vault.URL() + "/certificates/app-cert",
		k.vault.URL() + "/certificates/app-cert/",
		k.vault.URL() + "/certificates/app-cert/" + v,
		k.vault.URL() + "/secrets/app-cert",
		k.vault.URL() + "/secrets/app-cert/" + v,
	} {
		t.Run(u[len(k.vault.URL()):], func(t *testing.T) {
			c, err := credential.NewKeyVaultCertCredential(tenantA, clientID, u, k.miCred, k.kvOptions())
			require.NoError(t, err)
			_, err = c.GetToken(context.Background(), vaultScope)
			require.NoError(t, err)
		})
	}
	k.vault.ResetCounts()
	for _, bad := range []string{
		"http://" + strings.TrimPrefix(k.vault.URL(), "https://") + "/certificates/app-cert",
		k.vault.URL() + "/keys/app-cert",
		k.vault.URL() + "/certificates/",
		k.vault.URL() + "/certificates",
		k.vault.URL() + "/certificates/app cert",
		k.vault.URL() + "/certificates/app-cert/v1/extra",
		k.vault.URL() + "/certificates/app-cert?api-version=7.4",
		"",
		"not a url",
	} {
		t.Run("bad "+bad, func(t *testing.T) {
			c, err := credential.NewKeyVaultCertCredential(tenantA, clientID, bad, k.miCred, k.kvOptions())
			require.Nil(t, c)
			require.ErrorIs(t, err, keyvault.ErrInvalidURL)
			require.ErrorContains(t, err, "https://{vault}/certificates/{name}")
		})
	}
	require.Zero(t, k.vault.Count("total"), "constructors do no I/O")
}

func TestKeyVaultCertCredentialConcurrentColdLoadsOnce(t *testing.T) {
	k := newKVEnv(t)
	key := testcerts.RSA(2048, 1)
	k.importCert("app-cert", testcerts.Chain(key, "cold"), key, emulator.CertificateOptions{})
	c, err := credential.NewKeyVaultCertCredential(tenantA, clientID, k.certURL("app-cert"), k.miCred, k.kvOptions())
	require.NoError(t, err)
	k.vault.Inject(emulator.Fault{Count: 1, Delay: 100 * time.Millisecond, Match: func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/secrets/") }})
	concurrentTokens(t, c, 100)
	require.Equal(t, int64(1), k.vault.Count("secrets/get"))
	require.Equal(t, int64(2), k.entra.Count("token"), "one token for the vault credential, one for the app")
}

func TestKeyVaultCertCredentialRotation(t *testing.T) {
	ctx := context.Background()
	t.Run("rejected certificate reloads and retries once", func(t *testing.T) {
		k := newKVEnv(t)
		key1, key2 := testcerts.RSA(2048, 0), testcerts.RSA(2048, 1)
		chain1, chain2 := testcerts.Chain(key1, "v1"), testcerts.Chain(key2, "v2")
		k.importCert("app-cert", chain1, key1, emulator.CertificateOptions{})
		var logs logBuffer
		o := k.kvOptions()
		o.Logger = logs.logger()
		c, err := credential.NewKeyVaultCertCredential(tenantA, clientID, k.certURL("app-cert"), k.miCred, o)
		require.NoError(t, err)
		_, err = c.GetToken(ctx, vaultScope)
		require.NoError(t, err)

		// Key Vault renews the certificate; the app registration drops the old one.
		v2 := k.importCert("app-cert", chain2, key2, emulator.CertificateOptions{})
		k.app.RemoveCertificate(chain1[0])
		tok, err := c.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}})
		require.NoError(t, err, "the next token request succeeds with the new certificate")
		_, err = k.entra.Verify(tok.Token)
		require.NoError(t, err)
		require.Equal(t, int64(2), k.vault.Count("secrets/get"))
		a, err := c.Assertion(ctx, k.entra.TokenEndpoint(tenantA))
		require.NoError(t, err)
		h, _ := decodeJWT(t, a)
		require.Equal(t, x5t(chain2[0]), h["x5t"])
		require.Contains(t, logs.String(), "certificate rotated")
		require.Contains(t, logs.String(), v2)
	})
	t.Run("periodic check picks up the new version", func(t *testing.T) {
		k := newKVEnv(t)
		key1, key2 := testcerts.RSA(2048, 2), testcerts.RSA(2048, 3)
		chain1, chain2 := testcerts.Chain(key1, "p1"), testcerts.Chain(key2, "p2")
		k.importCert("app-cert", chain1, key1, emulator.CertificateOptions{})
		o := k.kvOptions()
		o.RotationCheckInterval = 200 * time.Millisecond
		c, err := credential.NewKeyVaultCertCredential(tenantA, clientID, k.certURL("app-cert"), k.miCred, o)
		require.NoError(t, err)
		aud := k.entra.TokenEndpoint(tenantA)
		a, err := c.Assertion(ctx, aud)
		require.NoError(t, err)
		h, _ := decodeJWT(t, a)
		require.Equal(t, x5t(chain1[0]), h["x5t"])
		k.importCert("app-cert", chain2, key2, emulator.CertificateOptions{})
		require.Eventually(t, func() bool {
			a, err := c.Assertion(ctx, aud)
			require.NoError(t, err)
			h, _ := decodeJWT(t, a)
			return h["x5t"] == x5t(chain2[0])
		}, 5*time.Second, 50*time.Millisecond)
		// No change, no rebuild: reads stay at one per period.
		n := k.vault.Count("secrets/get")
		require.LessOrEqual(t, n, int64(10))
	})
	t.Run("pinned version never changes", func(t *testing.T) {
		k := newKVEnv(t)
		key1, key2 := testcerts.RSA(2048, 4), testcerts.RSA(2048, 5)
		chain1, chain2 := testcerts.Chain(key1, "pin1"), testcerts.Chain(key2, "pin2")
		v1 := k.importCert("app-cert", chain1, key1, emulator.CertificateOptions{})
		o := k.kvOptions()
		o.RotationCheckInterval = 50 * time.Millisecond
		c, err := credential.NewKeyVaultCertCredential(tenantA, clientID, k.certURL("app-cert")+"/"+v1, k.miCred, o)
		require.NoError(t, err)
		_, err = c.GetToken(ctx, vaultScope)
		require.NoError(t, err)
		k.importCert("app-cert", chain2, key2, emulator.CertificateOptions{})
		k.app.RemoveCertificate(chain1[0])
		_, err = c.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}})
		require.ErrorContains(t, err, "AADSTS700027", "a pinned certificate is not replaced")
		require.Equal(t, int64(1), k.vault.Count("secrets/get"))
	})
}

func x5t(c *x509.Certificate) string {
	s := sha1.Sum(c.Raw) //nolint:gosec // x5t
	return base64.RawURLEncoding.EncodeToString(s[:])
}

func TestKeyVaultCertCredentialVaultFaults(t *testing.T) {
	ctx := context.Background()
	t.Run("429 and 503 with Retry-After are survived", func(t *testing.T) {
		k := newKVEnv(t)
		key := testcerts.RSA(2048, 6)
		k.importCert("app-cert", testcerts.Chain(key, "faults"), key, emulator.CertificateOptions{})
		k.vault.Inject(emulator.Fault{Count: 1, Status: http.StatusTooManyRequests, RetryAfter: time.Second})
		k.vault.Inject(emulator.Fault{Count: 1, Status: http.StatusServiceUnavailable, RetryAfter: time.Second})
		c, err := credential.NewKeyVaultCertCredential(tenantA, clientID, k.certURL("app-cert"), k.miCred, k.kvOptions())
		require.NoError(t, err)
		start := time.Now()
		_, err = c.GetToken(ctx, vaultScope)
		require.NoError(t, err)
		require.GreaterOrEqual(t, time.Since(start), 2*time.Second, "Retry-After honoured")
	})
	t.Run("vault down after load: tokens keep flowing", func(t *testing.T) {
		k := newKVEnv(t)
		k.entra.SetTokenLifetime(2 * time.Second)
		key := testcerts.RSA(2048, 7)
		k.importCert("app-cert", testcerts.Chain(key, "down"), key, emulator.CertificateOptions{})
		var logs logBuffer
		o := k.kvOptions()
		o.RotationCheckInterval = 100 * time.Millisecond
		o.Logger = logs.logger()
		o.Vault.Retry.MaxRetries = -1
		c, err := credential.NewKeyVaultCertCredential(tenantA, clientID, k.certURL("app-cert"), k.miCred, o)
		require.NoError(t, err)
		_, err = c.GetToken(ctx, vaultScope)
		require.NoError(t, err)
		k.vault.Inject(emulator.Fault{Count: 1 << 20, Status: http.StatusServiceUnavailable})
		for i := range 5 {
			time.Sleep(150 * time.Millisecond)
			_, err := c.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{fmt.Sprintf("https://r%d.example/.default", i)}})
			require.NoError(t, err)
		}
		require.Eventually(t, func() bool { return strings.Contains(logs.String(), "still using the loaded version") }, 5*time.Second, 20*time.Millisecond)
	})
}

func TestKeyVaultCertCredentialBadInput(t *testing.T) {
	ctx := context.Background()
	ecKey := testcerts.EC()
	rsaKey := testcerts.RSA(2048, 0)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, k *kvEnv)
		want  error
		msg   []string
	}{
		{"non-exportable", func(t *testing.T, k *kvEnv) {
			k.importCert("app-cert", testcerts.Chain(rsaKey, "nx"), rsaKey, emulator.CertificateOptions{NonExportable: true})
		}, keyvault.ErrNotExportable, []string{"NewHSMSignedAssertionCredential", "app-cert"}},
		{"EC key", func(t *testing.T, k *kvEnv) {
			k.vault.ImportCertificate("app-cert", []*x509.Certificate{testcerts.Cert(ecKey, testcerts.Options{})}, ecKey, emulator.CertificateOptions{ContentType: "application/x-pem-file"})
		}, keyvault.ErrUnsupportedKey, []string{"app-cert", "RSA"}},
		{"expired", func(t *testing.T, k *kvEnv) {
			c := testcerts.Cert(rsaKey, testcerts.Options{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
			k.vault.ImportCertificate("app-cert", []*x509.Certificate{c}, rsaKey, emulator.CertificateOptions{})
		}, keyvault.ErrCertificateExpired, []string{"app-cert", "expired"}},
		{"key of another certificate", func(t *testing.T, k *kvEnv) {
			other := testcerts.Cert(testcerts.RSA(2048, 1), testcerts.Options{})
			k.vault.SetSecret("app-cert", string(pemOf(t, rsaKey, other)), "application/x-pem-file")
		}, keyvault.ErrKeyMismatch, []string{"app-cert"}},
		{"no secrets/get permission", func(t *testing.T, k *kvEnv) {
			k.importCert("app-cert", testcerts.Chain(rsaKey, "denied"), rsaKey, emulator.CertificateOptions{})
			k.vault.Deny(miClientID, "secrets/get")
		}, keyvault.ErrAccessDenied, []string{"secrets/get", "Key Vault Secrets User", "app-cert"}},
		{"missing certificate", func(t *testing.T, k *kvEnv) {}, keyvault.ErrNotFound, []string{"app-cert", "not found"}},
		{"disabled version", func(t *testing.T, k *kvEnv) {
			v := k.importCert("app-cert", testcerts.Chain(rsaKey, "disabled"), rsaKey, emulator.CertificateOptions{})
			k.vault.SetEnabled("app-cert", v, false)
		}, keyvault.ErrDisabled, []string{"app-cert", "disabled"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newKVEnv(t)
			tc.setup(t, k)
			c, err := credential.NewKeyVaultCertCredential(tenantA, clientID, k.certURL("app-cert"), k.miCred, k.kvOptions())
			require.NoError(t, err)
			_, err = c.GetToken(ctx, vaultScope)
			require.ErrorIs(t, err, tc.want)
			for _, m := range tc.msg {
				require.ErrorContains(t, err, m)
			}
			_, err = c.Assertion(ctx, k.entra.TokenEndpoint(tenantA))
			require.ErrorIs(t, err, tc.want)
		})
	}
	t.Run("nil vault credential", func(t *testing.T) {
		_, err := credential.NewKeyVaultCertCredential(tenantA, clientID, "https://v.vault.azure.net/certificates/x", nil, nil)
		require.ErrorContains(t, err, "vault credential is nil")
	})
	t.Run("assertion lifetime", func(t *testing.T) {
		_, err := credential.NewKeyVaultCertCredential(tenantA, clientID, "https://v.vault.azure.net/certificates/x", &countingCred{},
			&credential.KeyVaultCertCredentialOptions{SignedAssertionCredentialOptions: credential.SignedAssertionCredentialOptions{AssertionLifetime: 2 * time.Hour}})
		require.ErrorIs(t, err, assertion.ErrInvalidOptions)
	})
}

// TestKeyVaultCertCredentialDrivesSDKClientsCrossTenant: the credential itself authenticates the
// real azsecrets and azkeys clients to a vault in another tenant than its home tenant.
func TestKeyVaultCertCredentialDrivesSDKClientsCrossTenant(t *testing.T) {
	ctx := context.Background()
	k := newKVEnv(t)
	key := testcerts.RSA(2048, 2)
	k.importCert("app-cert", testcerts.Chain(key, "sdk"), key, emulator.CertificateOptions{})
	vaultB := emulator.NewVault(k.entra, emulator.VaultOptions{Tenant: tenantB})
	t.Cleanup(vaultB.Close)
	vaultB.ImportCertificate("data", testcerts.Chain(testcerts.RSA(2048, 3), "data"), testcerts.RSA(2048, 3), emulator.CertificateOptions{ContentType: "application/x-pem-file"})

	for _, allowed := range []bool{false, true} {
		o := k.kvOptions()
		if allowed {
			o.AdditionallyAllowedTenants = []string{tenantB}
		}
		c, err := credential.NewKeyVaultCertCredential(tenantA, clientID, k.certURL("app-cert"), k.miCred, o)
		require.NoError(t, err)
		sc, err := azsecrets.NewClient(vaultB.URL(), c, &azsecrets.ClientOptions{ClientOptions: k.vaultCO.ClientOptions, DisableChallengeResourceVerification: true})
		require.NoError(t, err)
		kc, err := azkeys.NewClient(vaultB.URL(), c, &azkeys.ClientOptions{ClientOptions: k.vaultCO.ClientOptions, DisableChallengeResourceVerification: true})
		require.NoError(t, err)
		_, err = sc.GetSecret(ctx, "data", "", nil)
		if !allowed {
			require.ErrorContains(t, err, "AdditionallyAllowedTenants")
			continue
		}
		require.NoError(t, err)
		kr, err := kc.GetKey(ctx, "data", "", nil)
		require.NoError(t, err)
		require.NotNil(t, kr.Key)
	}
}

// countingCred is a TokenCredential that must never be called.
type countingCred struct{ n int }

func (c *countingCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.n++
	return azcore.AccessToken{}, errors.New("not expected")
}
