package azurite_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/examples/internal/azurite"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testcerts"
	"github.com/azcredkit/azcredkit/internal/testguard"
	"github.com/azcredkit/azcredkit/keyvault"
	"github.com/azcredkit/azcredkit/obo"
)

const (
	tenant     = "aaaaaaaa-0000-0000-0000-00000000000a"
	miClientID = "m1m1m1m1-0000-0000-0000-0000000000m1" // the workload's "managed identity"
	miSecret   = "managed-identity-stand-in"
	kvAppID    = "c1c1c1c1-0000-0000-0000-0000000000c1" // certificate and key in the vault
	hsmAppID   = "c2c2c2c2-0000-0000-0000-0000000000c2" // non-exportable key in the vault
	apiID      = "a1a1a1a1-0000-0000-0000-0000000000a1" // the Easy Auth middle tier (OBO)
	userOID    = "00000000-0000-0000-0000-000000000001"
	storage    = "https://storage.azure.com"
	storageDef = storage + "/.default"
)

func TestMain(m *testing.M) {
	testguard.VerifyTestMain(m)
}

// world is an Entra emulator with one tenant, a Key Vault emulator read by a "managed
// identity" (a client secret credential standing in for it), and the apps whose certificates
// live in the vault.
type world struct {
	entra *emulator.Entra
	vault *emulator.Vault
	mi    azcore.TokenCredential
	co    azcore.ClientOptions
}

func newWorld(t *testing.T) *world {
	t.Helper()
	e := emulator.NewEntra()
	t.Cleanup(e.Close)
	e.AddTenant(tenant)
	e.RegisterApp(tenant, miClientID).AddSecret(miSecret)
	v := emulator.NewVault(e, emulator.VaultOptions{Tenant: tenant})
	t.Cleanup(v.Close)
	co := e.ClientOptions()
	co.Retry = policy.RetryOptions{MaxRetries: 2, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 100 * time.Millisecond}
	mi, err := azidentity.NewClientSecretCredential(tenant, miClientID, miSecret, &azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true})
	require.NoError(t, err)
	w := &world{entra: e, vault: v, mi: mi, co: co}

	// The key and certificate of kvAppID and apiID are exportable (a PKCS#12 secret); hsmAppID's
	// key never leaves the vault.
	for i, c := range []struct {
		app  string
		opts emulator.CertificateOptions
	}{
		{kvAppID, emulator.CertificateOptions{}},
		{apiID, emulator.CertificateOptions{ContentType: emulator.ContentTypePEM}},
		{hsmAppID, emulator.CertificateOptions{NonExportable: true, HSM: true}},
	} {
		key := testcerts.RSA(2048, i)
		chain := testcerts.Chain(key, "azurite-e2e-"+c.app)
		v.ImportCertificate(certName(c.app), chain, key, c.opts)
		e.RegisterApp(tenant, c.app).AddCertificate(chain[0])
	}
	return w
}

func certName(app string) string { return "cert-" + app[:8] }

func (w *world) certURL(app string) string { return w.vault.URL() + "/certificates/" + certName(app) }

func (w *world) credOptions() credential.SignedAssertionCredentialOptions {
	return credential.SignedAssertionCredentialOptions{ClientOptions: w.co, DisableInstanceDiscovery: true}
}

func (w *world) vaultOptions() keyvault.ClientOptions {
	return keyvault.ClientOptions{ClientOptions: w.co, DisableChallengeResourceVerification: true}
}

func (w *world) kvCred(t *testing.T, app string) *credential.KeyVaultCertCredential {
	t.Helper()
	c, err := credential.NewKeyVaultCertCredential(tenant, app, w.certURL(app), w.mi,
		&credential.KeyVaultCertCredentialOptions{SignedAssertionCredentialOptions: w.credOptions(), Vault: w.vaultOptions()})
	require.NoError(t, err)
	return c
}

func (w *world) hsmCred(t *testing.T) *credential.HSMSignedAssertionCredential {
	t.Helper()
	c, err := credential.NewHSMSignedAssertionCredential(tenant, hsmAppID, w.certURL(hsmAppID), w.mi,
		&credential.HSMSignedAssertionCredentialOptions{SignedAssertionCredentialOptions: w.credOptions(), Vault: w.vaultOptions()})
	require.NoError(t, err)
	return c
}

// storageOptions are client options for Azurite: the transport trusts the emulator CA; no
// retries, so a refusal surfaces at once.
func storageOptions() azcore.ClientOptions {
	return azcore.ClientOptions{Transport: emulator.HTTPClient(), Retry: policy.RetryOptions{MaxRetries: -1}}
}

func blobClient(t *testing.T, srv *azurite.Server, cred azcore.TokenCredential) *azblob.Client {
	t.Helper()
	c, err := azblob.NewClient(srv.BlobURL, cred, &azblob.ClientOptions{ClientOptions: storageOptions()})
	require.NoError(t, err)
	return c
}

