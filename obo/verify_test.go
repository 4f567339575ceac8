package obo_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testcerts"
	"github.com/azcredkit/azcredkit/obo"
)

// Tests of issue 13: every user token is verified (RS256 with a key of its tenant's jwks_uri,
// issuer, tenant, audience, exp/nbf) before it is exchanged, cached or believed, over HTTPS to
// the Entra emulator, through App.Credential, App.CredentialFromRequest and App.Middleware.

// jwtParts decodes a compact JWS's header and claims (not verifying anything).
func jwtParts(t testing.TB, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, dst))
	}
	return header, claims
}

func b64JSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(b)
}

// forge builds a compact JWS of header and claims whose signature sign makes of the signing input.
func forge(t testing.TB, header, claims map[string]any, sign func(input string) []byte) string {
	t.Helper()
	input := b64JSON(t, header) + "." + b64JSON(t, claims)
	return input + "." + base64.RawURLEncoding.EncodeToString(sign(input))
}

func rs256(t testing.TB, key *rsa.PrivateKey) func(string) []byte {
	return func(input string) []byte {
		sum := sha256.Sum256([]byte(input))
		sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
		require.NoError(t, err)
		return sig
	}
}

// freshKey is an RSA key the emulator has never seen (a test fixture key could be one of its).
var freshKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// verifyEnv is an env with an App that logs, and the means to check that a refused token left
// nothing behind.
type verifyEnv struct {
	*env
	a    *obo.App
	logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newVerifyEnv(t *testing.T, edit func(*obo.AppOptions)) *verifyEnv {
	t.Helper()
	e := newEnv(t)
	logs := &syncBuffer{}
	o := e.options()
	o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	if edit != nil {
		edit(o)
	}
	return &verifyEnv{env: e, a: e.app(t, o), logs: logs}
}

// requireRefused checks that tok is refused everywhere: Credential, CredentialFromRequest with
// the token as Bearer and in the Easy Auth header, and Middleware (401 error="invalid_token",
// handler not run, the log saying why and never the token); that nothing was cached and nothing
// was sent to Entra's token endpoint.
func (v *verifyEnv) requireRefused(t *testing.T, tok string, want error, msg string) {
	t.Helper()
	cached, tokens := v.a.CachedUsers(), v.entra.Count("token")
	c, err := v.a.Credential(tok)
	require.Nil(t, c)
	require.ErrorIs(t, err, want)
	require.ErrorContains(t, err, msg)
	require.NotContains(t, err.Error(), tok)
	if parts := strings.Split(tok, "."); len(parts) == 3 && len(parts[2]) > 16 {
		require.NotContains(t, err.Error(), parts[2], "the signature is not in the error")
	}

	for _, r := range []*http.Request{bearerRequest(tok), easyAuthTokenOnly(tok)} {
		c, err := v.a.CredentialFromRequest(r)
		require.Nil(t, c)
		require.ErrorIs(t, err, want)

		before := len(v.logs.String())
		w := httptest.NewRecorder()
		v.a.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
			t.Error("the handler ran for a refused token")
		})).ServeHTTP(w, r)
		require.Equal(t, http.StatusUnauthorized, w.Code)
		_, params := challenge(w.Header().Get("WWW-Authenticate"))
		require.Equal(t, "invalid_token", params["error"])
		require.NotEmpty(t, params["error_description"])
		require.NotContains(t, w.Body.String()+w.Header().Get("WWW-Authenticate"), tok)
		logged := strings.ReplaceAll(v.logs.String()[before:], `\"`, `"`) // slog's text quoting
		require.Contains(t, logged, msg, "the log says why")
		require.NotContains(t, logged, tok)
	}
	require.Equal(t, cached, v.a.CachedUsers(), "a refused token takes no room in the cache")
	require.Equal(t, tokens, v.entra.Count("token"), "a refused token costs no token request")
}

