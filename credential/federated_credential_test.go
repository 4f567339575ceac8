package credential_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
)

const (
	identityClientID = "d1d1d1d1-0000-0000-0000-0000000000d1" // the user-assigned managed identity of tenant A
	appSecret        = "an-ordinary-app-secret"
	userAssignedID   = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/workload"
	storageScope     = "https://storage.azure.com/.default"
)

// fedEnv adds to env a user-assigned managed identity of tenant A, served by the emulator's App
// Service managed identity endpoint: its source (mi) is azidentity.ManagedIdentityCredential,
// asked for api://AzureADTokenExchange/.default by the federated credential.
type fedEnv struct {
	*env
	identity   emulator.Identity
	miEndpoint *emulator.ManagedIdentity
	mi         azcore.TokenCredential

	mu       sync.Mutex
	requests map[string]int      // token requests per client ID
	seen     map[string][]string // client assertions presented per client ID
}

func newFedEnv(t testing.TB) *fedEnv {
	t.Helper()
	e := newEnv(t)
	e.app.RemoveCertificate(e.chain[0]) // no certificate at all
	f := &fedEnv{env: e, requests: map[string]int{}, seen: map[string][]string{}}
	f.serveIdentity(t)
	e.entra.OnToken(func(r *emulator.TokenRequest) *emulator.ErrorResponse {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.requests[r.ClientID]++
		if a := r.Form.Get("client_assertion"); a != "" {
			f.seen[r.ClientID] = append(f.seen[r.ClientID], a)
		}
		return nil
	})
	return f
}

// serveIdentity starts a managed identity endpoint for f's Entra, serves the user-assigned
// identity of tenant A on it and sets f.mi.
func (f *fedEnv) serveIdentity(t testing.TB) {
	t.Helper()
	f.identity = emulator.Identity{TenantID: tenantA, ClientID: identityClientID, ResourceID: userAssignedID, UserAssigned: true}
	f.miEndpoint = miEndpoint(t, f.entra)
	f.mi = managedIdentity(t, f.miEndpoint, f.identity)
}

// miEndpoint starts a managed identity endpoint whose tokens entra signs and points
// IDENTITY_ENDPOINT and IDENTITY_HEADER at it for the test. MSAL reads the two variables at each
// request: a test with two endpoints points them at the one it asks (useEndpoint).
func miEndpoint(t testing.TB, entra *emulator.Entra) *emulator.ManagedIdentity {
	t.Helper()
	m := emulator.NewManagedIdentity(entra)
	t.Cleanup(m.Close)
	useEndpoint(t, m)
	return m
}

func useEndpoint(t testing.TB, m *emulator.ManagedIdentity) {
	t.Helper()
	t.Setenv("IDENTITY_ENDPOINT", m.Endpoint())
	t.Setenv("IDENTITY_HEADER", m.Header())
}

// managedIdentity serves id on m and returns azidentity.ManagedIdentityCredential for it (a
// system-assigned id is asked for with no ID).
func managedIdentity(t testing.TB, m *emulator.ManagedIdentity, id emulator.Identity) azcore.TokenCredential {
	t.Helper()
	require.NoError(t, m.Add(id))
	o := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: azcore.ClientOptions{
		Transport: emulator.HTTPClient(), // trusts the emulators' CA
		Retry:     policy.RetryOptions{MaxRetries: 2, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 50 * time.Millisecond},
	}}
	if id.UserAssigned {
		o.ID = azidentity.ClientID(id.ClientID)
	}
	c, err := azidentity.NewManagedIdentityCredential(o)
	require.NoError(t, err)
	return c
}

// appCredential is an ordinary app's credential (a client secret): not a managed identity.
func appCredential(t testing.TB, entra *emulator.Entra, tenant, clientID string) azcore.TokenCredential {
	t.Helper()
	co := entra.ClientOptions()
	co.Retry = policy.RetryOptions{MaxRetries: 2, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 50 * time.Millisecond}
	c, err := azidentity.NewClientSecretCredential(tenant, clientID, appSecret, &azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true})
	require.NoError(t, err)
	return c
}

func (f *fedEnv) count(clientID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[clientID]
}

