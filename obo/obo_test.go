package obo_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testcerts"
	"github.com/azcredkit/azcredkit/internal/testguard"
	"github.com/azcredkit/azcredkit/obo"
)

const (
	tenant    = "aaaaaaaa-0000-0000-0000-00000000000a"
	apiID     = "a1a1a1a1-0000-0000-0000-0000000000a1" // the middle tier
	otherApp  = "b2b2b2b2-0000-0000-0000-0000000000b2"
	apiSecret = "middle-tier-secret"
	storage   = "https://storage.azure.com/user_impersonation"
)

func TestMain(m *testing.M) {
	testguard.VerifyTestMain(m)
}

type env struct {
	entra *emulator.Entra
	api   *emulator.App
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := emulator.NewEntra()
	t.Cleanup(e.Close)
	e.AddTenant(tenant)
	api := e.RegisterApp(tenant, apiID)
	api.AddSecret(apiSecret)
	e.RegisterApp(tenant, otherApp)
	return &env{entra: e, api: api}
}

func (e *env) options() *obo.AppOptions {
	co := e.entra.ClientOptions()
	co.Retry = policy.RetryOptions{MaxRetries: 2, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 100 * time.Millisecond}
	return &obo.AppOptions{ClientOptions: co, DisableInstanceDiscovery: true, TrustEasyAuthHeaders: true}
}

func (e *env) app(t testing.TB, o *obo.AppOptions) *obo.App {
	t.Helper()
	if o == nil {
		o = e.options()
	}
	a, err := obo.NewAppWithSecret(tenant, apiID, apiSecret, o)
	require.NoError(t, err)
	return a
}

func (e *env) user(i int) string {
	oid := fmt.Sprintf("00000000-0000-0000-0000-%012d", i)
	e.entra.AddUser(tenant, emulator.User{OID: oid, Name: fmt.Sprintf("User %d", i), UPN: fmt.Sprintf("user%d@contoso.example", i)})
	return oid
}

func (e *env) userToken(oid string, o emulator.UserTokenOptions) string {
	return e.entra.UserToken(tenant, oid, apiID, o)
}

func principalHeader(oid, name string) string {
	b, _ := json.Marshal(map[string]any{
		"auth_typ": "aad", "name_typ": "name", "role_typ": "roles",
		"claims": []map[string]string{{"typ": "name", "val": name}, {"typ": "roles", "val": "Reader"}, {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": oid}},
	})
	return base64.StdEncoding.EncodeToString(b)
}

func easyAuthRequest(tok, oid string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/blobs", nil)
	r.Header.Set(obo.HeaderAccessToken, tok)
	r.Header.Set(obo.HeaderClientPrincipal, principalHeader(oid, "User"))
	r.Header.Set(obo.HeaderPrincipalID, oid)
	r.Header.Set(obo.HeaderPrincipalName, "user@contoso.example")
	r.Header.Set(obo.HeaderPrincipalIDP, "aad")
	return r
}

func TestOBOExchangeAndCache(t *testing.T) {
	e := newEnv(t)
	a := e.app(t, nil)
	oid := e.user(1)
	tok := e.userToken(oid, emulator.UserTokenOptions{})
	ctx := context.Background()

	c, err := a.CredentialFromRequest(easyAuthRequest(tok, oid))
	require.NoError(t, err)
	require.Equal(t, oid, c.UserObjectID())
	require.Equal(t, "user1@contoso.example", c.UserName())
	require.NotNil(t, c.Principal())
	require.Equal(t, oid, c.Principal().ID)
	require.Equal(t, []string{"Reader"}, c.Principal().Roles())

	at, err := c.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{storage}})
	require.NoError(t, err)
	claims, err := e.entra.Verify(at.Token)
	require.NoError(t, err)
	require.Equal(t, oid, claims["oid"], "the token acts as the user")
	require.Equal(t, apiID, claims["appid"])
	require.Equal(t, "https://storage.azure.com", claims["aud"])
	require.Contains(t, claims["scp"], "user_impersonation")
	require.Equal(t, int64(1), e.entra.Count("token:obo"))

	// Another request of the same user: cached.
	c2, err := a.CredentialFromRequest(easyAuthRequest(tok, oid))
	require.NoError(t, err)
	at2, err := c2.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{storage}})
	require.NoError(t, err)
	require.Equal(t, at.Token, at2.Token)
	require.Equal(t, int64(1), e.entra.Count("token:obo"))
	// Another resource: another exchange.
	_, err = c2.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
	require.NoError(t, err)
	require.Equal(t, int64(2), e.entra.Count("token:obo"))
}

