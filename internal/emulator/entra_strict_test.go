package emulator

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pssAssertion is a PS256 client assertion for the fixture's app signed with the given PSS salt
// length (rsa.PSSSaltLengthAuto signs with the largest salt the key allows).
func (f *fixture) pssAssertion(t *testing.T, saltLength int) string {
	t.Helper()
	sum := sha256.Sum256(f.cert.Raw)
	now := time.Now()
	hdr, err := json.Marshal(map[string]any{"alg": "PS256", "typ": "JWT", "x5t#S256": base64.RawURLEncoding.EncodeToString(sum[:])})
	require.NoError(t, err)
	claims, err := json.Marshal(map[string]any{
		"aud": f.e.TokenEndpoint(tenantA), "iss": appID, "sub": appID, "jti": newUUID(),
		"nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	})
	require.NoError(t, err)
	input := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(claims)
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPSS(rand.Reader, f.key, crypto.SHA256, digest[:], &rsa.PSSOptions{SaltLength: saltLength})
	require.NoError(t, err)
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// TestPS256SaltLength: RFC 7518 section 3.5 fixes PS256's salt at the hash length (32 bytes);
// Entra, like openssl and PyJWT, refuses any other salt.
func TestPS256SaltLength(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		name   string
		salt   int
		status int
	}{
		{"salt 32", 32, 200},
		{"salt equals hash", rsa.PSSSaltLengthEqualsHash, 200},
		{"maximum salt", rsa.PSSSaltLengthAuto, 401},
		{"salt 20", 20, 401},
		{"salt 64", 64, 401},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body := f.postAssertion(t, f.pssAssertion(t, c.salt))
			require.Equal(t, c.status, status, "%v", body["error_description"])
			if c.status != 200 {
				assert.Equal(t, "invalid_client", body["error"])
				assert.Equal(t, []int{700027}, errorCodes(body))
				assert.Contains(t, body["error_description"], "The provided signature value did not match the expected signature value.")
			}
		})
	}
}

// TestOnBehalfOfConsentRequired: without consent Entra answers AADSTS65001 with suberror
// consent_required and, unlike a step-up, no claims.
func TestOnBehalfOfConsentRequired(t *testing.T) {
	f := oboFixture(t)
	api := f.e.RegisterApp(tenantA, apiAppID)
	api.RequireConsent("https://storage.azure.com/")
	user := f.e.UserToken(tenantA, userOID, apiAppID, UserTokenOptions{MFA: true})

	status, body := f.obo(t, user, "https://storage.azure.com/user_impersonation", nil)
	require.Equal(t, 400, status, "%v", body)
	assert.Equal(t, "invalid_grant", body["error"])
	assert.Equal(t, []int{65001}, errorCodes(body))
	assert.Equal(t, "consent_required", body["suberror"])
	assert.NotContains(t, body, "claims")
	assert.Regexp(t, `^AADSTS65001: The user or administrator has not consented to use the application with ID '`+apiAppID+`'`, body["error_description"])
	assert.Equal(t, int64(1), f.e.Count("token:failed"))

	// Other resources and app-only tokens are not affected; consent given, the request passes.
	status, body = f.obo(t, user, "https://vault.azure.net/.default", nil)
	assert.Equal(t, 200, status, "%v", body["error_description"])
	status, _, _ = post(t, f.e.TokenEndpoint(tenantA), url.Values{
		"grant_type": {"client_credentials"}, "client_id": {apiAppID}, "client_secret": {"api-secret"},
		"scope": {"https://storage.azure.com/.default"},
	})
	assert.Equal(t, 200, status)
	api.GrantConsent("https://storage.azure.com")
	status, body = f.obo(t, user, "https://storage.azure.com/user_impersonation", nil)
	assert.Equal(t, 200, status, "%v", body["error_description"])
}

// appToken gets an app-only token of the fixture's app (its secret) for scope and returns its
// claims, or the error answer's codes.
func (f *fixture) appToken(t *testing.T, scope string) (map[string]any, []int) {
	t.Helper()
	status, body, _ := post(t, f.e.TokenEndpoint(tenantA), url.Values{
		"grant_type": {"client_credentials"}, "client_id": {appID}, "client_secret": {appSecret}, "scope": {scope},
	})
	if status != 200 {
		return nil, errorCodes(body)
	}
	claims, err := f.e.Verify(body["access_token"].(string))
	require.NoError(t, err)
	return claims, nil
}

