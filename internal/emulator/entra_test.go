package emulator

import (
	"context"
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/internal/testcerts"
)

func TestClientSecretCredential(t *testing.T) {
	for _, discovery := range []bool{false, true} {
		t.Run(map[bool]string{false: "NoInstanceDiscovery", true: "InstanceDiscovery"}[discovery], func(t *testing.T) {
			f := newFixture(t)
			tok, err := getToken(t, f.secretCred(t, tenantA, appSecret, discovery), vaultAud+"/.default")
			require.NoError(t, err)
			assert.WithinDuration(t, time.Now().Add(time.Hour), tok.ExpiresOn, time.Minute)

			claims, err := f.e.Verify(tok.Token)
			require.NoError(t, err)
			assert.Equal(t, vaultAud, claims["aud"])
			assert.Equal(t, "https://sts.windows.net/"+tenantA+"/", claims["iss"])
			assert.Equal(t, "1.0", claims["ver"])
			assert.Equal(t, tenantA, claims["tid"])
			assert.Equal(t, appID, claims["appid"])
			assert.Equal(t, "1", claims["appidacr"])
			assert.NotContains(t, claims, "azp", "v1 tokens name the client appid")
			assert.NotContains(t, claims, "azpacr")
			assert.Equal(t, spObjectID(appID, tenantA), claims["oid"])
			assert.NotEmpty(t, claims["uti"])

			assert.Equal(t, int64(1), f.e.Count("token"))
			assert.Equal(t, int64(1), f.e.Count("token:client_credentials"))
			assert.Equal(t, int64(0), f.e.Count("token:failed"))
			assert.GreaterOrEqual(t, f.e.Count("openid_configuration"), int64(1))
			if discovery {
				// MSAL asks once for the endpoints and once for its cache's aliases.
				assert.GreaterOrEqual(t, f.e.Count("instance_discovery"), int64(1))
			} else {
				assert.Equal(t, int64(0), f.e.Count("instance_discovery"))
			}
		})
	}
}

func TestClientCertificateCredential(t *testing.T) {
	for _, discovery := range []bool{false, true} {
		t.Run(map[bool]string{false: "NoInstanceDiscovery", true: "InstanceDiscovery"}[discovery], func(t *testing.T) {
			f := newFixture(t)
			f.e.RegisterApp(tenantA, downstreamID).AddIdentifierURI("api://downstream")
			var mu sync.Mutex
			var seen *TokenRequest
			f.e.OnToken(func(tr *TokenRequest) *ErrorResponse {
				mu.Lock()
				defer mu.Unlock()
				seen = tr
				return nil
			})
			tok, err := getToken(t, f.certCred(t, tenantA, f.cert, f.key, discovery), "api://downstream/.default")
			require.NoError(t, err)
			claims, err := f.e.Verify(tok.Token)
			require.NoError(t, err)
			assert.Equal(t, downstreamID, claims["aud"], "v2 tokens have the API's client ID as aud")
			assert.Equal(t, f.e.AuthorityHost()+tenantA+"/v2.0", claims["iss"])
			assert.Equal(t, "2.0", claims["ver"])
			assert.Equal(t, appID, claims["azp"])
			assert.Equal(t, "2", claims["azpacr"])
			assert.NotContains(t, claims, "appid", "v2 tokens name the client azp")
			assert.NotContains(t, claims, "appidacr")

			mu.Lock()
			defer mu.Unlock()
			require.NotNil(t, seen)
			assert.Equal(t, tenantA, seen.Tenant)
			assert.Equal(t, "client_credentials", seen.GrantType)
			assert.Equal(t, appID, seen.ClientID)
			assert.Contains(t, seen.Scopes, "api://downstream/.default")
			assert.Equal(t, "PS256", seen.AssertionHeader["alg"])
			sum := sha256.Sum256(f.cert.Raw)
			assert.Equal(t, base64.StdEncoding.EncodeToString(sum[:]), seen.AssertionHeader["x5t#S256"], "MSAL sends standard base64")
			assert.Equal(t, f.e.TokenEndpoint(tenantA), seen.AssertionClaims["aud"])
			assert.Equal(t, appID, seen.AssertionClaims["iss"])
		})
	}
}