func bearerRequest(tok string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/files", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

// easyAuthTokenOnly is a request with the token in X-MS-TOKEN-AAD-ACCESS-TOKEN and no principal
// headers.
func easyAuthTokenOnly(tok string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/files", nil)
	r.Header.Set(obo.HeaderAccessToken, tok)
	return r
}

// TestVerifiedTokenAccepted: an emulator-signed token is accepted from the Easy Auth header and as
// Bearer; the first request of each token costs one verification and the tenant's keys are
// fetched once.
func TestVerifiedTokenAccepted(t *testing.T) {
	v := newVerifyEnv(t, nil)
	oid := v.user(7001)
	tok := v.userToken(oid, emulator.UserTokenOptions{})
	c, err := v.a.CredentialFromRequest(easyAuthRequest(tok, oid))
	require.NoError(t, err)
	require.Equal(t, oid, c.UserObjectID())
	require.NotNil(t, c.Principal())
	_, err = c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{storage}})
	require.NoError(t, err)

	oid2 := v.user(7002)
	c, err = v.a.CredentialFromRequest(bearerRequest(v.userToken(oid2, emulator.UserTokenOptions{})))
	require.NoError(t, err)
	require.Equal(t, oid2, c.UserObjectID())
	require.Equal(t, "user7002@contoso.example", c.UserName())
	require.Nil(t, c.Principal())

	// App ID URI audience, v1 token (its issuer is read from the tenant's v1 configuration).
	discoveries := v.entra.Count("openid_configuration") // the App's v2 one, and the one GetToken's MSAL read
	for _, o := range []emulator.UserTokenOptions{{AppIDURI: true}, {V1: true}} {
		_, err = v.a.Credential(v.userToken(v.user(7003), o))
		require.NoError(t, err, "%+v", o)
	}
	require.Equal(t, int64(1), v.entra.Count("keys"), "the keys are fetched once")
	require.Equal(t, discoveries+1, v.entra.Count("openid_configuration"), "the v1 configuration, once (for the v1 token)")
	_, err = v.a.Credential(v.userToken(v.user(7004), emulator.UserTokenOptions{V1: true}))
	require.NoError(t, err)
	require.Equal(t, discoveries+1, v.entra.Count("openid_configuration"))
	require.Equal(t, 5, v.a.CachedUsers())
}

