package obo_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/entra"
	"github.com/azcredkit/azcredkit/obo"
)

// TestCachedUsersNeverAboveBound: many goroutines sign in distinct users through App.Credential
// while a sampler reads CachedUsers: it never exceeds MaxCachedUsers, not even for a moment.
func TestCachedUsersNeverAboveBound(t *testing.T) {
	e := newEnv(t)
	const users = 400
	toks := make([]string, users)
	for i := range users {
		toks[i] = e.userToken(e.user(20_000+i), emulator.UserTokenOptions{})
	}
	for _, max := range []int{1, 8} {
		t.Run(fmt.Sprintf("MaxCachedUsers %d", max), func(t *testing.T) {
			o := e.options()
			o.MaxCachedUsers = max
			a := e.app(t, o)
			var worst atomic.Int64
			note := func(n int) {
				for w := worst.Load(); int64(n) > w && !worst.CompareAndSwap(w, int64(n)); w = worst.Load() {
				}
			}
			var stop atomic.Bool
			var sampler sync.WaitGroup
			sampler.Go(func() {
				for !stop.Load() {
					note(a.CachedUsers())
				}
			})
			var next atomic.Int64
			var wg sync.WaitGroup
			for range 32 {
				wg.Go(func() {
					for i := int(next.Add(1)) - 1; i < users; i = int(next.Add(1)) - 1 {
						c, err := a.Credential(toks[i])
						if err != nil {
							t.Error(err)
							return
						}
						if c.UserObjectID() != fmt.Sprintf("00000000-0000-0000-0000-%012d", 20_000+i) {
							t.Error("another user's credential")
						}
						note(a.CachedUsers())
					}
				})
			}
			wg.Wait()
			stop.Store(true)
			sampler.Wait()
			require.LessOrEqual(t, worst.Load(), int64(max), "CachedUsers exceeded MaxCachedUsers")
			require.Equal(t, max, a.CachedUsers())
		})
	}
}

// TestTrustedHeadersNeverCombinedWithBearer: with trusted Easy Auth headers but no
// X-MS-TOKEN-AAD-ACCESS-TOKEN, the credential is the Bearer token's alone: the principal headers
// (which may describe someone else) are not attached to it.
func TestTrustedHeadersNeverCombinedWithBearer(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.user(31), e.user(32)
	aliceTok, bobTok := e.userToken(alice, emulator.UserTokenOptions{}), e.userToken(bob, emulator.UserTokenOptions{})
	a := e.app(t, nil)

	// Principal headers of alice, Bearer token of bob.
	mixed := easyAuthRequest("", alice)
	mixed.Header.Del(obo.HeaderAccessToken)
	mixed.Header.Set("Authorization", "Bearer "+bobTok)
	c, err := a.CredentialFromRequest(mixed)
	require.NoError(t, err)
	require.Equal(t, bob, c.UserObjectID())
	require.Nil(t, c.Principal(), "alice's principal headers must not describe bob's credential")

	// The same through Middleware.
	var seen *obo.EasyAuthOBOCredential
	h := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = obo.CredentialFromContext(r.Context())
	}))
	h.ServeHTTP(httptest.NewRecorder(), mixed)
	require.NotNil(t, seen)
	require.Equal(t, bob, seen.UserObjectID())
	require.Nil(t, seen.Principal())

	// With the Easy Auth token header, the Easy Auth headers are the one source (Bearer ignored).
	both := easyAuthRequest(aliceTok, alice)
	both.Header.Set("Authorization", "Bearer "+bobTok)
	c, err = a.CredentialFromRequest(both)
	require.NoError(t, err)
	require.Equal(t, alice, c.UserObjectID())
	require.NotNil(t, c.Principal())
	require.Equal(t, alice, c.Principal().ID)

	// Bearer disabled: no token to take, whatever the principal headers say.
	o := e.options()
	o.DisableBearerHeader = true
	_, err = e.app(t, o).CredentialFromRequest(mixed)
	require.ErrorIs(t, err, obo.ErrNoUserToken)
}