func TestCredentialErrors(t *testing.T) {
	f := newFixture(t)
	other := testcerts.Cert(testcerts.RSA(2048, 1), testcerts.Options{})

	_, err := getToken(t, f.secretCred(t, tenantA, "wrong", false), vaultAud+"/.default")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "AADSTS7000215")

	_, err = getToken(t, f.certCred(t, tenantA, other, testcerts.RSA(2048, 1), false), vaultAud+"/.default")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "AADSTS700027")

	_, err = getToken(t, f.secretCred(t, "cccccccc-0000-4000-8000-000000000003", appSecret, false), vaultAud+"/.default")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "AADSTS90002")

	f.e.AddTenant(tenantB)
	_, err = getToken(t, f.secretCred(t, tenantB, appSecret, false), vaultAud+"/.default")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "AADSTS700016")

	_, err = getToken(t, f.secretCred(t, tenantA, appSecret, false), vaultAud+"/user_impersonation")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "AADSTS1002012")

	// A removed certificate stops working.
	_, err = getToken(t, f.certCred(t, tenantA, f.cert, f.key, false), vaultAud+"/.default")
	require.NoError(t, err)
	f.app.RemoveCertificate(f.cert)
	_, err = getToken(t, f.certCred(t, tenantA, f.cert, f.key, false), vaultAud+"/.default")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "AADSTS700027")

	// The unknown tenant fails at the openid-configuration: no token request.
	assert.Equal(t, int64(5), f.e.Count("token:failed"))
}

func TestMultiTenantApp(t *testing.T) {
	f := newFixture(t)
	f.app.AddServicePrincipal(tenantB)
	f.app.GrantRoles("https://storage.azure.com", "Storage.Read")
	tok, err := getToken(t, f.secretCred(t, tenantB, appSecret, false), "https://storage.azure.com/.default")
	require.NoError(t, err)
	claims, err := f.e.Verify(tok.Token)
	require.NoError(t, err)
	assert.Equal(t, tenantB, claims["tid"])
	assert.Equal(t, spObjectID(appID, tenantB), claims["oid"])
	assert.NotEqual(t, spObjectID(appID, tenantA), claims["oid"])
	assert.Equal(t, []any{"Storage.Read"}, claims["roles"])
	assert.Equal(t, "https://storage.azure.com", claims["aud"])
}

func TestTokenLifetimeAndRefreshIn(t *testing.T) {
	f := newFixture(t)
	f.e.SetTokenLifetime(10*time.Minute + 500*time.Millisecond)
	f.e.SetRefreshIn(5 * time.Minute)
	tok, err := getToken(t, f.secretCred(t, tenantA, appSecret, false), vaultAud+"/.default")
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(10*time.Minute), tok.ExpiresOn, 5*time.Second)
	assert.WithinDuration(t, time.Now().Add(5*time.Minute), tok.RefreshOn, 5*time.Second)

	status, body, hdr := post(t, f.e.TokenEndpoint(tenantA), url.Values{
		"grant_type": {"client_credentials"}, "client_id": {appID}, "client_secret": {appSecret},
		"scope": {vaultAud + "/.default"},
	})
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "application/json; charset=utf-8", hdr.Get("Content-Type"))
	assert.Equal(t, "Bearer", body["token_type"])
	assert.Equal(t, float64(600), body["expires_in"])
	assert.Equal(t, float64(600), body["ext_expires_in"])
	assert.Equal(t, float64(300), body["refresh_in"])

	f.e.SetRefreshIn(0)
	f.e.SetTokenLifetime(0) // clamped to 1s
	_, body, _ = post(t, f.e.TokenEndpoint(tenantA), url.Values{
		"grant_type": {"client_credentials"}, "client_id": {appID}, "client_secret": {appSecret},
		"scope": {vaultAud + "/.default"},
	})
	assert.Equal(t, float64(1), body["expires_in"])
	assert.NotContains(t, body, "refresh_in")
}

func TestInjectRetryAfter(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.e.Inject(Fault{Status: http.StatusServiceUnavailable, RetryAfter: 300 * time.Millisecond})
	start := time.Now()
	_, err := getToken(t, f.secretCred(t, tenantA, appSecret, false), vaultAud+"/.default")
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond, "Retry-After is rounded up to 1s and honoured")
	assert.Equal(t, int64(2), f.e.Count("token"))
	assert.Equal(t, int64(1), f.e.Count("token:failed"))

	// The fault answer itself.
	f.e.Inject(Fault{Status: http.StatusTooManyRequests, RetryAfter: 2500 * time.Millisecond})
	status, body, hdr := post(t, f.e.TokenEndpoint(tenantA), url.Values{"grant_type": {"client_credentials"}})
	assert.Equal(t, http.StatusTooManyRequests, status)
	assert.Equal(t, "3", hdr.Get("Retry-After"))
	assert.Equal(t, "temporarily_unavailable", body["error"])
}