func TestCredentialFromRequestSources(t *testing.T) {
	e := newEnv(t)
	oid := e.user(2)
	tok := e.userToken(oid, emulator.UserTokenOptions{})
	idTok := e.userToken(oid, emulator.UserTokenOptions{IDToken: true})
	trusted := e.app(t, nil)
	o := e.options()
	o.TrustEasyAuthHeaders = false
	untrusted := e.app(t, o)
	o2 := e.options()
	o2.DisableBearerHeader = true
	noBearer := e.app(t, o2)

	bearer := func(tok string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return r
	}
	idOnly := httptest.NewRequest(http.MethodGet, "/", nil)
	idOnly.Header.Set(obo.HeaderIDToken, idTok)
	forgedPlusBearer := easyAuthRequest("forged", oid)
	forgedPlusBearer.Header.Set("Authorization", "Bearer "+tok)

	for _, tc := range []struct {
		name string
		app  *obo.App
		r    *http.Request
		want error
		msg  string
	}{
		{"trusted Easy Auth headers", trusted, easyAuthRequest(tok, oid), nil, ""},
		{"bearer", trusted, bearer(tok), nil, ""},
		{"bearer, untrusted app", untrusted, bearer(tok), nil, ""},
		{"forged headers without trust", untrusted, easyAuthRequest(tok, oid), obo.ErrUntrustedHeaders, "WEBSITE_AUTH_ENABLED"},
		{"forged headers ignored for the caller's own bearer", untrusted, forgedPlusBearer, nil, ""},
		{"id token only", trusted, idOnly, obo.ErrNoUserToken, "user_impersonation"},
		{"nothing", trusted, httptest.NewRequest(http.MethodGet, "/", nil), obo.ErrNoUserToken, "Authorization: Bearer"},
		{"bearer disabled", noBearer, bearer(tok), obo.ErrNoUserToken, ""},
		{"id token as bearer", trusted, bearer(idTok), obo.ErrNoUserToken, "id token"},
		{"malformed principal", trusted, func() *http.Request {
			r := easyAuthRequest(tok, oid)
			r.Header.Set(obo.HeaderClientPrincipal, "!!!not base64!!!")
			return r
		}(), obo.ErrMalformedHeader, obo.HeaderClientPrincipal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.app.CredentialFromRequest(tc.r)
			if tc.want == nil {
				require.NoError(t, err)
				require.Equal(t, oid, c.UserObjectID())
				return
			}
			require.Nil(t, c)
			require.ErrorIs(t, err, tc.want)
			require.ErrorContains(t, err, tc.msg)
			require.NotContains(t, err.Error(), tok)
		})
	}

	t.Run("behind App Service authentication", func(t *testing.T) {
		t.Setenv("WEBSITE_AUTH_ENABLED", "True")
		o := e.options()
		o.TrustEasyAuthHeaders = false
		a := e.app(t, o)
		_, err := a.CredentialFromRequest(easyAuthRequest(tok, oid))
		require.NoError(t, err)
	})
}

func TestUserTokenChecks(t *testing.T) {
	e := newEnv(t)
	a := e.app(t, nil)
	oid := e.user(3)
	appOnly, err := azidentity.NewClientSecretCredential(tenant, apiID, apiSecret, &azidentity.ClientSecretCredentialOptions{ClientOptions: e.options().ClientOptions, DisableInstanceDiscovery: true})
	require.NoError(t, err)
	e.api.GrantRoles("api://"+apiID, "Data.Read")
	appTok, err := appOnly.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"api://" + apiID + "/.default"}})
	require.NoError(t, err)

	for _, tc := range []struct {
		name, tok string
		want      error
		msg       string
	}{
		{"junk", "not-a-token", obo.ErrInvalidUserToken, "not a JWT"},
		{"three junk parts", "a.b.c", obo.ErrInvalidUserToken, "well-formed"},
		{"expired", e.userToken(oid, emulator.UserTokenOptions{Expired: true}), obo.ErrUserTokenExpired, "sign in again"},
		{"other audience", e.entra.UserToken(tenant, oid, otherApp, emulator.UserTokenOptions{}), obo.ErrInvalidUserToken, "audience"},
		{"id token", e.userToken(oid, emulator.UserTokenOptions{IDToken: true}), obo.ErrNoUserToken, "id token"},
		{"app-only token", appTok.Token, obo.ErrInvalidUserToken, "app-only"},
		{"oversized", strings.Repeat("a", obo.MaxUserTokenSize+1), obo.ErrInvalidUserToken, "bytes"},
		{"empty", "", obo.ErrNoUserToken, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := a.Credential(tc.tok)
			require.Nil(t, c)
			require.ErrorIs(t, err, tc.want)
			require.ErrorContains(t, err, tc.msg)
			if len(tc.tok) > 20 {
				require.NotContains(t, err.Error(), tc.tok)
			}
		})
	}
	require.Zero(t, e.entra.Count("token:obo"), "bad user tokens never reach Entra")
}

