package emulator

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	identityID     = "a1a1a1a1-2222-4333-8444-555555555555" // the user-assigned managed identity of tenant A
	identitySecret = "ordinary-app-secret"
	userAssigned   = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/workload"
)

// fedFixture adds to the fixture an App Service managed identity endpoint (its variables set for
// the test) serving a user-assigned managed identity of tenant A that the app may trust.
type fedFixture struct {
	*fixture
	mi       *ManagedIdentity
	identity Identity
}

func newFedFixture(t *testing.T) *fedFixture {
	t.Helper()
	f := newFixture(t)
	m := NewManagedIdentity(f.e)
	t.Cleanup(m.Close)
	id := Identity{TenantID: tenantA, ClientID: identityID, ResourceID: userAssigned, UserAssigned: true}
	require.NoError(t, m.Add(id))
	t.Setenv("IDENTITY_ENDPOINT", m.Endpoint())
	t.Setenv("IDENTITY_HEADER", m.Header())
	return &fedFixture{fixture: f, mi: m, identity: id}
}

// identityToken gets the token of the managed identity clientID ("" for the system-assigned one)
// for the token exchange audience from the managed identity endpoint, through azidentity.
func (f *fedFixture) identityToken(t *testing.T, clientID string) string {
	t.Helper()
	o := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: f.clientOptions()}
	if clientID != "" {
		o.ID = azidentity.ClientID(clientID)
	}
	c, err := azidentity.NewManagedIdentityCredential(o)
	require.NoError(t, err)
	tok, err := getToken(t, c, TokenExchangeAudience+"/.default")
	require.NoError(t, err)
	return tok.Token
}

// appToken gets an ordinary app's token (client secret) for the token exchange audience.
func (f *fedFixture) appToken(t *testing.T, tenant, clientID string) string {
	t.Helper()
	c, err := azidentity.NewClientSecretCredential(tenant, clientID, identitySecret, &azidentity.ClientSecretCredentialOptions{ClientOptions: f.clientOptions(), DisableInstanceDiscovery: true})
	require.NoError(t, err)
	tok, err := getToken(t, c, TokenExchangeAudience+"/.default")
	require.NoError(t, err)
	return tok.Token
}

// postFederated presents assertion for the app in tenant and returns the status and body.
func (f *fixture) postFederated(t *testing.T, tenant, assertion string) (int, map[string]any) {
	t.Helper()
	status, body, _ := post(t, f.e.TokenEndpoint(tenant), url.Values{
		"grant_type": {"client_credentials"}, "client_id": {appID}, "scope": {vaultAud + "/.default"},
		"client_assertion_type": {assertionTypeJWT}, "client_assertion": {assertion},
	})
	return status, body
}

func unverifiedClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

func TestTokenExchangeAudienceToken(t *testing.T) {
	f := newFedFixture(t)
	claims := unverifiedClaims(t, f.identityToken(t, identityID))
	assert.Equal(t, TokenExchangeAppID, claims["aud"], "Entra puts the token exchange app's ID in aud")
	assert.Equal(t, f.e.Issuer(tenantA), claims["iss"])
	assert.Equal(t, f.identity.ObjectID(), claims["sub"])
	assert.Equal(t, f.identity.ObjectID(), claims["oid"])
	assert.Equal(t, tenantA, claims["tid"])
	assert.Equal(t, identityID, claims["azp"])
	assert.Equal(t, userAssigned, claims["xms_mirid"])
	assert.Equal(t, "2.0", claims["ver"])

	// Entra's client credentials path gives an app that plays the same identity the same token
	// (but azpacr: a secret here, "1"; a managed identity's is "2").
	id := f.e.RegisterApp(tenantA, identityID)
	id.AddSecret(identitySecret)
	id.MakeManagedIdentity(userAssigned)
	cc := unverifiedClaims(t, f.appToken(t, tenantA, identityID))
	for _, k := range []string{"aud", "iss", "sub", "oid", "tid", "azp", "idtyp", "xms_mirid", "ver"} {
		assert.Equal(t, cc[k], claims[k], k)
	}
}