func TestFaultResetAndDelay(t *testing.T) {
	f := newFixture(t)
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {appID}, "client_secret": {appSecret}, "scope": {vaultAud + "/.default"}}

	f.e.Inject(Fault{Reset: true})
	resp, err := HTTPClient().PostForm(f.e.TokenEndpoint(tenantA), form)
	if err == nil {
		resp.Body.Close()
	}
	require.Error(t, err)
	status, _, _ := post(t, f.e.TokenEndpoint(tenantA), form)
	assert.Equal(t, http.StatusOK, status)

	// A delay honours the client giving up.
	f.e.Inject(Fault{Delay: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.e.TokenEndpoint(tenantA), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	start := time.Now()
	resp, err = HTTPClient().Do(req)
	if err == nil {
		resp.Body.Close()
	}
	require.Error(t, err)
	assert.Less(t, time.Since(start), 5*time.Second)

	// A short delay then a normal answer; a custom Match.
	f.e.Inject(Fault{Delay: 50 * time.Millisecond, Count: 2, Match: func(r *http.Request) bool {
		return strings.Contains(r.URL.Path, "openid-configuration")
	}})
	start = time.Now()
	resp, err = HTTPClient().Get(f.e.AuthorityHost() + tenantA + "/v2.0/.well-known/openid-configuration")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
	status, _, _ = post(t, f.e.TokenEndpoint(tenantA), form)
	assert.Equal(t, http.StatusOK, status, "the token endpoint does not match the fault")
}

func TestCloseEndsDelays(t *testing.T) {
	e := NewEntra()
	e.AddTenant(tenantA)
	e.Inject(Fault{Delay: time.Hour})
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := HTTPClient().PostForm(e.TokenEndpoint(tenantA), url.Values{})
		if err == nil {
			resp.Body.Close()
		}
	}()
	require.Eventually(t, func() bool { return e.Count("token") == 1 }, 5*time.Second, 5*time.Millisecond)
	start := time.Now()
	e.Close()
	<-done
	assert.Less(t, time.Since(start), 5*time.Second)
}

func TestOnTokenHookError(t *testing.T) {
	f := newFixture(t)
	f.e.OnToken(func(tr *TokenRequest) *ErrorResponse {
		return &ErrorResponse{Error: "invalid_client", Code: 7000274, Description: "Injected certificate problem."}
	})
	_, err := getToken(t, f.secretCred(t, tenantA, appSecret, false), vaultAud+"/.default")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "AADSTS7000274: Injected certificate problem.")
	f.e.OnToken(nil)
	_, err = getToken(t, f.secretCred(t, tenantA, appSecret, false), vaultAud+"/.default")
	require.NoError(t, err)
}