// TestMiddlewareRefusals: what Middleware tells a client it refuses. No error code when the
// client sent no token (RFC 6750 section 3.1), error="invalid_token" for a token that cannot be
// used, and never a configuration detail in the answer: option and variable names go to the log.
func TestMiddlewareRefusals(t *testing.T) {
	e := newEnv(t)
	oid := e.user(41)
	tok := e.userToken(oid, emulator.UserTokenOptions{})
	var logs bytes.Buffer // Middleware runs on this goroutine (ServeHTTP below)
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	o := e.options()
	o.Logger = logger
	trusted := e.app(t, o)
	o = e.options()
	o.Logger, o.TrustEasyAuthHeaders = logger, false
	untrusted := e.app(t, o)
	authorize := e.entra.AuthorityHost() + tenant + "/oauth2/v2.0/authorize"

	req := func(headers ...string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/files", nil)
		for i := 0; i < len(headers); i += 2 {
			r.Header.Set(headers[i], headers[i+1])
		}
		return r
	}
	for _, tc := range []struct {
		name      string
		app       *obo.App
		r         *http.Request
		status    int
		errorCode string // "" = no error parameter
		logged    string // what the log says and the answer must not
	}{
		{"no token", trusted, req(), 401, "", "Authorization: Bearer"},
		{"forged Easy Auth headers", untrusted, req(obo.HeaderAccessToken, tok, obo.HeaderPrincipalID, oid), 401, "", "TrustEasyAuthHeaders"},
		{"Easy Auth id token only", trusted, req(obo.HeaderIDToken, e.userToken(oid, emulator.UserTokenOptions{IDToken: true}), obo.HeaderPrincipalID, oid), 401, "", "login parameters"},
		{"Easy Auth principal without the token store", trusted, req(obo.HeaderPrincipalID, oid), 401, "", "token store"},
		{"expired Bearer token", trusted, req("Authorization", "Bearer "+e.userToken(oid, emulator.UserTokenOptions{Expired: true})), 401, "invalid_token", "sign in again"},
		{"Bearer token for another API", trusted, req("Authorization", "Bearer "+e.entra.UserToken(tenant, oid, otherApp, emulator.UserTokenOptions{})), 401, "invalid_token", "request a token for this app's scope"},
		{"id token as Bearer", trusted, req("Authorization", "Bearer "+e.userToken(oid, emulator.UserTokenOptions{IDToken: true})), 401, "invalid_token", "login parameters"},
		{"opaque Bearer token", trusted, req("Authorization", "Bearer EwBwA8l6BAAUbDba3x2OMJElkF7gJ4z"), 401, "invalid_token", "user_impersonation"},
		{"malformed principal header", trusted, req(obo.HeaderAccessToken, tok, obo.HeaderClientPrincipal, "%%%"), 400, "invalid_request", "not base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(logs.String())
			w := httptest.NewRecorder()
			tc.app.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
				t.Error("the handler ran")
			})).ServeHTTP(w, tc.r)
			require.Equal(t, tc.status, w.Code)
			scheme, params := challenge(w.Header().Get("WWW-Authenticate"))
			require.Equal(t, "Bearer", scheme)
			require.Contains(t, params, "realm")
			require.Equal(t, authorize, params["authorization_uri"])
			require.Equal(t, tc.errorCode, params["error"])
			if tc.errorCode == "" {
				require.NotContains(t, params, "error_description")
			} else {
				require.NotEmpty(t, params["error_description"])
			}
			body := w.Body.String()
			require.NotEmpty(t, strings.TrimSpace(body))
			answer := body + w.Header().Get("WWW-Authenticate")
			for _, detail := range []string{"WEBSITE_AUTH_ENABLED", "TrustEasyAuthHeaders", "AppOptions", "DisableBearerHeader", "token store", "login parameters", "scope=openid", apiID, tok} {
				require.NotContains(t, answer, detail, "configuration detail or token in the answer")
			}
			logged := logs.String()[before:]
			require.Contains(t, logged, tc.logged, "the log tells the operator what to fix")
			require.NotContains(t, logged, tok)
		})
	}
}