// Every managed identity token carries xms_mirid: a user-assigned identity added without a
// resource ID gets one, the system-assigned identity that of its App Service app.
func TestManagedIdentityTokensCarryTheirResourceID(t *testing.T) {
	f := newFedFixture(t)
	const ua, sa = "a2a2a2a2-2222-4333-8444-555555555555", "a3a3a3a3-2222-4333-8444-555555555555"
	require.NoError(t, f.mi.Add(Identity{TenantID: tenantA, ClientID: ua, UserAssigned: true}))
	require.NoError(t, f.mi.Add(Identity{TenantID: tenantA, ClientID: sa}))
	uaMirid, _ := unverifiedClaims(t, f.identityToken(t, ua))["xms_mirid"].(string)
	assert.Contains(t, uaMirid, "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"+ua)
	saMirid, _ := unverifiedClaims(t, f.identityToken(t, ""))["xms_mirid"].(string)
	assert.Contains(t, saMirid, "/providers/Microsoft.Web/sites/"+sa)
	// The made-up resource ID selects the user-assigned identity, as a real one does.
	c, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: f.clientOptions(), ID: azidentity.ResourceID(uaMirid)})
	require.NoError(t, err)
	tok, err := getToken(t, c, vaultAud+"/.default")
	require.NoError(t, err)
	assert.Equal(t, ua, unverifiedClaims(t, tok.Token)["appid"])

	// The user-assigned identity's token is a federated client assertion; the system-assigned's
	// is refused (Entra accepts only user-assigned identities).
	uaID, _ := f.mi.Lookup(ua)
	saID, _ := f.mi.Lookup(strings.ToUpper(sa))
	require.NoError(t, f.app.AddFederatedCredential(f.e.IdentityCredential("user-assigned", uaID)))
	require.NoError(t, f.app.AddFederatedCredential(f.e.IdentityCredential("system-assigned", saID)))
	status, body := f.postFederated(t, tenantA, f.identityToken(t, ua))
	require.Equal(t, 200, status, "%v", body["error_description"])
	_, body = f.postFederated(t, tenantA, f.identityToken(t, ""))
	assert.Equal(t, []int{700226}, errorCodes(body), "%v", body["error_description"])
}

func TestFederatedManagedIdentityAccepted(t *testing.T) {
	f := newFedFixture(t)
	require.NoError(t, f.app.AddFederatedCredential(f.e.IdentityCredential("workload", f.identity)))
	f.app.AddServicePrincipal(tenantB)
	for _, tenant := range []string{tenantA, tenantB} { // cross-tenant: the app's service principal in B
		status, body := f.postFederated(t, tenant, f.identityToken(t, identityID))
		require.Equal(t, 200, status, "%v", body["error_description"])
		claims, err := f.e.Verify(body["access_token"].(string))
		require.NoError(t, err)
		assert.Equal(t, tenant, claims["tid"])
		assert.Equal(t, appID, claims["appid"])
	}
}