func (f *fedEnv) presented(clientID string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.seen[clientID]...)
}

// trust adds the app's federated identity credential for the managed identity.
func (f *fedEnv) trust(t testing.TB) {
	t.Helper()
	require.NoError(t, f.app.AddFederatedCredential(f.entra.IdentityCredential("workload", f.identity)))
}

func (f *fedEnv) fedOptions() *credential.FederatedCredentialOptions {
	return &credential.FederatedCredentialOptions{SignedAssertionCredentialOptions: *f.options()}
}

func (f *fedEnv) fedCred(t testing.TB, src azcore.TokenCredential, o *credential.FederatedCredentialOptions) *credential.FederatedCredential {
	t.Helper()
	if o == nil {
		o = f.fedOptions()
	}
	c, err := credential.NewFederatedCredential(tenantA, clientID, src, o)
	require.NoError(t, err)
	return c
}

// countingSource counts the source's token requests and records their options.
type countingSource struct {
	azcore.TokenCredential
	n    atomic.Int64
	mu   sync.Mutex
	opts []policy.TokenRequestOptions
}

func (s *countingSource) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	s.n.Add(1)
	s.mu.Lock()
	s.opts = append(s.opts, o)
	s.mu.Unlock()
	return s.TokenCredential.GetToken(ctx, o)
}

func TestFederatedCredentialManagedIdentity(t *testing.T) {
	f := newFedEnv(t)
	f.trust(t)
	src := &countingSource{TokenCredential: f.mi}
	c := f.fedCred(t, src, nil)
	tok, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
	require.NoError(t, err)
	claims, err := f.entra.Verify(tok.Token)
	require.NoError(t, err)
	assert.Equal(t, tenantA, claims["tid"])
	assert.Equal(t, clientID, claims["appid"])

	// The source was asked for the token exchange audience with no tenant of its own, and its
	// token is what Entra received as the client assertion.
	require.Len(t, src.opts, 1)
	assert.Equal(t, []string{credential.TokenExchangeAudience + "/.default"}, src.opts[0].Scopes)
	assert.Empty(t, src.opts[0].TenantID)
	assertions := f.presented(clientID)
	require.Len(t, assertions, 1)
	_, ac := decodeJWT(t, assertions[0])
	assert.Equal(t, f.entra.Issuer(tenantA), ac["iss"])
	assert.Equal(t, f.identity.ObjectID(), ac["sub"])
	assert.Equal(t, emulator.TokenExchangeAppID, ac["aud"])
	a, err := c.Assertion(context.Background(), f.entra.TokenEndpoint(tenantA))
	require.NoError(t, err)
	assert.Equal(t, assertions[0], a, "Assertion returns the cached source token")

	// Another resource: a new Entra request, the same source token.
	_, err = c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{storageScope}})
	require.NoError(t, err)
	assert.Equal(t, int64(1), src.n.Load(), "the source token is reused until shortly before it expires")
	assert.Equal(t, 2, f.count(clientID))
}

func TestFederatedCredentialCrossTenant(t *testing.T) {
	f := newFedEnv(t) // the app lives in A with a service principal in B; the identity is A's
	f.trust(t)
	o := f.fedOptions()
	o.AdditionallyAllowedTenants = []string{tenantB}
	c := f.fedCred(t, f.mi, o)
	tok, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}, TenantID: tenantB})
	require.NoError(t, err)
	claims, err := f.entra.Verify(tok.Token)
	require.NoError(t, err)
	assert.Equal(t, tenantB, claims["tid"], "a token in the customer's tenant B")
	assert.Equal(t, clientID, claims["appid"])
	_, ac := decodeJWT(t, f.presented(clientID)[0])
	assert.Equal(t, f.entra.Issuer(tenantA), ac["iss"], "presented: the identity's token of tenant A")
}