// TestForgedAndInvalidTokensRefused: every kind of token that must not pass, each refused
// everywhere with ErrInvalidUserToken (or ErrUserTokenExpired) and a reason.
func TestForgedAndInvalidTokensRefused(t *testing.T) {
	v := newVerifyEnv(t, nil)
	const otherTenant = "cccccccc-0000-4000-8000-00000000000c"
	v.entra.AddTenant(otherTenant)
	oid := v.user(7100)
	good := v.userToken(oid, emulator.UserTokenOptions{})
	header, claims := jwtParts(t, good)
	kid := header["kid"].(string)
	// Warm the key cache with a good token (every case below has the keys to compare with).
	_, err := v.a.Credential(good)
	require.NoError(t, err)

	with := func(edit func(h, c map[string]any)) (map[string]any, map[string]any) {
		h, c := map[string]any{}, map[string]any{}
		for k, x := range header {
			h[k] = x
		}
		for k, x := range claims {
			c[k] = x
		}
		c["oid"] = "00000000-0000-4000-8000-00000000ad01" // another user, so that no cache entry helps
		c["upn"], c["preferred_username"] = "admin@contoso.example", "admin@contoso.example"
		edit(h, c)
		return h, c
	}
	signed := func(edit func(c map[string]any)) string {
		_, c := with(func(_, c map[string]any) { edit(c) })
		return v.entra.SignClaims(c)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&freshKey().PublicKey)
	require.NoError(t, err)
	emulatorPub := publishedKeyPEM(t, v.env, kid)
	fetched := v.entra.Count("keys") // the App's first fetch, and this test's own
	now := time.Now()

	// One character of the signature replaced by another base64url character (an XOR could make
	// '-' or '_' into a character that is not base64url, which is a malformed token instead).
	badSig := []byte(good)
	if badSig[len(badSig)-10] == 'A' {
		badSig[len(badSig)-10] = 'B'
	} else {
		badSig[len(badSig)-10] = 'A'
	}

	for _, tc := range []struct {
		name string
		tok  string
		want error
		msg  string
	}{
		{"bad signature", string(badSig), obo.ErrInvalidUserToken, "signature does not verify"},
		{"foreign key under a published kid", forge(t, header, claimsOf(with(func(_, _ map[string]any) {})), rs256(t, freshKey())), obo.ErrInvalidUserToken, "signature does not verify"},
		{"alg none", forge(t, headerOf(with(func(h, _ map[string]any) { h["alg"] = "none" })), claimsOf(with(func(_, _ map[string]any) {})), func(string) []byte { return nil }), obo.ErrInvalidUserToken, `alg) is "none"`},
		{"HS256 keyed with the published public key (PEM)", forge(t, headerOf(with(func(h, _ map[string]any) { h["alg"] = "HS256" })), claimsOf(with(func(_, _ map[string]any) {})), hs256(emulatorPub)), obo.ErrInvalidUserToken, `alg) is "HS256"`},
		{"HS256 keyed with a public key (DER)", forge(t, headerOf(with(func(h, _ map[string]any) { h["alg"] = "HS256" })), claimsOf(with(func(_, _ map[string]any) {})), hs256(pubDER)), obo.ErrInvalidUserToken, "only RS256"},
		{"PS256", forge(t, headerOf(with(func(h, _ map[string]any) { h["alg"] = "PS256" })), claimsOf(with(func(_, _ map[string]any) {})), rs256(t, freshKey())), obo.ErrInvalidUserToken, "only RS256"},
		{"no kid", forge(t, headerOf(with(func(h, _ map[string]any) { delete(h, "kid") })), claimsOf(with(func(_, _ map[string]any) {})), rs256(t, freshKey())), obo.ErrInvalidUserToken, "no signing key (kid)"},
		{"unknown kid", forge(t, headerOf(with(func(h, _ map[string]any) { h["kid"] = "not-a-published-kid" })), claimsOf(with(func(_, _ map[string]any) {})), rs256(t, freshKey())), obo.ErrInvalidUserToken, "not one of tenant"},
		{"wrong audience", signed(func(c map[string]any) { c["aud"] = otherApp }), obo.ErrInvalidUserToken, "audience"},
		{"wrong issuer", signed(func(c map[string]any) { c["iss"] = "https://login.evil.example/" + tenant + "/v2.0" }), obo.ErrInvalidUserToken, "issuer"},
		{"another tenant's issuer", signed(func(c map[string]any) { c["iss"] = v.entra.AuthorityHost() + otherTenant + "/v2.0" }), obo.ErrInvalidUserToken, "issuer"},
		{"v1-shaped issuer of another host", signed(func(c map[string]any) { c["iss"] = "https://sts.evil.example/" + tenant + "/" }), obo.ErrInvalidUserToken, "issuer"},
		{"no issuer", signed(func(c map[string]any) { delete(c, "iss") }), obo.ErrInvalidUserToken, "issuer"},
		{"tenant not allowed", v.entra.UserToken(otherTenant, oid, apiID, emulator.UserTokenOptions{}), obo.ErrInvalidUserToken, "is not the app's tenant"},
		{"tid not a GUID", signed(func(c map[string]any) { c["tid"] = "contoso.example" }), obo.ErrInvalidUserToken, "not a tenant ID"},
		{"no tid", signed(func(c map[string]any) { delete(c, "tid") }), obo.ErrInvalidUserToken, "not a tenant ID"},
		{"expired beyond the skew", v.userToken(oid, emulator.UserTokenOptions{Expired: true}), obo.ErrUserTokenExpired, "sign in again"},
		{"expired 6 minutes ago", signed(func(c map[string]any) { c["exp"] = now.Add(-6 * time.Minute).Unix() }), obo.ErrUserTokenExpired, "sign in again"},
		{"no exp", signed(func(c map[string]any) { delete(c, "exp") }), obo.ErrInvalidUserToken, "no exp"},
		{"nbf in the future", signed(func(c map[string]any) { c["nbf"] = now.Add(10 * time.Minute).Unix() }), obo.ErrInvalidUserToken, "not valid before"},
		{"iat in the future", signed(func(c map[string]any) { c["iat"] = now.Add(10 * time.Minute).Unix() }), obo.ErrInvalidUserToken, "issued in the future"},
		{"exp a string", signed(func(c map[string]any) { c["exp"] = fmt.Sprint(now.Add(time.Hour).Unix()) }), obo.ErrInvalidUserToken, "claims are not"},
		{"unsigned token of the issue's reproduction", forge(t, map[string]any{"typ": "JWT", "alg": "none"}, claimsOf(with(func(_, _ map[string]any) {})), func(string) []byte { return nil }), obo.ErrInvalidUserToken, "only RS256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v.requireRefused(t, tc.tok, tc.want, tc.msg)
			if tc.want == obo.ErrInvalidUserToken {
				require.NotErrorIs(t, func() error { _, err := v.a.Credential(tc.tok); return err }(), obo.ErrUserTokenExpired)
			}
		})
	}
	require.Equal(t, fetched+1, v.entra.Count("keys"), "one refetch, for the unknown kid")
	require.Zero(t, v.entra.Count("token"))

	// Within the clock skew: accepted.
	for _, edit := range []func(map[string]any){
		func(c map[string]any) { c["exp"] = now.Add(-2 * time.Minute).Unix() },
		func(c map[string]any) { c["nbf"] = now.Add(2 * time.Minute).Unix() },
	} {
		_, err := v.a.Credential(signed(edit))
		require.NoError(t, err)
	}
}