// TestAppTokenShapes: app-only tokens for Azure's resources are v1 (appid/appidacr only); for an
// API registered as an app they are v2 with aud = its client ID and azp/azpacr only, whichever
// name of the API the scope used.
func TestAppTokenShapes(t *testing.T) {
	f := newFixture(t)
	api := f.e.RegisterApp(tenantA, downstreamID)
	api.AddIdentifierURI("api://contoso.example/files")
	f.app.GrantRoles("api://"+downstreamID, "Files.Read.All")

	v1, codes := f.appToken(t, "https://storage.azure.com/.default")
	require.Nil(t, codes)
	assert.Equal(t, "https://storage.azure.com", v1["aud"])
	assert.Equal(t, "https://sts.windows.net/"+tenantA+"/", v1["iss"])
	assert.Equal(t, "1.0", v1["ver"])
	assert.Equal(t, appID, v1["appid"])
	assert.Equal(t, "1", v1["appidacr"])
	assert.NotContains(t, v1, "azp")
	assert.NotContains(t, v1, "azpacr")

	for _, scope := range []string{"api://" + downstreamID + "/.default", downstreamID + "/.default", "api://contoso.example/files/.default", "API://Contoso.Example/Files/.default"} {
		v2, codes := f.appToken(t, scope)
		require.Nil(t, codes, scope)
		assert.Equal(t, downstreamID, v2["aud"], scope)
		assert.Equal(t, f.e.AuthorityHost()+tenantA+"/v2.0", v2["iss"], scope)
		assert.Equal(t, "2.0", v2["ver"], scope)
		assert.Equal(t, appID, v2["azp"], scope)
		assert.Equal(t, "1", v2["azpacr"], scope)
		assert.NotContains(t, v2, "appid", scope)
		assert.NotContains(t, v2, "appidacr", scope)
		assert.Equal(t, []any{"Files.Read.All"}, v2["roles"], "roles granted under any name of the API: %s", scope)
	}

	// An API that is not registered, or has no service principal in the tenant: AADSTS500011.
	_, codes = f.appToken(t, "api://nowhere/.default")
	assert.Equal(t, []int{500011}, codes)
	f.e.RegisterApp(tenantB, "eeeeeeee-2222-4333-8444-555555555555")
	_, codes = f.appToken(t, "api://eeeeeeee-2222-4333-8444-555555555555/.default")
	assert.Equal(t, []int{500011}, codes)
	status, body, _ := post(t, f.e.TokenEndpoint(tenantA), url.Values{
		"grant_type": {"client_credentials"}, "client_id": {appID}, "client_secret": {appSecret}, "scope": {"api://nowhere/.default"},
	})
	assert.Equal(t, 400, status)
	assert.Equal(t, "invalid_resource", body["error"])
	assert.Contains(t, body["error_description"], "AADSTS500011: The resource principal named api://nowhere was not found in the tenant named "+tenantA+".")
}

// TestUserTokenShapes: the middle tier's user token is a v2 access token for its client ID by
// default; AppIDURI and V1 make the other shapes Entra issues, and all serve on-behalf-of.
func TestUserTokenShapes(t *testing.T) {
	f := oboFixture(t)
	v2, err := f.e.Verify(f.e.UserToken(tenantA, userOID, apiAppID, UserTokenOptions{}))
	require.NoError(t, err)
	assert.Equal(t, apiAppID, v2["aud"])
	assert.Equal(t, "2.0", v2["ver"])
	assert.Equal(t, userClientApp, v2["azp"])
	assert.Equal(t, "0", v2["azpacr"])
	assert.Equal(t, "ada@contoso.example", v2["preferred_username"])
	assert.NotContains(t, v2, "appid")
	assert.NotContains(t, v2, "appidacr")
	assert.NotContains(t, v2, "unique_name")

	uri, err := f.e.Verify(f.e.UserToken(tenantA, userOID, apiAppID, UserTokenOptions{AppIDURI: true}))
	require.NoError(t, err)
	assert.Equal(t, "api://"+apiAppID, uri["aud"])
	assert.Equal(t, "2.0", uri["ver"])

	v1tok := f.e.UserToken(tenantA, userOID, apiAppID, UserTokenOptions{V1: true, ClientApp: "spa"})
	v1, err := f.e.Verify(v1tok)
	require.NoError(t, err)
	assert.Equal(t, "api://"+apiAppID, v1["aud"])
	assert.Equal(t, "https://sts.windows.net/"+tenantA+"/", v1["iss"])
	assert.Equal(t, "1.0", v1["ver"])
	assert.Equal(t, "spa", v1["appid"])
	assert.Equal(t, "0", v1["appidacr"])
	assert.Equal(t, "ada@contoso.example", v1["upn"])
	assert.Equal(t, "ada@contoso.example", v1["unique_name"])
	assert.NotContains(t, v1, "azp")
	assert.NotContains(t, v1, "azpacr")
	assert.NotContains(t, v1, "preferred_username")

	for name, tok := range map[string]string{
		"v2":         f.e.UserToken(tenantA, userOID, apiAppID, UserTokenOptions{}),
		"App ID URI": f.e.UserToken(tenantA, userOID, apiAppID, UserTokenOptions{AppIDURI: true}),
		"v1":         v1tok,
	} {
		status, body := f.obo(t, tok, "https://storage.azure.com/user_impersonation", nil)
		assert.Equal(t, 200, status, "%s: %v", name, body["error_description"])
	}
}