func TestFederatedCredential50ColdCallers(t *testing.T) {
	f := newFedEnv(t)
	f.trust(t)
	src := &countingSource{TokenCredential: f.mi}
	c := f.fedCred(t, src, nil)
	toks := concurrentTokens(t, c, 50)
	for _, tok := range toks[1:] {
		require.Equal(t, toks[0], tok)
	}
	assert.Equal(t, int64(1), src.n.Load(), "one source request")
	assert.Equal(t, int64(1), f.miEndpoint.Count("token"), "one request to the managed identity endpoint")
	assert.Equal(t, 1, f.count(clientID), "one Entra request for the app")
}

func TestFederatedCredentialWrongSubject(t *testing.T) {
	f := newFedEnv(t)
	require.NoError(t, f.app.AddFederatedCredential(emulator.FederatedIdentityCredential{
		Name: "wrong", Issuer: f.entra.Issuer(tenantA), Subject: identityClientID, // the client ID, not the object ID
		Audiences: []string{emulator.TokenExchangeAudience},
	}))
	var logs logBuffer
	o := f.fedOptions()
	o.PropagationRetry = 1200 * time.Millisecond
	o.Logger = logs.logger()
	c := f.fedCred(t, f.mi, o)
	start := time.Now()
	_, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
	require.Error(t, err)
	assert.Less(t, time.Since(start), 5*time.Second)

	var afe *azidentity.AuthenticationFailedError
	require.ErrorAs(t, err, &afe)
	var ae *credential.AuthenticationError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, 70021, ae.AADSTS)
	msg := err.Error()
	for _, want := range []string{f.entra.Issuer(tenantA), f.identity.ObjectID(), emulator.TokenExchangeAppID, "object (principal) ID", "propagating"} {
		assert.Contains(t, msg, want)
	}
	assert.GreaterOrEqual(t, f.count(clientID), 2, "AADSTS70021 is retried")
	assert.LessOrEqual(t, f.count(clientID), 3, "within PropagationRetry")
	assert.Contains(t, logs.String(), "retrying")
	for _, a := range f.presented(clientID) {
		assert.NotContains(t, msg, a, "the error never holds the token")
		assert.NotContains(t, logs.String(), a, "nor does the log")
	}
}

func TestFederatedCredentialPropagationRetry(t *testing.T) {
	f := newFedEnv(t)
	f.entra.SetFederatedCredentialPropagation(time.Second) // the record is seen a second after it is added
	f.trust(t)
	c := f.fedCred(t, f.mi, nil)
	tok, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
	require.NoError(t, err, "success after a retry")
	_, err = f.entra.Verify(tok.Token)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, f.count(clientID), 2)
	assert.Equal(t, int64(1), f.miEndpoint.Count("token"), "the retries present the same source token")
}

func TestFederatedCredentialNoRetry(t *testing.T) {
	f := newFedEnv(t)
	o := f.fedOptions()
	o.PropagationRetry = -1
	c := f.fedCred(t, f.mi, o)
	_, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
	var ae *credential.AuthenticationError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, 700211, ae.AADSTS, "no record at all: the issuer is unknown")
	assert.Contains(t, err.Error(), "has the issuer")
	assert.Equal(t, 1, f.count(clientID))
}

func TestFederatedCredentialCallerDeadlineDuringRetry(t *testing.T) {
	f := newFedEnv(t)
	require.NoError(t, f.app.AddFederatedCredential(emulator.FederatedIdentityCredential{
		Name: "wrong", Issuer: f.entra.Issuer(tenantA), Subject: "someone-else", Audiences: []string{emulator.TokenExchangeAudience},
	}))
	o := f.fedOptions()
	o.PropagationRetry = 2 * time.Second
	c := f.fedCred(t, f.mi, o)
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	_, err := c.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{vaultRes}})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var afe *azidentity.AuthenticationFailedError
	require.ErrorAs(t, err, &afe, "the caller whose context ended learns what Entra answered")
	assert.Contains(t, err.Error(), "AADSTS70021")
	assert.Contains(t, err.Error(), f.identity.ObjectID())

	// A caller without a deadline joins the same request and gets its final answer.
	_, err = c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
	var ae *credential.AuthenticationError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, 70021, ae.AADSTS)
}