func headerOf(h, _ map[string]any) map[string]any { return h }
func claimsOf(_, c map[string]any) map[string]any { return c }

func hs256(key []byte) func(string) []byte {
	return func(input string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(input))
		return m.Sum(nil)
	}
}

// publishedKeyPEM fetches the tenant's key kid from the emulator's jwks_uri (as an attacker
// would) and returns it as a PEM public key: the classic HMAC confusion keys with these bytes.
func publishedKeyPEM(t *testing.T, e *env, kid string) []byte {
	t.Helper()
	pub := publishedKeys(t, e.entra, tenant)[kid]
	require.NotNil(t, pub, "kid %s not published", kid)
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// TestIssue13Reproduction: the unsigned token of the issue (any upn, any oid) no longer runs the
// handler, and 300 of them neither evict real users nor reach Entra.
func TestIssue13Reproduction(t *testing.T) {
	v := newVerifyEnv(t, func(o *obo.AppOptions) { o.MaxCachedUsers = 10 })
	forged := func(i int) string {
		return forge(t, map[string]any{"typ": "JWT", "alg": "none"}, map[string]any{
			"aud": apiID, "iss": v.entra.AuthorityHost() + tenant + "/v2.0", "tid": tenant, "scp": "user_impersonation",
			"oid": fmt.Sprintf("00000000-0000-4000-8000-%012d", 900000+i), "upn": "admin@contoso.example", "preferred_username": "admin@contoso.example",
			"exp": time.Now().Add(time.Hour).Unix(), "nbf": time.Now().Unix(),
		}, func(string) []byte { return nil })
	}
	srv := httptest.NewServer(v.a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := obo.CredentialFromContext(r.Context())
		if _, err := c.GetToken(r.Context(), policy.TokenRequestOptions{Scopes: []string{storage}}); err != nil {
			http.Error(w, "token failed", http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, "hello %s", c.UserName())
	})))
	defer srv.Close()
	get := func(tok string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var real []string
	for i := range 10 {
		tok := v.userToken(v.user(7200+i), emulator.UserTokenOptions{})
		code, body := get(tok)
		require.Equal(t, http.StatusOK, code, body)
		real = append(real, tok)
	}
	require.Equal(t, int64(10), v.entra.Count("token:obo"))

	code, body := get(forged(0))
	require.Equal(t, http.StatusUnauthorized, code)
	require.NotContains(t, body, "admin@contoso.example")
	for i := 1; i < 300; i++ {
		code, _ := get(forged(i))
		require.Equal(t, http.StatusUnauthorized, code)
	}
	require.Equal(t, 10, v.a.CachedUsers())
	require.Equal(t, int64(10), v.entra.Count("token:obo"), "no forged token reached Entra")
	for _, tok := range real {
		code, _ := get(tok)
		require.Equal(t, http.StatusOK, code)
	}
	require.Equal(t, int64(10), v.entra.Count("token:obo"), "the real users are still cached")
}