func TestStepUp(t *testing.T) {
	e := newEnv(t)
	e.entra.RequireMFA("https://storage.azure.com")
	a := e.app(t, nil)
	oid := e.user(4)
	ctx := context.Background()

	c, err := a.Credential(e.userToken(oid, emulator.UserTokenOptions{}))
	require.NoError(t, err)
	_, err = c.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{storage}})
	var ir *obo.InteractionRequiredError
	require.ErrorAs(t, err, &ir)
	require.Equal(t, 50076, ir.AADSTS)
	require.NotEmpty(t, ir.Claims)
	require.True(t, json.Valid([]byte(ir.Claims)))
	var afe *azidentity.AuthenticationFailedError
	require.ErrorAs(t, err, &afe, "the Entra error is wrapped")

	// An API caller gets 401 with the claims challenge.
	api := httptest.NewRecorder()
	apiReq := httptest.NewRequest(http.MethodGet, "/api/blobs", nil)
	apiReq.Header.Set("Authorization", "Bearer x")
	ir.WriteResponse(api, apiReq)
	require.Equal(t, http.StatusUnauthorized, api.Code)
	wa := api.Header().Get("WWW-Authenticate")
	require.Contains(t, wa, `error="insufficient_claims"`)
	b64 := strings.TrimSuffix(strings.SplitN(wa, `claims="`, 2)[1], `"`)
	decoded, err := base64.StdEncoding.DecodeString(b64)
	require.NoError(t, err)
	require.Equal(t, ir.Claims, string(decoded))

	// A browser is sent through the Easy Auth login with the claims.
	br := httptest.NewRecorder()
	brReq := httptest.NewRequest(http.MethodGet, "/blobs?x=1", nil)
	brReq.Header.Set("Accept", "text/html,application/xhtml+xml")
	ir.WriteResponse(br, brReq)
	require.Equal(t, http.StatusFound, br.Code)
	loc, err := url.Parse(br.Header().Get("Location"))
	require.NoError(t, err)
	require.Equal(t, "/.auth/login/aad", loc.Path)
	require.Equal(t, ir.Claims, loc.Query().Get("claims"))
	require.Equal(t, "/blobs?x=1", loc.Query().Get("post_login_redirect_uri"))

	// After MFA, the exchange succeeds.
	c, err = a.Credential(e.userToken(oid, emulator.UserTokenOptions{MFA: true}))
	require.NoError(t, err)
	at, err := c.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{storage}})
	require.NoError(t, err)
	claims, err := e.entra.Verify(at.Token)
	require.NoError(t, err)
	require.Equal(t, oid, claims["oid"])
}