func TestErrorBodyShape(t *testing.T) {
	f := newFixture(t)
	req, _ := http.NewRequest(http.MethodPost, f.e.TokenEndpoint(tenantA), strings.NewReader(url.Values{
		"grant_type": {"client_credentials"}, "client_id": {appID}, "client_secret": {"nope"}, "scope": {vaultAud + "/.default"},
	}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("client-request-id", "0f6e5d4c-3b2a-4190-8877-665544332211")
	resp, err := HTTPClient().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	status, body, hdr := decodeAnswer(t, resp)
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, "application/json; charset=utf-8", hdr.Get("Content-Type"))
	assert.Equal(t, "invalid_client", body["error"])
	assert.Equal(t, []int{7000215}, errorCodes(body))
	assert.Equal(t, "0f6e5d4c-3b2a-4190-8877-665544332211", body["correlation_id"])
	desc, _ := body["error_description"].(string)
	assert.Regexp(t, `^AADSTS7000215: Invalid client secret provided\..*\r\nTrace ID: [0-9a-f-]{36}\r\nCorrelation ID: 0f6e5d4c-3b2a-4190-8877-665544332211\r\nTimestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$`, desc)
	assert.NotEmpty(t, body["trace_id"])
	assert.NotEmpty(t, body["timestamp"])
	assert.Equal(t, f.e.AuthorityHost()+"error?code=7000215", body["error_uri"])
}

// assertion builds a client assertion signed with key.
type assertion struct {
	alg     jwt.SigningMethod
	header  map[string]any
	claims  jwt.MapClaims
	signer  crypto.Signer
	garbage string
}

func (f *fixture) assertion(mod func(a *assertion)) string {
	now := time.Now()
	sum := sha256.Sum256(f.cert.Raw)
	a := &assertion{
		alg:    jwt.SigningMethodPS256,
		header: map[string]any{"alg": "PS256", "typ": "JWT", "x5t#S256": base64.RawURLEncoding.EncodeToString(sum[:])},
		claims: jwt.MapClaims{
			"aud": f.e.TokenEndpoint(tenantA), "iss": appID, "sub": appID, "jti": newUUID(),
			"nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		},
		signer: f.key,
	}
	if mod != nil {
		mod(a)
	}
	if a.garbage != "" {
		return a.garbage
	}
	tok := jwt.NewWithClaims(a.alg, a.claims)
	tok.Header = a.header
	s, err := tok.SignedString(a.signer)
	if err != nil {
		panic(err)
	}
	return s
}

func (f *fixture) postAssertion(t *testing.T, assertion string) (int, map[string]any) {
	t.Helper()
	status, body, _ := post(t, f.e.TokenEndpoint(tenantA), url.Values{
		"grant_type": {"client_credentials"}, "client_id": {appID}, "scope": {vaultAud + "/.default"},
		"client_assertion_type": {assertionTypeJWT}, "client_assertion": {assertion},
	})
	return status, body
}

func TestClientAssertionValidation(t *testing.T) {
	f := newFixture(t)
	s1 := sha1.Sum(f.cert.Raw)
	expiredKey := testcerts.RSA(2048, 2)
	expiredCert := testcerts.Cert(expiredKey, testcerts.Options{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	f.app.AddCertificate(expiredCert)
	ec := testcerts.EC()
	ecCert := testcerts.Cert(ec, testcerts.Options{})
	f.app.AddCertificate(ecCert)

	cases := []struct {
		name   string
		mod    func(a *assertion)
		status int
		code   int
	}{
		{"PS256 x5t#S256 base64url", nil, 200, 0},
		{"RS256 x5t base64url", func(a *assertion) {
			a.alg = jwt.SigningMethodRS256
			a.header = map[string]any{"alg": "RS256", "typ": "JWT", "x5t": base64.RawURLEncoding.EncodeToString(s1[:])}
		}, 200, 0},
		{"RS256 x5t standard base64 padded", func(a *assertion) {
			a.alg = jwt.SigningMethodRS256
			a.header = map[string]any{"alg": "RS256", "x5t": base64.StdEncoding.EncodeToString(s1[:])}
		}, 200, 0},
		{"wrong audience", func(a *assertion) { a.claims["aud"] = f.e.AuthorityHost() + tenantA + "/v2.0" }, 401, 700023},
		{"iss not client id", func(a *assertion) { a.claims["iss"] = "someone" }, 401, 700021},
		{"sub not client id", func(a *assertion) { a.claims["sub"] = "someone" }, 401, 700021},
		{"expired", func(a *assertion) {
			a.claims["nbf"] = time.Now().Add(-20 * time.Minute).Unix()
			a.claims["exp"] = time.Now().Add(-10 * time.Minute).Unix()
		}, 401, 700024},
		{"not yet valid", func(a *assertion) {
			a.claims["nbf"] = time.Now().Add(20 * time.Minute).Unix()
			a.claims["exp"] = time.Now().Add(30 * time.Minute).Unix()
		}, 401, 700024},
		{"too long", func(a *assertion) { a.claims["exp"] = time.Now().Add(2 * time.Hour).Unix() }, 401, 700024},
		{"no jti", func(a *assertion) { delete(a.claims, "jti") }, 401, 50027},
		{"no exp", func(a *assertion) { delete(a.claims, "exp") }, 401, 50027},
		{"signed by another key", func(a *assertion) { a.signer = testcerts.RSA(2048, 3) }, 401, 700027},
		{"unknown thumbprint", func(a *assertion) { a.header["x5t#S256"] = base64.RawURLEncoding.EncodeToString(make([]byte, 32)) }, 401, 700027},
		{"no thumbprint", func(a *assertion) { delete(a.header, "x5t#S256") }, 401, 700027},
		{"expired certificate", func(a *assertion) {
			sum := sha256.Sum256(expiredCert.Raw)
			a.header["x5t#S256"] = base64.RawURLEncoding.EncodeToString(sum[:])
			a.signer = expiredKey
		}, 401, 700027},
		{"ES256", func(a *assertion) {
			sum := sha256.Sum256(ecCert.Raw)
			a.alg = jwt.SigningMethodES256
			a.header = map[string]any{"alg": "ES256", "x5t#S256": base64.RawURLEncoding.EncodeToString(sum[:])}
			a.signer = ec
		}, 400, 5002738},
		{"garbage", func(a *assertion) { a.garbage = "not.a.jwt" }, 401, 50027},
		{"garbage 2", func(a *assertion) { a.garbage = "eyJhbGciOiJQUzI1NiJ9.e30" }, 401, 50027},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := f.postAssertion(t, f.assertion(c.mod))
			assert.Equal(t, c.status, status, "%v", body)
			if c.code != 0 {
				assert.Equal(t, []int{c.code}, errorCodes(body), "%v", body["error_description"])
				assert.Equal(t, map[int]string{401: "invalid_client", 400: "invalid_request"}[c.status], body["error"])
			} else {
				claims, err := f.e.Verify(body["access_token"].(string))
				require.NoError(t, err)
				assert.Equal(t, "2", claims["appidacr"])
			}
		})
	}
}

func TestTokenRequestErrors(t *testing.T) {
	f := newFixture(t)
	base := url.Values{"grant_type": {"client_credentials"}, "client_id": {appID}, "client_secret": {appSecret}, "scope": {vaultAud + "/.default"}}
	with := func(k, v string) url.Values {
		out := cloneValues(base)
		if v == "" {
			out.Del(k)
		} else {
			out.Set(k, v)
		}
		return out
	}
	cases := []struct {
		name   string
		form   url.Values
		status int
		err    string
		code   int
	}{
		{"no grant_type", with("grant_type", ""), 400, "invalid_request", 900144},
		{"bad grant_type", with("grant_type", "password"), 400, "unsupported_grant_type", 70003},
		{"no client_id", with("client_id", ""), 400, "invalid_request", 900144},
		{"no scope", with("scope", ""), 400, "invalid_request", 900144},
		{"two resources", with("scope", vaultAud+"/.default https://storage.azure.com/.default"), 400, "invalid_scope", 1002012},
		{"openid ignored", with("scope", "openid profile offline_access "+vaultAud+"/.default"), 200, "", 0},
		{"no client auth", with("client_secret", ""), 401, "invalid_client", 7000218},
		{"unknown app", with("client_id", "00000000-0000-0000-0000-000000000000"), 400, "unauthorized_client", 700016},
		{"bad assertion type", func() url.Values {
			v := with("client_secret", "")
			v.Set("client_assertion", f.assertion(nil))
			v.Set("client_assertion_type", "urn:nope")
			return v
		}(), 400, "invalid_request", 900144},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body, _ := post(t, f.e.TokenEndpoint(tenantA), c.form)
			assert.Equal(t, c.status, status, "%v", body)
			if c.code != 0 {
				assert.Equal(t, c.err, body["error"])
				assert.Equal(t, []int{c.code}, errorCodes(body))
			}
		})
	}

	// GET on the token endpoint.
	resp, err := HTTPClient().Get(f.e.TokenEndpoint(tenantA))
	require.NoError(t, err)
	status, body, _ := decodeAnswer(t, resp)
	resp.Body.Close()
	assert.Equal(t, 400, status)
	assert.Equal(t, []int{900561}, errorCodes(body))
}