// TestKeyRolloverOneRefetch: after Entra rolls its signing key over, the first token signed with
// the new key makes the App fetch the keys again, once; tokens of the old key still verify.
func TestKeyRolloverOneRefetch(t *testing.T) {
	v := newVerifyEnv(t, nil)
	_, err := v.a.Credential(v.userToken(v.user(7300), emulator.UserTokenOptions{}))
	require.NoError(t, err)
	oldKeyToken := v.userToken(v.user(7301), emulator.UserTokenOptions{})
	require.Equal(t, int64(1), v.entra.Count("keys"))

	newKid := v.entra.RolloverSigningKey()
	for i := range 5 {
		tok := v.userToken(v.user(7310+i), emulator.UserTokenOptions{})
		h, _ := jwtParts(t, tok)
		require.Equal(t, newKid, h["kid"], "signed with the new key")
		_, err := v.a.Credential(tok)
		require.NoError(t, err)
	}
	_, err = v.a.Credential(oldKeyToken)
	require.NoError(t, err, "the old key is still published and cached")
	require.Equal(t, int64(2), v.entra.Count("keys"), "one refetch for the new kid")
	require.Equal(t, int64(1), v.entra.Count("openid_configuration"))
	require.Contains(t, v.logs.String(), "signing keys fetched")
}

