package soak_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testcerts"
	"github.com/azcredkit/azcredkit/keyvault"
	"github.com/azcredkit/azcredkit/obo"
)

// TestOBOIsolation1000Users: 1,000 distinct users call the web app concurrently, twice each,
// through the middleware, with the per-user cache bounded below the number of users so that
// eviction happens under load. Every response must carry the caller's own oid.
func TestOBOIsolation1000Users(t *testing.T) {
	const users, maxCached = 1000, 400
	w := newWorld(t, time.Hour)
	w.recordAssertions()
	co := w.entra.ClientOptions()
	app, err := obo.NewAppWithSecret(tenantA, webAppID, webSecret, &obo.AppOptions{ClientOptions: co, DisableInstanceDiscovery: true, TrustEasyAuthHeaders: true, MaxCachedUsers: maxCached, Logger: newLogger(w.logs)})
	require.NoError(t, err)
	toks := make([]string, users)
	oids := make([]string, users)
	for i := range users {
		oids[i] = fmt.Sprintf("10000000-0000-4000-8000-%012d", i)
		w.entra.AddUser(tenantA, emulator.User{OID: oids[i], UPN: fmt.Sprintf("p%d@contoso.example", i)})
		toks[i] = w.entra.UserToken(tenantA, oids[i], webAppID, emulator.UserTokenOptions{Lifetime: time.Hour})
	}
	var maxSeen atomic.Int64
	srv := httptest.NewServer(app.Middleware(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		c, _ := obo.CredentialFromContext(r.Context())
		tok, err := c.GetToken(r.Context(), policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/user_impersonation"}})
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadGateway)
			return
		}
		w.sawToken(tok.Token)
		claims, err := w.entra.Verify(tok.Token)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusInternalServerError)
			return
		}
		if n := int64(app.CachedUsers()); n > maxSeen.Load() {
			maxSeen.Store(n)
		}
		fmt.Fprint(rw, claims["oid"])
	})))
	defer srv.Close()

	var cross, failed atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 128)
	for round := range 2 {
		for i := range users {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
				req.Header.Set(obo.HeaderAccessToken, toks[(i*7+round*13)%users])
				resp, err := srv.Client().Do(req)
				if err != nil {
					failed.Add(1)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode != http.StatusOK:
					failed.Add(1)
					w.logs.add(string(body))
				case string(body) != oids[(i*7+round*13)%users]:
					cross.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	t.Logf("OBO isolation: %d users x 2 requests, %d cross-user tokens, %d failures, %d OBO exchanges, cache held at most %d users (bound %d), %d at the end",
		users, cross.Load(), failed.Load(), w.entra.Count("token:obo"), maxSeen.Load(), maxCached, app.CachedUsers())
	require.Zero(t, cross.Load())
	require.Zero(t, failed.Load())
	require.LessOrEqual(t, maxSeen.Load(), int64(maxCached))
	require.LessOrEqual(t, app.CachedUsers(), maxCached)
	require.Greater(t, w.entra.Count("token:obo"), int64(users), "evicted users were exchanged again")
	checkNoSecrets(t, w)
}

// TestNoSecretsInErrors runs the failure scenarios and checks their errors and logs.
func TestNoSecretsInErrors(t *testing.T) {
	w := newWorld(t, time.Hour)
	w.recordAssertions()
	listenAzcoreLog(t, w.logs)
	ctx := context.Background()
	scope := policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}}
	co := w.entra.ClientOptions()
	co.Retry.MaxRetries = -1
	vo := keyvault.ClientOptions{ClientOptions: co, DisableChallengeResourceVerification: true}
	record := func(err error) {
		require.Error(t, err)
		w.logs.add(err.Error())
		w.logs.add(fmt.Sprintf("%+v", err))
	}
	// Tokens that work, so that there is something to leak.
	for _, c := range w.creds {
		tok, err := c.GetToken(ctx, scope)
		require.NoError(t, err)
		w.sawToken(tok.Token)
	}
	users, _ := w.userCreds(t, 2)

	// Entra refuses: wrong secret, unregistered certificate, unknown tenant, not JSON, step-up.
	badApp, err := obo.NewAppWithSecret(tenantA, webAppID, "not-the-secret-value", &obo.AppOptions{ClientOptions: co, DisableInstanceDiscovery: true})
	require.NoError(t, err)
	w.secrets = append(w.secrets, "not-the-secret-value")
	bc, err := badApp.Credential(w.entra.UserToken(tenantA, "00000000-0000-4000-8000-000000000000", webAppID, emulator.UserTokenOptions{}))
	require.NoError(t, err)
	_, err = bc.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/user_impersonation"}})
	record(err)
	w.entra.RequireMFA("https://database.windows.net")
	_, err = users[0].GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://database.windows.net/user_impersonation"}})
	var ir *obo.InteractionRequiredError
	require.True(t, errors.As(err, &ir))
	record(err)
	rec := httptest.NewRecorder()
	ir.WriteResponse(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	w.logs.add(rec.Body.String())
	w.entra.OnToken(func(r *emulator.TokenRequest) *emulator.ErrorResponse {
		w.sawToken(r.Form.Get("client_assertion"))
		return &emulator.ErrorResponse{Status: http.StatusBadGateway, Description: "<html>gateway</html>", Raw: true}
	})
	_, err = w.creds["signed-assertion"].GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://other.example/.default"}})
	record(err)
	w.entra.OnToken(nil)
	_, err = w.creds["signed-assertion"].GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://x.example/.default"}, TenantID: "cccccccc-0000-4000-8000-00000000000c"})
	record(err)

	// Key Vault refuses or holds something unusable.
	nxKey := testcerts.RSA(2048, 5)
	w.vault.ImportCertificate("nx", testcerts.Chain(nxKey, "nx"), nxKey, emulator.CertificateOptions{NonExportable: true})
	w.secrets = append(w.secrets, keySecrets(nxKey)...)
	w.keyParts = append(w.keyParts, keyParts(nxKey)...)
	for _, name := range []string{"nx", "missing"} {
		kc, err := credential.NewKeyVaultCertCredential(tenantA, kvAppID, w.vault.URL()+"/certificates/"+name, vaultReader(t, w), &credential.KeyVaultCertCredentialOptions{
			SignedAssertionCredentialOptions: credential.SignedAssertionCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true}, Vault: vo})
		require.NoError(t, err)
		_, err = kc.GetToken(ctx, scope)
		record(err)
	}
	// Bad user tokens.
	for _, bad := range []string{"garbage", w.entra.UserToken(tenantA, "00000000-0000-4000-8000-000000000001", kvAppID, emulator.UserTokenOptions{}),
		w.entra.UserToken(tenantA, "00000000-0000-4000-8000-000000000001", webAppID, emulator.UserTokenOptions{Expired: true})} {
		w.secrets = append(w.secrets, bad)
		_, err := w.app.Credential(bad)
		record(err)
	}
	checkNoSecrets(t, w)
}

// vaultReader is a credential allowed to read the soak vault (the managed identity stand-in).
func vaultReader(t *testing.T, w *world) *credential.SignedAssertionCredential {
	t.Helper()
	key := testcerts.RSA(2048, 6)
	cert := testcerts.Cert(key, testcerts.Options{CommonName: "vault-reader"})
	const readerID = "a0a0a0a0-0000-4000-8000-0000000000b0"
	w.entra.RegisterApp(tenantA, readerID).AddCertificate(cert)
	signer, err := assertion.NewLocalSigner(key, "")
	require.NoError(t, err)
	c, err := credential.NewSignedAssertionCredential(tenantA, readerID, []*x509.Certificate{cert}, signer, &credential.SignedAssertionCredentialOptions{ClientOptions: w.entra.ClientOptions(), DisableInstanceDiscovery: true})
	require.NoError(t, err)
	w.secrets = append(w.secrets, keySecrets(key)...)
	w.keyParts = append(w.keyParts, keyParts(key)...)
	return c
}
