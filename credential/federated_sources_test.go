package credential_test

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/obo"
)

const (
	k8sIssuer  = "https://westeurope.oic.prod-aks.azure.com/aaaaaaaa-0000-0000-0000-00000000000a/11111111-2222-3333-4444-555555555555/"
	k8sSubject = "system:serviceaccount:payments:api"
	ghSubject  = "repo:contoso/payments:environment:production"
)

// writeToken writes a service account token of the Kubernetes issuer to path, as the kubelet
// does (a new file swapped in).
func (f *fedEnv) writeToken(t testing.TB, path, subject string, lifetime time.Duration) string {
	t.Helper()
	tok := f.entra.FederatedToken(k8sIssuer, subject, emulator.TokenExchangeAudience, lifetime)
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(tok+"\n"), 0o600))
	require.NoError(t, os.Rename(tmp, path))
	return tok
}

func TestTokenFileSourceKubernetes(t *testing.T) {
	f := newFedEnv(t)
	require.NoError(t, f.app.AddFederatedCredential(emulator.FederatedIdentityCredential{Name: "aks-payments", Issuer: k8sIssuer, Subject: k8sSubject, Audiences: []string{emulator.TokenExchangeAudience}}))
	path := filepath.Join(t.TempDir(), "azure-identity-token")
	first := f.writeToken(t, path, k8sSubject, time.Hour)
	src, err := credential.NewTokenFileSource(path)
	require.NoError(t, err)
	c := f.fedCred(t, src, nil)
	tok, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
	require.NoError(t, err)
	_, err = f.entra.Verify(tok.Token)
	require.NoError(t, err)
	require.Equal(t, []string{first}, f.presented(clientID), "the file's token, whitespace trimmed, is the assertion")

	// The kubelet rotates the token: the source reads the new file at once (size or time changed).
	at, err := src.GetToken(context.Background(), policy.TokenRequestOptions{})
	require.NoError(t, err)
	require.Equal(t, first, at.Token)
	assert.WithinDuration(t, time.Now().Add(credential.TokenFileRereadInterval), at.RefreshOn, 5*time.Second, "asks to be read again within 5 minutes")
	second := f.writeToken(t, path, k8sSubject, 2*time.Hour)
	require.NoError(t, os.Chtimes(path, time.Now().Add(time.Second), time.Now().Add(time.Second)))
	at, err = src.GetToken(context.Background(), policy.TokenRequestOptions{})
	require.NoError(t, err)
	assert.Equal(t, second, at.Token)
	assert.WithinDuration(t, time.Now().Add(2*time.Hour), at.ExpiresOn, 5*time.Second, "expiry from the token's exp")

	// The file disappears: the valid token read before is kept.
	require.NoError(t, os.Remove(path))
	at, err = src.GetToken(context.Background(), policy.TokenRequestOptions{})
	require.NoError(t, err)
	assert.Equal(t, second, at.Token)
}

func TestTokenFileSourceBadFiles(t *testing.T) {
	f := newFedEnv(t)
	dir := t.TempDir()
	for _, c := range []struct {
		name    string
		content *string
		is      error
		says    string
	}{
		{"missing", nil, fs.ErrNotExist, "azure.workload.identity/use"},
		{"empty", ptr(" \n"), credential.ErrInvalidFederatedToken, "empty"},
		{"not a JWT", ptr("not-a-token"), credential.ErrInvalidFederatedToken, "not a JWT"},
		{"expired", ptr(f.entra.FederatedToken(k8sIssuer, k8sSubject, emulator.TokenExchangeAudience, -time.Minute)), credential.ErrInvalidFederatedToken, "expired"},
		{"too big", ptr(strings.Repeat("a", credential.MaxFederatedTokenSize+1)), credential.ErrInvalidFederatedToken, "bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-"))
			if c.content != nil {
				require.NoError(t, os.WriteFile(path, []byte(*c.content), 0o600))
			}
			src, err := credential.NewTokenFileSource(path)
			require.NoError(t, err)
			_, err = src.GetToken(context.Background(), policy.TokenRequestOptions{})
			require.ErrorIs(t, err, c.is)
			assert.Contains(t, err.Error(), c.says)
			assert.Contains(t, err.Error(), path)
			// Through the federated credential, nothing reaches Entra and the error says why.
			_, err = f.fedCred(t, src, nil).GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
			require.ErrorIs(t, err, c.is)
		})
	}
	_, err := credential.NewTokenFileSource("")
	require.ErrorIs(t, err, assertion.ErrInvalidOptions)
	assert.Equal(t, 0, f.count(clientID))
}