// TestRandomKidsBounded: 200 tokens with random kids, sent concurrently, cost at most one
// refetch of the keys; valid tokens keep working.
func TestRandomKidsBounded(t *testing.T) {
	v := newVerifyEnv(t, nil)
	_, err := v.a.Credential(v.userToken(v.user(7400), emulator.UserTokenOptions{}))
	require.NoError(t, err)
	_, claims := jwtParts(t, v.userToken(v.user(7401), emulator.UserTokenOptions{}))
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			tok := forge(t, map[string]any{"alg": "RS256", "typ": "JWT", "kid": fmt.Sprintf("random-kid-%d", i)}, claims, rs256(t, testcerts.RSA(2048, i%testcerts.Keys2048)))
			c, err := v.a.CredentialFromRequest(bearerRequest(tok))
			if c != nil || err == nil || !strings.Contains(err.Error(), "is not one of tenant") {
				t.Errorf("token %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	require.LessOrEqual(t, v.entra.Count("keys"), int64(2), "random kids: one refetch at most (once per 5 minutes)")
	require.Equal(t, int64(1), v.entra.Count("openid_configuration"))
	require.Equal(t, 1, v.a.CachedUsers())
	require.Zero(t, v.entra.Count("token"))
	_, err = v.a.Credential(v.userToken(v.user(7402), emulator.UserTokenOptions{}))
	require.NoError(t, err)
}

// TestKeyEndpointDownAfterFirstFetch: once the keys were fetched, an outage of the key endpoint
// stops no valid token, even when an unknown kid makes the App try to fetch them again.
func TestKeyEndpointDownAfterFirstFetch(t *testing.T) {
	v := newVerifyEnv(t, nil)
	_, err := v.a.Credential(v.userToken(v.user(7500), emulator.UserTokenOptions{}))
	require.NoError(t, err)
	v.entra.SetKeyEndpointOutage(true)
	_, claims := jwtParts(t, v.userToken(v.user(7501), emulator.UserTokenOptions{}))
	_, err = v.a.Credential(forge(t, map[string]any{"alg": "RS256", "kid": "unknown"}, claims, rs256(t, freshKey())))
	require.ErrorIs(t, err, obo.ErrInvalidUserToken)
	require.Greater(t, v.entra.Count("keys"), int64(1), "the unknown kid made the App try to fetch the keys again")
	fetches := v.entra.Count("keys")
	for i := range 20 {
		oid := v.user(7510 + i)
		c, err := v.a.CredentialFromRequest(easyAuthRequest(v.userToken(oid, emulator.UserTokenOptions{}), oid))
		require.NoError(t, err)
		require.Equal(t, oid, c.UserObjectID())
	}
	require.Equal(t, fetches, v.entra.Count("keys"))
	require.Contains(t, v.logs.String(), "keys fetched before are kept")
}

// TestKeyEndpointDownColdProcess: with no keys ever fetched, tokens are refused (fail closed)
// with an error that says so, Middleware answers 401, and the App recovers once the endpoint is
// back (after a short backoff).
func TestKeyEndpointDownColdProcess(t *testing.T) {
	v := newVerifyEnv(t, nil)
	v.entra.SetKeyEndpointOutage(true)
	tok := v.userToken(v.user(7600), emulator.UserTokenOptions{})
	v.requireRefused(t, tok, obo.ErrInvalidUserToken, "could not be fetched, and none were fetched before")
	_, err := v.a.Credential(tok)
	require.ErrorContains(t, err, "fail closed")
	require.ErrorContains(t, err, "HTTP 503")
	w := httptest.NewRecorder()
	v.a.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("handler ran") })).ServeHTTP(w, bearerRequest(tok))
	_, params := challenge(w.Header().Get("WWW-Authenticate"))
	require.Equal(t, "the access token cannot be verified at the moment; try again later", params["error_description"])
	fetches := v.entra.Count("keys")
	require.LessOrEqual(t, fetches, int64(3), "failed fetches back off: the refusals above did not each fetch")

	v.entra.SetKeyEndpointOutage(false)
	require.Eventually(t, func() bool {
		_, err := v.a.Credential(tok)
		return err == nil
	}, 10*time.Second, 50*time.Millisecond, "accepted once the key endpoint is back")
	require.Equal(t, 1, v.a.CachedUsers())
}

// TestColdConcurrentRequestsFetchOnce: 100 concurrent first requests of a cold App cost one
// OpenID configuration and one key fetch.
func TestColdConcurrentRequestsFetchOnce(t *testing.T) {
	v := newVerifyEnv(t, nil)
	toks := make([]string, 100)
	oids := make([]string, 100)
	for i := range toks {
		oids[i] = v.user(7700 + i)
		toks[i] = v.userToken(oids[i], emulator.UserTokenOptions{})
	}
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range toks {
		wg.Go(func() {
			start.Wait()
			c, err := v.a.CredentialFromRequest(bearerRequest(toks[i]))
			if err != nil || c.UserObjectID() != oids[i] {
				t.Errorf("user %d: %v", i, err)
			}
		})
	}
	start.Done()
	wg.Wait()
	require.Equal(t, int64(1), v.entra.Count("openid_configuration"))
	require.Equal(t, int64(1), v.entra.Count("keys"))
	require.Equal(t, 100, v.a.CachedUsers())
}