// TestConsentRequired: Entra's answer when nobody consented to the middle tier's permission (400
// invalid_grant, AADSTS65001, suberror consent_required, no claims) is an
// *InteractionRequiredError that says it is about consent, and WriteResponse asks an API caller
// (403 insufficient_scope, the scope to request with prompt=consent) and a browser (Easy Auth
// login with prompt=consent) for consent.
func TestConsentRequired(t *testing.T) {
	e := newEnv(t)
	const sql = "https://database.windows.net/user_impersonation"
	e.entra.OnToken(consentRequired(sql))
	a := e.app(t, nil)
	oid := e.user(51)
	tok := e.userToken(oid, emulator.UserTokenOptions{})
	c, err := a.Credential(tok)
	require.NoError(t, err)

	_, err = c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{sql}})
	var ir *obo.InteractionRequiredError
	require.ErrorAs(t, err, &ir)
	require.True(t, ir.Consent())
	require.Empty(t, ir.Claims)
	require.Equal(t, 65001, ir.AADSTS)
	require.Equal(t, "consent_required", ir.SubError)
	require.Equal(t, []string{sql}, ir.Scopes)
	require.Equal(t, e.entra.AuthorityHost()+tenant+"/oauth2/v2.0/authorize", ir.AuthorizationURI)
	require.ErrorContains(t, err, "consent")
	var afe *azidentity.AuthenticationFailedError
	require.ErrorAs(t, err, &afe, "the Entra error is wrapped")
	require.Equal(t, http.StatusForbidden, ir.StatusCode())

	// Other scopes are not affected; a step-up is not consent.
	_, err = c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{storage}})
	require.NoError(t, err)

	srv := httptest.NewServer(a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, _ := obo.CredentialFromContext(r.Context())
		_, err := user.GetToken(r.Context(), policy.TokenRequestOptions{Scopes: []string{sql}})
		var ir *obo.InteractionRequiredError
		if !assertAs(t, err, &ir) {
			http.Error(w, "unexpected", http.StatusInternalServerError)
			return
		}
		ir.WriteResponse(w, r)
	})))
	defer srv.Close()
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	// An API caller.
	r, _ := http.NewRequest(http.MethodGet, srv.URL+"/report?month=5", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(r)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	scheme, params := challenge(resp.Header.Get("WWW-Authenticate"))
	require.Equal(t, "Bearer", scheme)
	require.Equal(t, map[string]string{
		"realm":             "",
		"authorization_uri": e.entra.AuthorityHost() + tenant + "/oauth2/v2.0/authorize",
		"error":             "insufficient_scope",
		"error_description": params["error_description"],
		"scope":             apiID + "/.default",
	}, params)
	require.Contains(t, params["error_description"], "prompt=consent")
	var jb map[string]any
	require.NoError(t, json.Unmarshal(body, &jb), "JSON body: %s", body)
	require.Equal(t, "insufficient_scope", jb["error"])
	require.Equal(t, "consent_required", jb["suberror"])
	require.Equal(t, apiID+"/.default", jb["scope"])
	require.Equal(t, []any{sql}, jb["consent_scopes"])
	require.Equal(t, params["authorization_uri"], jb["authorization_uri"])
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.NotContains(t, string(body), tok)

	// A browser.
	r, _ = http.NewRequest(http.MethodGet, srv.URL+"/report?month=5", nil)
	r.Header.Set(obo.HeaderAccessToken, tok)
	r.Header.Set("Accept", "text/html,application/xhtml+xml")
	resp, err = client.Do(r)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, "/.auth/login/aad", loc.Path)
	require.Equal(t, url.Values{"prompt": {"consent"}, "post_login_redirect_uri": {"/report?month=5"}}, loc.Query())
}

// assertAs is require.ErrorAs for a handler goroutine.
func assertAs(t *testing.T, err error, target any) bool {
	t.Helper()
	if !errors.As(err, target) {
		t.Errorf("got %v, want %T", err, target)
		return false
	}
	return true
}

// TestClaimsChallengeNamesAuthorizationURI: the API caller's claims challenge is the one Entra's
// documentation specifies, with realm and the required authorization_uri on the App's cloud in
// the tenant of the exchange.
func TestClaimsChallengeNamesAuthorizationURI(t *testing.T) {
	e := newEnv(t)
	const guestTenant = "cccccccc-0000-0000-0000-00000000000c"
	e.entra.AddTenant(guestTenant)
	claims := `{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`
	e.entra.OnToken(func(r *emulator.TokenRequest) *emulator.ErrorResponse {
		if r.GrantType != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
			return nil
		}
		return &emulator.ErrorResponse{Error: "interaction_required", Code: 50076, SubError: "basic_action", Claims: claims,
			Description: "AADSTS50076: Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access the resource."}
	})
	o := e.options()
	o.AdditionallyAllowedTenants = []string{guestTenant}
	a := e.app(t, o)
	c, err := a.Credential(e.userToken(e.user(61), emulator.UserTokenOptions{}))
	require.NoError(t, err)

	for _, tenantID := range []string{"", guestTenant} {
		_, err = c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{storage}, TenantID: tenantID})
		var ir *obo.InteractionRequiredError
		require.ErrorAs(t, err, &ir)
		require.False(t, ir.Consent())
		want := tenantID
		if want == "" {
			want = tenant
		}
		require.Equal(t, e.entra.AuthorityHost()+want+"/oauth2/v2.0/authorize", ir.AuthorizationURI)

		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/files", nil)
		r.Header.Set("Authorization", "Bearer x")
		ir.WriteResponse(w, r)
		require.Equal(t, http.StatusUnauthorized, w.Code)
		h := w.Header().Get("WWW-Authenticate")
		require.True(t, strings.HasPrefix(h, `Bearer realm="", authorization_uri="`+ir.AuthorizationURI+`", error="insufficient_claims", claims="`), h)
		_, params := challenge(h)
		decoded, err := base64.StdEncoding.DecodeString(params["claims"])
		require.NoError(t, err)
		require.Equal(t, claims, string(decoded))
		require.Len(t, params, 4)
	}
}

// With the secret, the tenant and the client all missing, the error names all three.
func TestNewAppWithSecretReportsEveryMissingSetting(t *testing.T) {
	_, err := obo.NewAppWithSecret("", "", "", nil)
	require.ErrorIs(t, err, assertion.ErrInvalidOptions)
	require.ErrorIs(t, err, entra.ErrInvalidTenantID)
	for _, want := range []string{"tenant ID is empty", "client ID is empty", "secret is empty"} {
		require.Contains(t, err.Error(), want)
	}
}