func TestGitHubActionsSource(t *testing.T) {
	f := newFedEnv(t)
	gh := emulator.NewActionsOIDC(f.entra, ghSubject)
	t.Cleanup(gh.Close)
	require.NoError(t, f.app.AddFederatedCredential(emulator.FederatedIdentityCredential{Name: "github-production", Issuer: emulator.GitHubActionsIssuer, Subject: ghSubject, Audiences: []string{emulator.TokenExchangeAudience}}))
	t.Setenv("ACTIONS_ID_TOKEN_REQUEST_URL", gh.RequestURL())
	t.Setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", gh.RequestToken())
	src, err := credential.NewGitHubActionsSource(&credential.GitHubActionsSourceOptions{ClientOptions: f.entra.ClientOptions()})
	require.NoError(t, err)
	c := f.fedCred(t, src, nil)
	concurrentTokens(t, c, 20)
	assert.Equal(t, int64(1), gh.Count("token:issued"), "20 cold callers: one GitHub request")
	_, ac := decodeJWT(t, f.presented(clientID)[0])
	assert.Equal(t, emulator.GitHubActionsIssuer, ac["iss"])
	assert.Equal(t, ghSubject, ac["sub"])
	assert.Equal(t, credential.TokenExchangeAudience, ac["aud"], "requested with the audience")

	// A wrong request token: a clear error without the request token.
	bad, err := credential.NewGitHubActionsSource(&credential.GitHubActionsSourceOptions{ClientOptions: f.entra.ClientOptions(), RequestToken: "wrong-request-token-value"})
	require.NoError(t, err)
	_, err = bad.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{credential.TokenExchangeAudience + "/.default"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "401")
	assert.Contains(t, err.Error(), "id-token: write")
	assert.NotContains(t, err.Error(), "wrong-request-token-value")
	assert.NotContains(t, err.Error(), gh.RequestToken())

	// Not in GitHub Actions: both variables named.
	t.Setenv("ACTIONS_ID_TOKEN_REQUEST_URL", "")
	t.Setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "")
	_, err = credential.NewGitHubActionsSource(nil)
	require.ErrorIs(t, err, assertion.ErrInvalidOptions)
	assert.Contains(t, err.Error(), "ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN")
}

func TestGitHubActionsSourceBadAnswers(t *testing.T) {
	var calls atomic.Int64
	var answer atomic.Value
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		a := answer.Load().(func(http.ResponseWriter))
		a(w)
	}))
	t.Cleanup(srv.Close)
	opts := &credential.GitHubActionsSourceOptions{
		ClientOptions: azcore.ClientOptions{Transport: srv.Client(), Retry: policy.RetryOptions{MaxRetries: 1, RetryDelay: time.Millisecond, MaxRetryDelay: time.Millisecond}},
		RequestURL:    srv.URL + "/idtoken?api-version=2.0", RequestToken: "request-token-value",
	}
	src, err := credential.NewGitHubActionsSource(opts)
	require.NoError(t, err)
	for _, c := range []struct {
		name   string
		answer func(http.ResponseWriter)
		says   string
	}{
		{"huge", func(w http.ResponseWriter) {
			_, _ = w.Write([]byte(`{"value":"` + strings.Repeat("a", 200<<10) + `"}`))
		}, "without a token"},
		{"no value", func(w http.ResponseWriter) { _, _ = w.Write([]byte(`{"count":0}`)) }, "without a token"},
		{"not JSON", func(w http.ResponseWriter) { _, _ = w.Write([]byte(`<html>`)) }, "without a token"},
		{"not a JWT", func(w http.ResponseWriter) { _, _ = w.Write([]byte(`{"value":"opaque"}`)) }, "not a JWT"},
		{"server error", func(w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) }, "HTTP 503"},
	} {
		t.Run(c.name, func(t *testing.T) {
			answer.Store(c.answer)
			before := calls.Load()
			defer func() {
				if c.name == "server error" {
					assert.Equal(t, int64(2), calls.Load()-before, "503 is retried by the pipeline")
				}
			}()
			_, err := src.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{credential.TokenExchangeAudience + "/.default"}})
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.says)
			assert.NotContains(t, err.Error(), "request-token-value")
			assert.NotContains(t, err.Error(), "aaaaaaaaaa")
		})
	}
	_, err = src.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"a/.default", "b/.default"}})
	require.ErrorIs(t, err, credential.ErrInvalidScopes)
	opts.RequestURL = "http://127.0.0.1/idtoken"
	_, err = credential.NewGitHubActionsSource(opts)
	require.ErrorIs(t, err, assertion.ErrInvalidOptions)
}