// useBlobs has the azblob client create a container, upload blobs, list them and read one
// back: every request carries a bearer token from cred, which Azurite checks.
func useBlobs(ctx context.Context, t *testing.T, srv *azurite.Server, cred azcore.TokenCredential, container string) {
	t.Helper()
	c := blobClient(t, srv, cred)
	_, err := c.CreateContainer(ctx, container, nil)
	require.NoError(t, err)
	want := []string{"a.txt", "dir/b.txt"}
	for _, name := range want {
		_, err := c.UploadBuffer(ctx, container, name, []byte("content of "+name), nil)
		require.NoError(t, err)
	}
	var got []string
	pager := c.NewListBlobsFlatPager(container, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		require.NoError(t, err)
		for _, b := range page.Segment.BlobItems {
			got = append(got, *b.Name)
		}
	}
	sort.Strings(got)
	require.Equal(t, want, got)
	resp, err := c.DownloadStream(ctx, container, "dir/b.txt", nil)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, resp.Body.Close())
	require.NoError(t, err)
	require.Equal(t, "content of dir/b.txt", string(body))
}

// claimsOf decodes a JWT's claims without verifying it.
func claimsOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var c map[string]any
	require.NoError(t, json.Unmarshal(b, &c))
	return c
}

// requireStorageToken checks that cred's Storage token is the v1 token Azure Storage gets for
// app (and user, for a delegated token).
func requireStorageToken(ctx context.Context, t *testing.T, cred azcore.TokenCredential, app, user string) {
	t.Helper()
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{storageDef}})
	require.NoError(t, err)
	c := claimsOf(t, tok.Token)
	require.Equal(t, "https://sts.windows.net/"+tenant+"/", c["iss"])
	require.Equal(t, storage, c["aud"])
	require.Equal(t, "1.0", c["ver"])
	require.Equal(t, app, c["appid"])
	require.Equal(t, "2", c["appidacr"], "the app authenticated with a certificate")
	if user != "" {
		require.Equal(t, user, c["oid"])
		require.Equal(t, "user_impersonation", c["scp"])
	}
}

// requireRefused checks that Azurite refused a request with 403 AuthenticationFailed for
// the given reason.
func requireRefused(t *testing.T, err error, reason string) {
	t.Helper()
	require.Error(t, err)
	var re *azcore.ResponseError
	require.ErrorAs(t, err, &re)
	require.Equal(t, http.StatusForbidden, re.StatusCode, "%v", err)
	require.True(t, bloberror.HasCode(err, bloberror.AuthenticationFailed), "%v", err)
	require.Contains(t, err.Error(), reason)
	require.Empty(t, re.RawResponse.Header.Get("WWW-Authenticate"), "Azurite sends no bearer challenge")
}