func TestDiscoveryEndpoints(t *testing.T) {
	f := newFixture(t)
	get := func(p string) (int, map[string]any) {
		resp, err := HTTPClient().Get(f.e.AuthorityHost() + p)
		require.NoError(t, err)
		defer resp.Body.Close()
		status, body, _ := decodeAnswer(t, resp)
		return status, body
	}
	status, body := get(tenantA + "/v2.0/.well-known/openid-configuration")
	require.Equal(t, 200, status)
	assert.Equal(t, f.e.TokenEndpoint(tenantA), body["token_endpoint"])
	assert.Equal(t, f.e.AuthorityHost()+tenantA+"/oauth2/v2.0/authorize", body["authorization_endpoint"])
	assert.Equal(t, f.e.AuthorityHost()+tenantA+"/v2.0", body["issuer"])
	assert.Equal(t, f.e.AuthorityHost()+tenantA+"/discovery/v2.0/keys", body["jwks_uri"])

	status, body = get(tenantA + "/discovery/v2.0/keys")
	require.Equal(t, 200, status)
	keys := body["keys"].([]any)
	require.Len(t, keys, 1)
	k := keys[0].(map[string]any)
	assert.Equal(t, "RSA", k["kty"])
	assert.Equal(t, f.e.kid, k["kid"])
	der, err := base64.StdEncoding.DecodeString(k["x5c"].([]any)[0].(string))
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	assert.True(t, c.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(&f.e.signKey.PublicKey))

	status, body = get("common/discovery/instance?api-version=1.1&authorization_endpoint=" + url.QueryEscape(f.e.AuthorityHost()+tenantA+"/oauth2/v2.0/authorize"))
	require.Equal(t, 200, status)
	assert.Equal(t, f.e.AuthorityHost()+tenantA+"/v2.0/.well-known/openid-configuration", body["tenant_discovery_endpoint"])
	md := body["metadata"].([]any)[0].(map[string]any)
	assert.Equal(t, strings.TrimSuffix(strings.TrimPrefix(f.e.AuthorityHost(), "https://"), "/"), md["preferred_network"])

	status, body = get("common/discovery/instance?authorization_endpoint=" + url.QueryEscape("https://elsewhere.example/x/oauth2/v2.0/authorize"))
	assert.Equal(t, 400, status)
	assert.Equal(t, "invalid_instance", body["error"])

	for _, p := range []string{"nope/v2.0/.well-known/openid-configuration", "nope/discovery/v2.0/keys", "nope/discovery/instance"} {
		status, body = get(p)
		assert.Equal(t, 400, status, p)
		assert.Equal(t, []int{90002}, errorCodes(body), p)
	}
	for _, p := range []string{"", "x", tenantA, tenantA + "/oauth2/token", tenantA + "/v2.0/.well-known/nothing"} {
		status, _ = get(p)
		assert.Equal(t, 404, status, p)
	}
	assert.Equal(t, int64(2), f.e.Count("openid_configuration"))
	assert.Equal(t, int64(3), f.e.Count("instance_discovery"))
	f.e.ResetCounts()
	assert.Equal(t, int64(0), f.e.Count("instance_discovery"))
}