// TestEasyAuthPrincipalMustMatchToken: behind Easy Auth, principal headers that describe
// another user than the token are refused.
func TestEasyAuthPrincipalMustMatchToken(t *testing.T) {
	v := newVerifyEnv(t, nil)
	alice, bob := v.user(7801), v.user(7802)
	aliceTok := v.userToken(alice, emulator.UserTokenOptions{})

	mixed := easyAuthRequest(aliceTok, bob)
	_, err := v.a.CredentialFromRequest(mixed)
	require.ErrorIs(t, err, obo.ErrInvalidUserToken)
	require.ErrorContains(t, err, "same user")
	require.Zero(t, v.a.CachedUsers(), "the token is verified, but not admitted for a mismatched principal")

	idOnly := easyAuthRequest(aliceTok, alice)
	idOnly.Header.Set(obo.HeaderClientPrincipal, principalHeader(bob, "Bob")) // its oid claim is bob's
	_, err = v.a.CredentialFromRequest(idOnly)
	require.ErrorIs(t, err, obo.ErrInvalidUserToken)

	w := httptest.NewRecorder()
	v.a.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("handler ran") })).ServeHTTP(w, mixed)
	require.Equal(t, http.StatusUnauthorized, w.Code)

	c, err := v.a.CredentialFromRequest(easyAuthRequest(aliceTok, alice))
	require.NoError(t, err)
	require.Equal(t, alice, c.Principal().ID)
	// Cached now; a mismatched principal is still refused.
	_, err = v.a.CredentialFromRequest(mixed)
	require.ErrorIs(t, err, obo.ErrInvalidUserToken)
}

// TestAnyTenantBounded: with AdditionallyAllowedTenants "*", tokens of other tenants are
// verified against their own keys; random tenants cost a bounded number of fetches and are then
// refused without one.
func TestAnyTenantBounded(t *testing.T) {
	v := newVerifyEnv(t, func(o *obo.AppOptions) { o.AdditionallyAllowedTenants = []string{"*"} })
	const guest = "dddddddd-0000-4000-8000-00000000000d"
	v.entra.AddTenant(guest)
	v.entra.AddUser(guest, emulator.User{OID: "00000000-0000-4000-8000-0000000d0001", UPN: "guest@fabrikam.example"})
	c, err := v.a.Credential(v.entra.UserToken(guest, "00000000-0000-4000-8000-0000000d0001", apiID, emulator.UserTokenOptions{}))
	require.NoError(t, err)
	require.Equal(t, "guest@fabrikam.example", c.UserName())

	_, claims := jwtParts(t, v.userToken(v.user(7900), emulator.UserTokenOptions{}))
	var tooMany int
	for i := range 100 {
		tid := fmt.Sprintf("eeeeeeee-0000-4000-8000-%012d", i)
		claims["tid"], claims["iss"] = tid, v.entra.AuthorityHost()+tid+"/v2.0"
		_, err := v.a.Credential(v.entra.SignClaims(claims))
		require.ErrorIs(t, err, obo.ErrInvalidUserToken)
		if strings.Contains(err.Error(), "new tenants came in a short time") {
			tooMany++
		}
	}
	require.Greater(t, tooMany, 50, "random tenants are refused without a fetch beyond the burst")
	require.Less(t, v.entra.Count("openid_configuration"), int64(40), "bounded discoveries")
	// The home tenant's keys (a new tenant's token is first checked with them) and the guest's;
	// unknown tenants have no keys to fetch.
	require.Equal(t, int64(2), v.entra.Count("keys"))
}

// TestHomeTenantByDomain: an App configured with its tenant's domain name accepts the tenant's
// tokens (whose tid is the tenant ID).
func TestHomeTenantByDomain(t *testing.T) {
	e := newEnv(t)
	e.entra.AddTenantDomain(tenant, "contoso.example")
	a, err := obo.NewAppWithSecret("contoso.example", apiID, apiSecret, e.options())
	require.NoError(t, err)
	c, err := a.Credential(e.userToken(e.user(7950), emulator.UserTokenOptions{}))
	require.NoError(t, err)
	_, err = c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{storage}})
	require.NoError(t, err)
	const other = "cccccccc-0000-4000-8000-00000000000c"
	e.entra.AddTenant(other)
	_, err = a.Credential(e.entra.UserToken(other, "00000000-0000-4000-8000-000000000001", apiID, emulator.UserTokenOptions{}))
	require.ErrorIs(t, err, obo.ErrInvalidUserToken)
}