func TestFederatedAssertionRefusals(t *testing.T) {
	f := newFedFixture(t)
	const k8sIssuer = "https://oidc.prod-aks.example/tenant/issuer/"
	require.NoError(t, f.app.AddFederatedCredential(f.e.IdentityCredential("workload", f.identity)))
	require.NoError(t, f.app.AddFederatedCredential(FederatedIdentityCredential{Name: "pod", Issuer: k8sIssuer, Subject: "system:serviceaccount:ns:sa", Audiences: []string{TokenExchangeAudience}}))
	good := f.identityToken(t, identityID)

	// A second emulator stands for another cloud.
	other := NewEntra()
	t.Cleanup(other.Close)
	other.AddTenant(tenantA)
	require.NoError(t, f.app.AddFederatedCredential(FederatedIdentityCredential{Name: "other-cloud", Issuer: other.Issuer(tenantA), Subject: "x", Audiences: []string{TokenExchangeAudience}}))
	// An identity of tenant B, trusted by a record (Entra refuses: not the app's tenant).
	f.e.AddTenant(tenantB)
	idB := Identity{TenantID: tenantB, ClientID: "b1b1b1b1-2222-4333-8444-555555555555", ResourceID: userAssigned, UserAssigned: true}
	require.NoError(t, f.mi.Add(idB))
	require.NoError(t, f.app.AddFederatedCredential(f.e.IdentityCredential("tenant-b", idB)))
	tokB := f.identityToken(t, idB.ClientID)
	// An ordinary app (not a managed identity) of tenant A, trusted by a record.
	plain := f.e.RegisterApp(tenantA, "c1c1c1c1-2222-4333-8444-555555555555")
	plain.AddSecret(identitySecret)
	require.NoError(t, f.app.AddFederatedCredential(f.e.ManagedIdentityCredential("plain-app", tenantA, plain)))
	tokPlain := f.appToken(t, tenantA, plain.ClientID())
	// The system-assigned identity of tenant A, trusted by a record.
	sys := Identity{TenantID: tenantA, ClientID: "d1d1d1d1-2222-4333-8444-555555555555"}
	require.NoError(t, f.mi.Add(sys))
	require.NoError(t, f.app.AddFederatedCredential(f.e.IdentityCredential("system-assigned", sys)))
	tokSys := f.identityToken(t, "")

	tampered := good[:len(good)-4] + "AAAA"
	for _, c := range []struct {
		name      string
		assertion string
		code      int
		says      []string
	}{
		{"unknown issuer", f.e.FederatedToken("https://issuer.example", "s", TokenExchangeAudience, time.Hour), 700211, []string{"issuer 'https://issuer.example'"}},
		{"issuer case differs", f.e.FederatedToken(strings.ToUpper(k8sIssuer[:8])+k8sIssuer[8:], "system:serviceaccount:ns:sa", TokenExchangeAudience, time.Hour), 700211, nil},
		{"wrong subject", f.e.FederatedToken(k8sIssuer, "system:serviceaccount:ns:other", TokenExchangeAudience, time.Hour), 70021,
			[]string{"Assertion Issuer: '" + k8sIssuer + "'", "Assertion Subject: 'system:serviceaccount:ns:other'", "Assertion Audience: '" + TokenExchangeAudience + "'"}},
		{"subject case differs", f.e.FederatedToken(k8sIssuer, "system:serviceaccount:NS:sa", TokenExchangeAudience, time.Hour), 70021, nil},
		{"wrong audience", f.e.FederatedToken(k8sIssuer, "system:serviceaccount:ns:sa", "api://other", time.Hour), 700212, []string{"audience 'api://other'"}},
		{"expired", f.e.FederatedToken(k8sIssuer, "system:serviceaccount:ns:sa", TokenExchangeAudience, -time.Minute), 700024, nil},
		{"bad signature", tampered, 50013, nil},
		{"other cloud", other.FederatedToken(other.Issuer(tenantA), "x", TokenExchangeAudience, time.Hour), 700222, nil},
		{"identity of another tenant", tokB, 700236, nil},
		{"not a managed identity", tokPlain, 700226, nil},
		{"system-assigned identity", tokSys, 700226, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body := f.postFederated(t, tenantA, c.assertion)
			require.NotEqual(t, 200, status)
			assert.Equal(t, []int{c.code}, errorCodes(body), "%v", body["error_description"])
			for _, s := range c.says {
				assert.Contains(t, body["error_description"], s)
			}
		})
	}
	// The good token still works: the refusals are about the tokens, not the app.
	status, body := f.postFederated(t, tenantA, good)
	require.Equal(t, 200, status, "%v", body["error_description"])
	// The Kubernetes record works with its own issuer's token.
	status, body = f.postFederated(t, tenantA, f.e.FederatedToken(k8sIssuer, "system:serviceaccount:ns:sa", TokenExchangeAudience, time.Hour))
	require.Equal(t, 200, status, "%v", body["error_description"])
}