func TestFederatedCredentialCrossCloud(t *testing.T) {
	f := newFedEnv(t)
	// A second emulator stands for another cloud (say US Government) with an identity there.
	other := emulator.NewEntra()
	t.Cleanup(other.Close)
	other.AddTenant(tenantA)
	otherMI := managedIdentity(t, miEndpoint(t, other), f.identity)
	require.NoError(t, f.app.AddFederatedCredential(other.IdentityCredential("other-cloud", f.identity)))
	o := f.fedOptions()
	o.PropagationRetry = -1
	c := f.fedCred(t, otherMI, o)
	_, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
	useEndpoint(t, f.miEndpoint) // back to this cloud's endpoint
	var ae *credential.AuthenticationError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, 700222, ae.AADSTS)
	assert.Contains(t, err.Error(), "another cloud")
	assert.Contains(t, err.Error(), "not across clouds")

	// The token exchange audience of another cloud: Entra does not match it, the hint says why.
	f.trust(t)
	o = f.fedOptions()
	o.PropagationRetry = -1
	o.Audience = credential.TokenExchangeAudienceUSGov
	c = f.fedCred(t, f.mi, o)
	_, err = c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, 700212, ae.AADSTS)
	assert.Contains(t, err.Error(), "another cloud")
	assert.Contains(t, err.Error(), credential.TokenExchangeAudience)
}

func TestFederatedCredentialEntraRules(t *testing.T) {
	f := newFedEnv(t)
	// An ordinary app's token (not a managed identity) trusted by a record: refused.
	plain := f.entra.RegisterApp(tenantA, "e1e1e1e1-0000-0000-0000-0000000000e1")
	plain.AddSecret(appSecret)
	require.NoError(t, f.app.AddFederatedCredential(f.entra.ManagedIdentityCredential("plain", tenantA, plain)))
	o := f.fedOptions()
	o.PropagationRetry = -1
	c := f.fedCred(t, appCredential(t, f.entra, tenantA, plain.ClientID()), o)
	_, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
	var ae *credential.AuthenticationError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, 700226, ae.AADSTS)
	assert.Contains(t, err.Error(), "managed identity")

	// A system-assigned identity's token: refused too, only user-assigned identities are trusted.
	sys := emulator.Identity{TenantID: tenantA, ClientID: "e2e2e2e2-0000-0000-0000-0000000000e2"}
	sysMI := managedIdentity(t, f.miEndpoint, sys)
	require.NoError(t, f.app.AddFederatedCredential(f.entra.IdentityCredential("system-assigned", sys)))
	c = f.fedCred(t, sysMI, o)
	_, err = c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, 700226, ae.AADSTS)

	// An identity of tenant B: the app and the identity must share a tenant.
	idB := emulator.Identity{TenantID: tenantB, ClientID: "f1f1f1f1-0000-0000-0000-0000000000f1", ResourceID: userAssignedID, UserAssigned: true}
	miB := managedIdentity(t, f.miEndpoint, idB)
	require.NoError(t, f.app.AddFederatedCredential(f.entra.IdentityCredential("tenant-b", idB)))
	c = f.fedCred(t, miB, o)
	_, err = c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, 700236, ae.AADSTS)
	assert.Contains(t, err.Error(), "same tenant")
}

// failingSource fails, panics or returns something that is not a JWT.
type failingSource struct {
	tok   string
	err   error
	panic bool
}

func (s failingSource) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if s.panic {
		panic("source bug")
	}
	return azcore.AccessToken{Token: s.tok, ExpiresOn: time.Now().Add(time.Hour)}, s.err
}