// TestOnBehalfOfTokenShapes: OBO tokens for Azure's resources are v1 (appid/appidacr, upn and
// unique_name); for a downstream API they are v2 (aud = its client ID, azp/azpacr,
// preferred_username).
func TestOnBehalfOfTokenShapes(t *testing.T) {
	f := oboFixture(t)
	f.e.RegisterApp(tenantA, downstreamID).AddIdentifierURI("api://downstream")
	f.e.RegisterApp(tenantA, apiAppID).AddIdentifierURI("api://contoso.example/middle")
	user := f.e.UserToken(tenantA, userOID, apiAppID, UserTokenOptions{})

	status, body := f.obo(t, user, "https://storage.azure.com/user_impersonation", nil)
	require.Equal(t, 200, status, "%v", body["error_description"])
	v1, err := f.e.Verify(body["access_token"].(string))
	require.NoError(t, err)
	assert.Equal(t, apiAppID, v1["appid"])
	assert.Equal(t, "1", v1["appidacr"])
	assert.Equal(t, "ada@contoso.example", v1["upn"])
	assert.Equal(t, "ada@contoso.example", v1["unique_name"])
	for _, c := range []string{"azp", "azpacr", "preferred_username"} {
		assert.NotContains(t, v1, c)
	}

	for _, scope := range []string{"api://downstream/Files.Read", downstreamID + "/Files.Read"} {
		status, body = f.obo(t, user, scope, nil)
		require.Equal(t, 200, status, "%s: %v", scope, body["error_description"])
		v2, err := f.e.Verify(body["access_token"].(string))
		require.NoError(t, err)
		assert.Equal(t, downstreamID, v2["aud"], scope)
		assert.Equal(t, "2.0", v2["ver"], scope)
		assert.Equal(t, apiAppID, v2["azp"], scope)
		assert.Equal(t, "1", v2["azpacr"], scope)
		assert.Equal(t, "ada@contoso.example", v2["preferred_username"], scope)
		assert.Equal(t, "Files.Read", v2["scp"], scope)
		for _, c := range []string{"appid", "appidacr", "unique_name"} {
			assert.NotContains(t, v2, c, scope)
		}
	}

	// A downstream API that does not exist; a user token for an added App ID URI of the middle
	// tier; step-up and consent set under one name of the API apply under the others.
	status, body = f.obo(t, user, "api://nowhere/Files.Read", nil)
	assert.Equal(t, 400, status)
	assert.Equal(t, []int{500011}, errorCodes(body))
	other := f.e.sign(map[string]any{
		"aud": "api://contoso.example/middle", "iss": f.e.issuer(tenantA, false), "tid": tenantA, "oid": userOID,
		"scp": "user_impersonation", "azp": userClientApp, "exp": time.Now().Add(time.Hour).Unix(),
	})
	status, body = f.obo(t, other, "https://storage.azure.com/user_impersonation", nil)
	assert.Equal(t, 200, status, "%v", body["error_description"])
	f.e.RequireMFA("api://downstream")
	status, body = f.obo(t, user, downstreamID+"/Files.Read", nil)
	assert.Equal(t, []int{50076}, errorCodes(body), "%d", status)
	f.e.RegisterApp(tenantA, apiAppID).RequireConsent(downstreamID)
	status, body = f.obo(t, user, "api://downstream/Files.Read", nil)
	assert.Equal(t, []int{65001}, errorCodes(body), "%d", status)
}