func TestFederatedCredentialRecords(t *testing.T) {
	f := newFedFixture(t)
	rec := func(i int) FederatedIdentityCredential {
		return FederatedIdentityCredential{Name: fmt.Sprintf("rec-%d", i), Issuer: "https://issuer.example", Subject: fmt.Sprintf("sub-%d", i), Audiences: []string{TokenExchangeAudience}}
	}
	for i := range MaxFederatedCredentials {
		require.NoError(t, f.app.AddFederatedCredential(rec(i)))
	}
	err := f.app.AddFederatedCredential(rec(MaxFederatedCredentials))
	require.ErrorIs(t, err, ErrFederatedCredential)
	assert.Contains(t, err.Error(), "20")
	require.Len(t, f.app.FederatedCredentials(), MaxFederatedCredentials)
	f.app.RemoveFederatedCredential("REC-0")
	require.Len(t, f.app.FederatedCredentials(), MaxFederatedCredentials-1)

	for _, c := range []struct {
		name string
		fc   FederatedIdentityCredential
	}{
		{"duplicate name", FederatedIdentityCredential{Name: "rec-1", Issuer: "https://x.example", Subject: "s", Audiences: []string{"a"}}},
		{"duplicate issuer and subject", FederatedIdentityCredential{Name: "other", Issuer: "https://issuer.example", Subject: "sub-1", Audiences: []string{"a"}}},
		{"short name", FederatedIdentityCredential{Name: "ab", Issuer: "https://x.example", Subject: "s", Audiences: []string{"a"}}},
		{"bad name", FederatedIdentityCredential{Name: "-abc", Issuer: "https://x.example", Subject: "s", Audiences: []string{"a"}}},
		{"http issuer", FederatedIdentityCredential{Name: "abc", Issuer: "http://x.example", Subject: "s", Audiences: []string{"a"}}},
		{"no subject", FederatedIdentityCredential{Name: "abc", Issuer: "https://x.example", Audiences: []string{"a"}}},
		{"two audiences", FederatedIdentityCredential{Name: "abc", Issuer: "https://x.example", Subject: "s", Audiences: []string{"a", "b"}}},
		{"long subject", FederatedIdentityCredential{Name: "abc", Issuer: "https://x.example", Subject: strings.Repeat("s", 601), Audiences: []string{"a"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f.app.RemoveFederatedCredential("rec-19") // room for one more
			require.ErrorIs(t, f.app.AddFederatedCredential(c.fc), ErrFederatedCredential)
		})
	}
}

func TestFederatedCredentialPropagation(t *testing.T) {
	f := newFedFixture(t)
	f.e.SetFederatedCredentialPropagation(300 * time.Millisecond)
	require.NoError(t, f.app.AddFederatedCredential(f.e.IdentityCredential("workload", f.identity)))
	tok := f.identityToken(t, identityID)
	_, body := f.postFederated(t, tenantA, tok)
	require.Equal(t, []int{70021}, errorCodes(body), "a new record is not seen before it propagates")
	require.Eventually(t, func() bool {
		status, _ := f.postFederated(t, tenantA, tok)
		return status == 200
	}, 5*time.Second, 50*time.Millisecond)
}

func TestActionsOIDC(t *testing.T) {
	f := newFixture(t)
	a := NewActionsOIDC(f.e, "repo:contoso/app:ref:refs/heads/main")
	t.Cleanup(a.Close)
	get := func(auth, audience string) (int, map[string]any) {
		u := a.RequestURL()
		if audience != "" {
			u += "&audience=" + url.QueryEscape(audience)
		}
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, u, nil)
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := HTTPClient().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		status, m, _ := decodeAnswer(t, resp)
		return status, m
	}
	status, body := get("bearer "+a.RequestToken(), TokenExchangeAudience)
	require.Equal(t, 200, status)
	claims, err := f.e.Verify(body["value"].(string))
	require.NoError(t, err)
	assert.Equal(t, GitHubActionsIssuer, claims["iss"])
	assert.Equal(t, "repo:contoso/app:ref:refs/heads/main", claims["sub"])
	assert.Equal(t, TokenExchangeAudience, claims["aud"])

	for _, auth := range []string{"", "bearer wrong", "Basic " + a.RequestToken()} {
		status, _ := get(auth, TokenExchangeAudience)
		assert.Equal(t, 401, status, auth)
	}
	assert.Equal(t, int64(1), a.Count("token:issued"))
	assert.Equal(t, int64(3), a.Count("token:unauthorized"))
}
