package obo_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testcerts"
	"github.com/azcredkit/azcredkit/keyvault"
	"github.com/azcredkit/azcredkit/obo"
)

const (
	vaultReaderID     = "f1f1f1f1-0000-0000-0000-0000000000f1" // the workload's managed identity stand-in
	vaultReaderSecret = "vault-reader-secret"
	vaultUser         = "https://vault.azure.net/user_impersonation"
)

// vaultEnv is env plus a Key Vault holding the middle tier's certificate.
type vaultEnv struct {
	*env
	vault  *emulator.Vault
	reader azcore.TokenCredential
	kvCO   keyvault.ClientOptions
}

func newVaultEnv(t testing.TB) *vaultEnv {
	t.Helper()
	e := newEnv(t)
	e.entra.RegisterApp(tenant, vaultReaderID).AddSecret(vaultReaderSecret)
	v := emulator.NewVault(e.entra, emulator.VaultOptions{Tenant: tenant})
	t.Cleanup(v.Close)
	co := e.options().ClientOptions
	reader, err := azidentity.NewClientSecretCredential(tenant, vaultReaderID, vaultReaderSecret, &azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true})
	require.NoError(t, err)
	return &vaultEnv{env: e, vault: v, reader: reader, kvCO: keyvault.ClientOptions{ClientOptions: co, DisableChallengeResourceVerification: true}}
}

// importCert stores a new version of the certificate "api-cert" and registers it on the app.
func (v *vaultEnv) importCert(key crypto.Signer, chain []*x509.Certificate, hsm bool) {
	v.vault.ImportCertificate("api-cert", chain, key, emulator.CertificateOptions{NonExportable: hsm, HSM: hsm})
	v.api.AddCertificate(chain[0])
}

// provider returns the middle tier's credential on the vault certificate.
func (v *vaultEnv) provider(t testing.TB, hsm bool) assertion.Provider {
	t.Helper()
	so := credential.SignedAssertionCredentialOptions{ClientOptions: v.options().ClientOptions, DisableInstanceDiscovery: true}
	url := v.vault.URL() + "/certificates/api-cert"
	if hsm {
		c, err := credential.NewHSMSignedAssertionCredential(tenant, apiID, url, v.reader, &credential.HSMSignedAssertionCredentialOptions{SignedAssertionCredentialOptions: so, Vault: v.kvCO})
		require.NoError(t, err)
		return c
	}
	c, err := credential.NewKeyVaultCertCredential(tenant, apiID, url, v.reader, &credential.KeyVaultCertCredentialOptions{SignedAssertionCredentialOptions: so, Vault: v.kvCO})
	require.NoError(t, err)
	return c
}

// vaultReads counts the reads of the certificate (the secret, or the public certificate for the
// HSM credential).
func (v *vaultEnv) vaultReads(hsm bool) int64 {
	if hsm {
		return v.vault.Count("certificates/get")
	}
	return v.vault.Count("secrets/get")
}

// exchange has user i's token exchanged for scope.
func (v *vaultEnv) exchange(t testing.TB, a *obo.App, i int, scope string) error {
	t.Helper()
	c, err := a.Credential(v.userToken(v.user(i), emulator.UserTokenOptions{}))
	require.NoError(t, err)
	tok, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{scope}})
	if err == nil {
		claims, verr := v.entra.Verify(tok.Token)
		require.NoError(t, verr)
		require.Equal(t, "2", claims["appidacr"], "the middle tier authenticated with its certificate")
	}
	return err
}

// The Easy Auth example's flagship pattern: an OBO App on a Key Vault certificate. After Key Vault
// renews the certificate and the old one leaves the app registration, the next exchange is
// rejected (AADSTS700027), the provider reads the vault once, and that exchange and all the
// following ones succeed with the new certificate.
func TestAppFollowsCertificateRotation(t *testing.T) {
	for _, hsm := range []bool{false, true} {
		name := "KeyVaultCertCredential"
		if hsm {
			name = "HSMSignedAssertionCredential"
		}
		t.Run(name, func(t *testing.T) {
			v := newVaultEnv(t)
			key1, key2 := testcerts.RSA(2048, 0), testcerts.RSA(2048, 1)
			chain1, chain2 := testcerts.Chain(key1, "api-v1"), testcerts.Chain(key2, "api-v2")
			v.importCert(key1, chain1, hsm)
			var logs syncLog
			o := v.options()
			o.Logger = logs.logger()
			a, err := obo.NewAppWithAssertion(tenant, apiID, v.provider(t, hsm), o)
			require.NoError(t, err)
			require.NoError(t, v.exchange(t, a, 1, storage))

			v.importCert(key2, chain2, hsm)
			v.api.RemoveCertificate(chain1[0])
			v.vault.ResetCounts()
			for i := 2; i <= 5; i++ {
				require.NoError(t, v.exchange(t, a, i, storage), "user %d after the rotation", i)
			}
			require.Equal(t, int64(1), v.vaultReads(hsm), "one vault read for the rotation")
			if hsm {
				require.Equal(t, int64(1), v.vault.Count("keys/sign"), "one signature with the new key serves every exchange")
			}
			require.Contains(t, logs.String(), "retrying once with the current certificate")
		})
	}
}