// TestAssertionThumbprintMatchesAlg: Entra finds the certificate of an RS256 assertion by x5t
// (SHA-1) and of a PS256 assertion by x5t#S256; the other header does not stand in for it.
func TestAssertionThumbprintMatchesAlg(t *testing.T) {
	f := newFixture(t)
	s1 := sha1.Sum(f.cert.Raw)
	s256 := sha256.Sum256(f.cert.Raw)
	x5t := base64.RawURLEncoding.EncodeToString(s1[:])
	x5tS256 := base64.RawURLEncoding.EncodeToString(s256[:])
	for _, c := range []struct {
		name   string
		alg    jwt.SigningMethod
		header map[string]any
		status int
	}{
		{"PS256 x5t#S256", jwt.SigningMethodPS256, map[string]any{"x5t#S256": x5tS256}, 200},
		{"RS256 x5t", jwt.SigningMethodRS256, map[string]any{"x5t": x5t}, 200},
		{"PS256 both", jwt.SigningMethodPS256, map[string]any{"x5t#S256": x5tS256, "x5t": x5t}, 200},
		{"RS256 both", jwt.SigningMethodRS256, map[string]any{"x5t#S256": x5tS256, "x5t": x5t}, 200},
		{"PS256 x5t only", jwt.SigningMethodPS256, map[string]any{"x5t": x5t}, 401},
		{"RS256 x5t#S256 only", jwt.SigningMethodRS256, map[string]any{"x5t#S256": x5tS256}, 401},
		{"RS256 x5t of another certificate, x5t#S256 right", jwt.SigningMethodRS256, map[string]any{"x5t#S256": x5tS256, "x5t": base64.RawURLEncoding.EncodeToString(make([]byte, 20))}, 401},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body := f.postAssertion(t, f.assertion(func(a *assertion) {
				a.alg = c.alg
				a.header = map[string]any{"alg": c.alg.Alg(), "typ": "JWT"}
				for k, v := range c.header {
					a.header[k] = v
				}
			}))
			require.Equal(t, c.status, status, "%v", body["error_description"])
			if c.status != 200 {
				assert.Equal(t, []int{700027}, errorCodes(body))
				assert.Contains(t, body["error_description"], "The key was not found.")
			}
		})
	}
}

// TestAssertionAudienceIsOneString: Entra refuses an aud array even when it holds the token
// endpoint (AADSTS50027, seen with openid-client sending [issuer, token endpoint]).
func TestAssertionAudienceIsOneString(t *testing.T) {
	f := newFixture(t)
	for _, aud := range []any{
		[]any{f.e.TokenEndpoint(tenantA)},
		[]any{f.e.AuthorityHost() + tenantA + "/v2.0", f.e.TokenEndpoint(tenantA)},
	} {
		status, body := f.postAssertion(t, f.assertion(func(a *assertion) { a.claims["aud"] = aud }))
		assert.Equal(t, 401, status, "%v", aud)
		assert.Equal(t, []int{50027}, errorCodes(body), "%v", aud)
	}
	for _, aud := range []any{nil, 42, ""} {
		status, body := f.postAssertion(t, f.assertion(func(a *assertion) { a.claims["aud"] = aud }))
		assert.Equal(t, 401, status, "%v", aud)
		assert.Equal(t, []int{700023}, errorCodes(body), "%v", aud)
	}
}

// TestAssertionExpiresBeforeValid: an assertion whose exp is not after its nbf is never valid,
// even when now falls within the clock skew allowed before nbf.
func TestAssertionExpiresBeforeValid(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	for _, c := range []struct{ nbf, exp time.Time }{
		{now.Add(2 * time.Minute), now.Add(time.Minute)},
		{now.Add(time.Minute), now.Add(time.Minute)},
	} {
		status, body := f.postAssertion(t, f.assertion(func(a *assertion) {
			a.claims["nbf"], a.claims["exp"] = c.nbf.Unix(), c.exp.Unix()
		}))
		assert.Equal(t, 401, status)
		assert.Equal(t, []int{700024}, errorCodes(body), "%v", body["error_description"])
	}
	// Within the skew before nbf, with exp after nbf: accepted.
	status, body := f.postAssertion(t, f.assertion(func(a *assertion) {
		a.claims["nbf"], a.claims["exp"] = now.Add(2*time.Minute).Unix(), now.Add(12*time.Minute).Unix()
	}))
	assert.Equal(t, 200, status, "%v", body["error_description"])
}