// TestAzurite runs the real azblob and azqueue clients against Azurite with tokens from each of
// the credentials, issued by the Entra emulator.
func TestAzurite(t *testing.T) {
	t.Parallel()
	srv := azurite.Start(t, nil)
	w := newWorld(t)
	ctx := context.Background()

	t.Run("KeyVaultCertCredential", func(t *testing.T) {
		t.Parallel()
		cred := w.kvCred(t, kvAppID)
		useBlobs(ctx, t, srv, cred, "kv-cert")
		requireStorageToken(ctx, t, cred, kvAppID, "")
	})

	t.Run("HSMSignedAssertionCredential", func(t *testing.T) {
		t.Parallel()
		cred := w.hsmCred(t)
		useBlobs(ctx, t, srv, cred, "hsm")
		requireStorageToken(ctx, t, cred, hsmAppID, "")
		require.Positive(t, w.vault.Count("keys/sign"), "the vault signed the client assertion")
	})

	t.Run("EasyAuthOBOCredential", func(t *testing.T) {
		t.Parallel()
		// The middle tier authenticates with its certificate from the vault: no secret anywhere.
		app, err := obo.NewAppWithAssertion(tenant, apiID, w.kvCred(t, apiID), &obo.AppOptions{
			ClientOptions: w.co, DisableInstanceDiscovery: true, TrustEasyAuthHeaders: true,
		})
		require.NoError(t, err)
		served := false
		h := app.Middleware(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			user, ok := obo.CredentialFromContext(r.Context())
			require.True(t, ok)
			require.Equal(t, userOID, user.UserObjectID())
			useBlobs(r.Context(), t, srv, user, "obo")
			requireStorageToken(r.Context(), t, user, apiID, userOID)
			served = true
			rw.WriteHeader(http.StatusNoContent)
		}))
		w.entra.AddUser(tenant, emulator.User{OID: userOID, Name: "User One", UPN: "user1@contoso.example"})
		r := httptest.NewRequest(http.MethodGet, "/files", nil)
		r.Header.Set(obo.HeaderAccessToken, w.entra.UserToken(tenant, userOID, apiID, emulator.UserTokenOptions{}))
		r.Header.Set(obo.HeaderPrincipalID, userOID)
		r.Header.Set(obo.HeaderPrincipalName, "user1@contoso.example")
		r.Header.Set(obo.HeaderPrincipalIDP, "aad")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
		require.True(t, served)
		require.Positive(t, w.entra.Count("token:obo"))
	})

	t.Run("Queue", func(t *testing.T) {
		t.Parallel()
		svc, err := azqueue.NewServiceClient(srv.QueueURL, w.hsmCred(t), &azqueue.ClientOptions{ClientOptions: storageOptions()})
		require.NoError(t, err)
		_, err = svc.CreateQueue(ctx, "jobs", nil)
		require.NoError(t, err)
		q := svc.NewQueueClient("jobs")
		_, err = q.EnqueueMessage(ctx, "hello from an HSM-signed assertion", nil)
		require.NoError(t, err)
		resp, err := q.DequeueMessage(ctx, nil)
		require.NoError(t, err)
		require.Len(t, resp.Messages, 1)
		require.Equal(t, "hello from an HSM-signed assertion", *resp.Messages[0].MessageText)
	})

	t.Run("NoTokenRefused", func(t *testing.T) {
		t.Parallel()
		c, err := azblob.NewClientWithNoCredential(srv.BlobURL, &azblob.ClientOptions{ClientOptions: storageOptions()})
		require.NoError(t, err)
		_, err = c.CreateContainer(ctx, "anonymous", nil)
		var re *azcore.ResponseError
		require.ErrorAs(t, err, &re)
		require.Equal(t, http.StatusForbidden, re.StatusCode, "%v", err)
		require.True(t, bloberror.HasCode(err, bloberror.AuthorizationFailure), "%v", err)
	})

	t.Run("WrongAudienceRefused", func(t *testing.T) {
		t.Parallel()
		// A good token of a good credential, but for Key Vault.
		cred := scopeOverride{cred: w.kvCred(t, kvAppID), scope: "https://vault.azure.net/.default"}
		_, err := blobClient(t, srv, cred).CreateContainer(ctx, "wrong-audience", nil)
		requireRefused(t, err, "Invalid token audience")
	})

	t.Run("UserTokenRefused", func(t *testing.T) {
		t.Parallel()
		// The user's own token (v2, for the middle tier) is no Storage token: OBO is needed.
		tok := w.entra.UserToken(tenant, userOID, apiID, emulator.UserTokenOptions{})
		_, err := blobClient(t, srv, staticToken(tok)).CreateContainer(ctx, "user-token", nil)
		requireRefused(t, err, "Invalid token issuer")
	})

	t.Run("ExpiredTokenRefused", func(t *testing.T) {
		t.Parallel()
		// An Entra of its own, whose tokens live two seconds (exp is in whole seconds: the token
		// is good for at least one).
		e := emulator.NewEntra()
		t.Cleanup(e.Close)
		e.AddTenant(tenant)
		e.SetTokenLifetime(2 * time.Second)
		key := testcerts.RSA(2048, 3)
		chain := testcerts.Chain(key, "azurite-e2e-expired")
		e.RegisterApp(tenant, kvAppID).AddCertificate(chain[0])
		signer, err := assertion.NewLocalSigner(key, "")
		require.NoError(t, err)
		o := w.credOptions()
		o.ClientOptions = e.ClientOptions()
		cred, err := credential.NewSignedAssertionCredential(tenant, kvAppID, chain, signer, &o)
		require.NoError(t, err)
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{storageDef}})
		require.NoError(t, err)
		c := blobClient(t, srv, staticToken(tok.Token))
		_, err = c.CreateContainer(ctx, "expired", nil)
		require.NoError(t, err, "the token is good while it lasts")
		// Azurite refuses the token once its clock is past exp (the same clock as ours).
		exp, ok := claimsOf(t, tok.Token)["exp"].(float64)
		require.True(t, ok)
		time.Sleep(time.Until(time.Unix(int64(exp), 0)) + 100*time.Millisecond)
		_, err = c.UploadBuffer(ctx, "expired", "late.txt", []byte("too late"), nil)
		requireRefused(t, err, "The token is expired")
	})
}

// scopeOverride asks cred for a token for scope whatever the client asks for.
type scopeOverride struct {
	cred  azcore.TokenCredential
	scope string
}

func (s scopeOverride) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	opts.Scopes = []string{s.scope}
	return s.cred.GetToken(ctx, opts)
}

// staticToken is a credential that always returns the same token.
type staticToken string

func (s staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// TestCloseStopsAzurite checks that Close leaves no Azurite process behind and that a second
// Close is harmless.
func TestCloseStopsAzurite(t *testing.T) {
	t.Parallel()
	srv := azurite.Start(t, nil)
	require.True(t, processGroupAlive(srv.PID()))
	start := time.Now()
	require.NoError(t, srv.Close())
	t.Logf("Close took %v", time.Since(start).Round(time.Millisecond))
	require.False(t, processGroupAlive(srv.PID()), "Azurite's process group outlived Close")
	require.NoError(t, srv.Close())
	_, err := emulator.HTTPClient().Get(srv.BlobURL)
	require.Error(t, err, "Azurite still answers")
}