func TestFederatedCredentialSourceFailures(t *testing.T) {
	f := newFedEnv(t)
	f.trust(t)
	_, err := credential.NewFederatedCredential(tenantA, clientID, nil, f.fedOptions())
	require.ErrorIs(t, err, assertion.ErrInvalidOptions)
	o := f.fedOptions()
	o.SendCertificateChain = true
	_, err = credential.NewFederatedCredential(tenantA, clientID, f.mi, o)
	require.ErrorIs(t, err, assertion.ErrInvalidOptions)
	o = f.fedOptions()
	o.Audience = "api://AzureADTokenExchange/.default"
	_, err = credential.NewFederatedCredential(tenantA, clientID, f.mi, o)
	require.ErrorIs(t, err, assertion.ErrInvalidOptions)

	sentinel := errors.New("managed identity endpoint unreachable")
	for _, c := range []struct {
		name string
		src  failingSource
		want string
	}{
		{"error", failingSource{err: sentinel}, "managed identity endpoint unreachable"},
		{"panic", failingSource{panic: true}, "panicked"},
		{"not a JWT", failingSource{tok: "opaque-token"}, "not a JWT"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cred := f.fedCred(t, c.src, nil)
			_, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			assert.Contains(t, err.Error(), credential.TokenExchangeAudience)
			if c.src.err != nil {
				require.ErrorIs(t, err, sentinel)
			}
			assert.NotContains(t, err.Error(), "opaque-token")
		})
	}
	assert.Equal(t, 0, f.count(clientID), "nothing reached Entra without an assertion")
}

func TestFederatedCredentialAudienceOption(t *testing.T) {
	f := newFedEnv(t)
	require.NoError(t, f.app.AddFederatedCredential(emulator.FederatedIdentityCredential{
		Name: "custom", Issuer: "https://issuer.example", Subject: "workload", Audiences: []string{"api://custom-audience"},
	}))
	src := &countingSource{TokenCredential: tokenFunc(func(o policy.TokenRequestOptions) string {
		return f.entra.FederatedToken("https://issuer.example", "workload", strings.TrimSuffix(o.Scopes[0], "/.default"), time.Hour)
	})}
	o := f.fedOptions()
	o.Audience = "api://custom-audience"
	c := f.fedCred(t, src, o)
	_, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
	require.NoError(t, err)
	assert.Equal(t, []string{"api://custom-audience/.default"}, src.opts[0].Scopes)
}

// tokenFunc is a source whose tokens fn makes.
type tokenFunc func(policy.TokenRequestOptions) string

func (fn tokenFunc) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: fn(o), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestFederatedCredentialCacheHitDoesNotAllocate(t *testing.T) {
	f := newFedEnv(t)
	f.trust(t)
	c := f.fedCred(t, f.mi, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a caller's deadline costs nothing either
	defer cancel()
	opts := policy.TokenRequestOptions{Scopes: []string{vaultRes}}
	_, err := c.GetToken(ctx, opts)
	require.NoError(t, err)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := c.GetToken(ctx, opts); err != nil {
			panic(err)
		}
	})
	require.Zero(t, allocs)
}

func BenchmarkFederatedCredentialCacheHit(b *testing.B) {
	f := newFedEnv(b)
	f.trust(b)
	c := f.fedCred(b, f.mi, nil)
	ctx := context.Background()
	opts := policy.TokenRequestOptions{Scopes: []string{vaultRes}}
	if _, err := c.GetToken(ctx, opts); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.GetToken(ctx, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// expiringSource returns a JWT whose exp is earlier than the expiry it reports.
type expiringSource struct{ tok string }

func (s expiringSource) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: s.tok, ExpiresOn: time.Now().Add(24 * time.Hour)}, nil
}

func TestFederatedCredentialTrustsTheTokensExp(t *testing.T) {
	f := newFedEnv(t)
	require.NoError(t, f.app.AddFederatedCredential(emulator.FederatedIdentityCredential{Name: "short", Issuer: "https://issuer.example", Subject: "s", Audiences: []string{emulator.TokenExchangeAudience}}))
	src := expiringSource{tok: f.entra.FederatedToken("https://issuer.example", "s", emulator.TokenExchangeAudience, 2*time.Second)}
	c := f.fedCred(t, src, nil)
	_, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
	require.NoError(t, err)
	time.Sleep(2100 * time.Millisecond) // the token's exp has passed, not the source's claimed expiry
	_, err = c.Assertion(context.Background(), "")
	require.ErrorIs(t, err, credential.ErrInvalidFederatedToken, "an expired token is never presented")
	assert.Contains(t, err.Error(), "expired at")
	_, err = c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{storageScope}})
	require.ErrorIs(t, err, credential.ErrInvalidFederatedToken)
	assert.Len(t, f.presented(clientID), 1, "nothing more reached Entra")
}