func TestFederatedCredentialServesOBO(t *testing.T) {
	f := newFedEnv(t)
	f.trust(t)
	fed := f.fedCred(t, f.mi, nil)
	co := f.entra.ClientOptions()
	app, err := obo.NewAppWithAssertion(tenantA, clientID, fed, &obo.AppOptions{ClientOptions: co, DisableInstanceDiscovery: true})
	require.NoError(t, err)
	const user = "0000aaaa-0000-0000-0000-00000000a11c"
	f.entra.AddUser(tenantA, emulator.User{OID: user, Name: "Alice", UPN: "alice@contoso.example"})
	uc, err := app.Credential(f.entra.UserToken(tenantA, user, clientID, emulator.UserTokenOptions{}))
	require.NoError(t, err)
	tok, err := uc.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{storageScope}})
	require.NoError(t, err)
	claims, err := f.entra.Verify(tok.Token)
	require.NoError(t, err)
	assert.Equal(t, user, claims["oid"], "a token for the user")
	assert.Equal(t, clientID, claims["appid"], "obtained by the app")
	assert.Equal(t, "https://storage.azure.com", claims["aud"])
	_, ac := decodeJWT(t, f.presented(clientID)[0])
	assert.Equal(t, f.identity.ObjectID(), ac["sub"], "the middle tier authenticated with the managed identity's token: no secret, no certificate")
}

// TestAzidentityCallbackServesOBO: what already feeds azidentity.NewClientAssertionCredential
// (or a WorkloadIdentityCredential's token file) serves an obo.App through assertion.FromCallback.
func TestAzidentityCallbackServesOBO(t *testing.T) {
	f := newFedEnv(t)
	require.NoError(t, f.app.AddFederatedCredential(emulator.FederatedIdentityCredential{Name: "aks-payments", Issuer: k8sIssuer, Subject: k8sSubject, Audiences: []string{emulator.TokenExchangeAudience}}))
	path := filepath.Join(t.TempDir(), "token")
	f.writeToken(t, path, k8sSubject, time.Hour)
	getAssertion := func(context.Context) (string, error) { // as passed to azidentity.NewClientAssertionCredential
		b, err := os.ReadFile(path)
		return strings.TrimSpace(string(b)), err
	}
	app, err := obo.NewAppWithAssertion(tenantA, clientID, assertion.FromCallback(getAssertion), &obo.AppOptions{ClientOptions: f.entra.ClientOptions(), DisableInstanceDiscovery: true})
	require.NoError(t, err)
	const user = "0000bbbb-0000-0000-0000-00000000b0b0"
	uc, err := app.Credential(f.entra.UserToken(tenantA, user, clientID, emulator.UserTokenOptions{}))
	require.NoError(t, err)
	tok, err := uc.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{storageScope}})
	require.NoError(t, err)
	claims, err := f.entra.Verify(tok.Token)
	require.NoError(t, err)
	assert.Equal(t, user, claims["oid"])

	// A failing callback fails the request with its error, and a panic becomes an error.
	boom := errors.New("token file unreadable")
	app, err = obo.NewAppWithAssertion(tenantA, clientID, assertion.FromCallback(func(context.Context) (string, error) { return "", boom }), &obo.AppOptions{ClientOptions: f.entra.ClientOptions(), DisableInstanceDiscovery: true})
	require.NoError(t, err)
	uc, err = app.Credential(f.entra.UserToken(tenantA, user, clientID, emulator.UserTokenOptions{}))
	require.NoError(t, err)
	_, err = uc.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{storageScope}})
	require.ErrorIs(t, err, boom)
}

func ptr[T any](v T) *T { return &v }