// Two exchanges (two scopes) rejected at once after a rotation: both are retried with the new
// certificate, and the vault is read once.
func TestAppConcurrentRejectionsAfterRotation(t *testing.T) {
	for _, hsm := range []bool{false, true} {
		t.Run(fmt.Sprint("hsm=", hsm), func(t *testing.T) {
			v := newVaultEnv(t)
			key1, key2 := testcerts.RSA(2048, 2), testcerts.RSA(2048, 3)
			chain1, chain2 := testcerts.Chain(key1, "api-c1"), testcerts.Chain(key2, "api-c2")
			v.importCert(key1, chain1, hsm)
			a, err := obo.NewAppWithAssertion(tenant, apiID, v.provider(t, hsm), v.options())
			require.NoError(t, err)
			require.NoError(t, v.exchange(t, a, 1, storage))

			v.importCert(key2, chain2, hsm)
			v.api.RemoveCertificate(chain1[0])
			v.vault.ResetCounts()
			// Hold the two exchanges so that both are rejected before either reloads.
			v.entra.Inject(emulator.Fault{Count: 2, Delay: 100 * time.Millisecond, Match: func(r *http.Request) bool {
				return strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") && r.PostFormValue("requested_token_use") == "on_behalf_of"
			}})
			c, err := a.Credential(v.userToken(v.user(2), emulator.UserTokenOptions{}))
			require.NoError(t, err)
			var wg sync.WaitGroup
			for _, scope := range []string{storage, vaultUser} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{scope}})
					require.NoError(t, err, "scope %s", scope)
				}()
			}
			wg.Wait()
			require.Equal(t, int64(1), v.vaultReads(hsm), "one vault read for both rejections")
		})
	}
}

// panicProvider is a user's Provider with a bug.
type panicProvider struct{}

func (panicProvider) Assertion(context.Context, string) (string, error) {
	var p *struct{ jwt string }
	return p.jwt, nil // nil pointer dereference
}

// A panic in the user's Provider runs inside the shared exchange: every caller gets an error, the
// process survives, and the panic is logged.
func TestAppPanickingProviderBecomesError(t *testing.T) {
	e := newEnv(t)
	var logs syncLog
	o := e.options()
	o.Logger = logs.logger()
	a, err := obo.NewAppWithAssertion(tenant, apiID, panicProvider{}, o)
	require.NoError(t, err)
	c, err := a.Credential(e.userToken(e.user(7), emulator.UserTokenOptions{}))
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{storage}})
			require.ErrorIs(t, err, assertion.ErrPanic)
			require.ErrorContains(t, err, "nil pointer dereference")
		}()
	}
	wg.Wait()
	require.Contains(t, logs.String(), "panicked")
	require.Contains(t, logs.String(), "panic_stack")
}

// The OBO flow: an undecodable 200 answer must not carry the user's new access token into the
// error or the logs.
func TestOBOTokenResponseBodyNeverInErrorsOrLogs(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(map[string]any)
		ok   bool
	}{
		{"expires_in as a decimal string", func(b map[string]any) { b["expires_in"] = "3599.0" }, true},
		{"expires_in missing", func(b map[string]any) { delete(b, "expires_in") }, false},
		{"undecodable field", func(b map[string]any) { b["token_type"] = []int{1} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			var logs syncLog
			o := e.options()
			o.Logger = logs.logger()
			a := e.app(t, o)
			userTok := e.userToken(e.user(8), emulator.UserTokenOptions{})
			c, err := a.Credential(userTok)
			require.NoError(t, err)
			var mu sync.Mutex
			var sent string
			e.entra.Inject(emulator.Fault{EditTokenResponse: func(b map[string]any) {
				mu.Lock()
				sent = b["access_token"].(string)
				mu.Unlock()
				tc.edit(b)
			}})
			tok, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{storage}})
			mu.Lock()
			at := sent
			mu.Unlock()
			require.NotEmpty(t, at)
			if tc.ok {
				require.NoError(t, err)
				require.Equal(t, at, tok.Token)
				return
			}
			require.ErrorContains(t, err, "the body is not shown")
			for _, part := range append(strings.Split(at, "."), strings.Split(userTok, ".")...) {
				require.NotContains(t, err.Error(), part)
				require.NotContains(t, logs.String(), part)
			}
			require.Contains(t, logs.String(), "token request failed")
		})
	}
}

// syncLog is a concurrency-safe buffer behind a slog text handler.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *syncLog) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