// TestMiddlewareManyUsers: 200 concurrent users, several rounds, through the middleware of a real
// HTTP server; each sees only their own oid, and each user costs one OBO exchange.
func TestMiddlewareManyUsers(t *testing.T) {
	e := newEnv(t)
	a := e.app(t, nil)
	const users, rounds = 200, 3
	toks := make([]string, users)
	oids := make([]string, users)
	for i := range users {
		oids[i] = e.user(100 + i)
		toks[i] = e.userToken(oids[i], emulator.UserTokenOptions{})
	}
	srv := httptest.NewServer(a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := obo.CredentialFromContext(r.Context())
		if !ok {
			http.Error(w, "no credential", http.StatusInternalServerError)
			return
		}
		at, err := c.GetToken(r.Context(), policy.TokenRequestOptions{Scopes: []string{storage}})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		claims, err := e.entra.Verify(at.Token)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, claims["oid"])
	})))
	defer srv.Close()

	var wg sync.WaitGroup
	errs := make(chan error, users*rounds)
	for round := range rounds {
		for i := range users {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/blobs", nil)
				if (i+round)%2 == 0 {
					req.Header.Set(obo.HeaderAccessToken, toks[i])
				} else {
					req.Header.Set("Authorization", "Bearer "+toks[i])
				}
				resp, err := srv.Client().Do(req)
				if err != nil {
					errs <- err
					return
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != 200 || string(body) != oids[i] {
					errs <- fmt.Errorf("user %d round %d: %d %s", i, round, resp.StatusCode, body)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, int64(users), e.entra.Count("token:obo"), "one exchange per user, shared by all their requests")
	require.Equal(t, users, a.CachedUsers())

	// Without a token: 401 with a clear body.
	resp, err := srv.Client().Get(srv.URL + "/blobs")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Contains(t, string(body), "no user access token")
	require.Contains(t, resp.Header.Get("WWW-Authenticate"), "Bearer")
}

func TestCacheBounded(t *testing.T) {
	e := newEnv(t)
	o := e.options()
	o.MaxCachedUsers = 10
	a := e.app(t, o)
	ctx := context.Background()
	for i := range 50 {
		oid := e.user(1000 + i)
		c, err := a.Credential(e.userToken(oid, emulator.UserTokenOptions{}))
		require.NoError(t, err)
		at, err := c.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{storage}})
		require.NoError(t, err)
		claims, err := e.entra.Verify(at.Token)
		require.NoError(t, err)
		require.Equal(t, oid, claims["oid"])
		require.LessOrEqual(t, a.CachedUsers(), 10)
	}
	_, err := obo.NewAppWithSecret(tenant, apiID, apiSecret, &obo.AppOptions{MaxCachedUsers: -1})
	require.Error(t, err)
}

func TestAppWithCertificateAssertion(t *testing.T) {
	e := newEnv(t)
	key := testcerts.RSA(2048, 0)
	cert := testcerts.Cert(key, testcerts.Options{CommonName: "middle-tier"})
	e.api.AddCertificate(cert)
	signer, err := assertion.NewLocalSigner(key, "")
	require.NoError(t, err)
	co := e.options()
	cred, err := credential.NewSignedAssertionCredential(tenant, apiID, []*x509.Certificate{cert}, signer, &credential.SignedAssertionCredentialOptions{ClientOptions: co.ClientOptions, DisableInstanceDiscovery: true})
	require.NoError(t, err)
	a, err := obo.NewAppWithAssertion(tenant, apiID, cred, co)
	require.NoError(t, err)
	oid := e.user(5)
	c, err := a.Credential(e.userToken(oid, emulator.UserTokenOptions{}))
	require.NoError(t, err)
	at, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{storage}})
	require.NoError(t, err)
	claims, err := e.entra.Verify(at.Token)
	require.NoError(t, err)
	require.Equal(t, "2", claims["appidacr"], "the middle tier authenticated with its certificate, no secret")
	require.Equal(t, oid, claims["oid"])

	_, err = obo.NewAppWithAssertion(tenant, apiID, nil, co)
	require.Error(t, err)
	_, err = obo.NewAppWithSecret(tenant, apiID, "", co)
	require.Error(t, err)
	_, err = obo.NewAppWithSecret("bad/tenant", apiID, apiSecret, co)
	require.Error(t, err)
}

func TestOBOErrorsNeverHoldTokens(t *testing.T) {
	e := newEnv(t)
	o := e.options()
	a, err := obo.NewAppWithSecret(tenant, apiID, "wrong-secret", o)
	require.NoError(t, err)
	oid := e.user(6)
	tok := e.userToken(oid, emulator.UserTokenOptions{})
	c, err := a.Credential(tok)
	require.NoError(t, err)
	_, err = c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{storage}})
	require.ErrorContains(t, err, "AADSTS7000215")
	require.NotContains(t, err.Error(), tok)
	require.NotContains(t, err.Error(), "wrong-secret")
	require.False(t, errors.Is(err, obo.ErrNoUserToken))
}