func TestVerify(t *testing.T) {
	f := newFixture(t)
	other := NewEntra()
	defer other.Close()
	tok := f.e.UserToken(tenantA, "user-1", apiAppID, UserTokenOptions{})
	_, err := f.e.Verify(tok)
	require.NoError(t, err)
	_, err = other.Verify(tok)
	require.Error(t, err, "another emulator's token")
	_, err = f.e.Verify(f.e.UserToken(tenantA, "user-1", apiAppID, UserTokenOptions{Expired: true}))
	require.ErrorIs(t, err, jwt.ErrTokenExpired)
	_, err = f.e.Verify("garbage")
	require.Error(t, err)
	// alg none and HS256 are refused.
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	_, err = f.e.Verify(none)
	require.Error(t, err)
}

// TestConcurrentTokens checks the emulator under concurrent use (run with -race).
func TestConcurrentTokens(t *testing.T) {
	f := newFixture(t)
	cred := f.secretCred(t, tenantA, appSecret, false)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			form := url.Values{"grant_type": {"client_credentials"}, "client_id": {appID}, "client_secret": {appSecret}, "scope": {vaultAud + "/.default"}}
			resp, err := HTTPClient().PostForm(f.e.TokenEndpoint(tenantA), form)
			if assert.NoError(t, err) {
				resp.Body.Close()
				assert.Equal(t, 200, resp.StatusCode)
			}
			_, err = cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultAud + "/.default"}})
			assert.NoError(t, err)
			f.e.Count("token")
		}()
	}
	wg.Wait()
}
