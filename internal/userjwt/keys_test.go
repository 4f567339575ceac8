package userjwt

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testcerts"
	"github.com/azcredkit/azcredkit/internal/testguard"
)

func TestMain(m *testing.M) { testguard.VerifyTestMain(m) }

const (
	home   = "aaaaaaaa-0000-4000-8000-00000000000a"
	apiID  = "a1a1a1a1-0000-4000-8000-0000000000a1"
	userID = "00000000-0000-4000-8000-000000000001"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	e    *emulator.Entra
	clk  *clock
	logs *bytes.Buffer
	mu   sync.Mutex
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	e := emulator.NewEntra()
	t.Cleanup(e.Close)
	e.AddTenant(home)
	return &fixture{e: e, clk: &clock{t: time.Now()}, logs: &bytes.Buffer{}}
}

func (f *fixture) verifier(t *testing.T, edit func(*Config)) *Verifier {
	t.Helper()
	co := f.e.ClientOptions()
	co.Retry = policy.RetryOptions{MaxRetries: -1}
	cfg := Config{
		AuthorityHost: f.e.AuthorityHost(), ClientOptions: co, HomeTenant: home,
		Audiences: []string{apiID, "api://" + apiID}, Now: f.clk.now,
		Logger: slog.New(slog.NewTextHandler(lockedWriter{f}, nil)), Credential: "test",
	}
	if edit != nil {
		edit(&cfg)
	}
	v, err := New(cfg)
	require.NoError(t, err)
	return v
}

type lockedWriter struct{ f *fixture }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	return w.f.logs.Write(p)
}

// token is a user token of tenant tid living 3 days (the tests move the clock by a day).
func (f *fixture) token(tid string) string {
	return f.e.UserToken(tid, userID, apiID, emulator.UserTokenOptions{Lifetime: 72 * time.Hour})
}

// withKid re-signs tok's claims with another key under kid.
func withKid(t *testing.T, tok, kid string) string {
	t.Helper()
	claims := jwt.MapClaims{}
	_, _, err := jwt.NewParser().ParseUnverified(tok, claims)
	require.NoError(t, err)
	j := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	j.Header["kid"] = kid
	s, err := j.SignedString(testcerts.RSA(2048, 5))
	require.NoError(t, err)
	return s
}

func reason(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return 0
}

// TestRefetchRateLimit: an unknown kid fetches the keys again at once the first time, then at
// most once per RefetchInterval.
func TestRefetchRateLimit(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t, nil)
	ctx := context.Background()
	_, err := v.Verify(ctx, f.token(home), nil)
	require.NoError(t, err)
	require.Equal(t, int64(1), f.e.Count("keys"))
	for i := range 10 {
		_, err := v.Verify(ctx, withKid(t, f.token(home), fmt.Sprint("kid-", i)), nil)
		require.Equal(t, UnknownKey, reason(err), "%v", err)
	}
	require.Equal(t, int64(2), f.e.Count("keys"), "one refetch")
	f.clk.add(RefetchInterval - time.Second)
	_, err = v.Verify(ctx, withKid(t, f.token(home), "kid-x"), nil)
	require.Equal(t, UnknownKey, reason(err))
	require.Equal(t, int64(2), f.e.Count("keys"))
	f.clk.add(time.Second)
	f.e.RolloverSigningKey()
	_, err = v.Verify(ctx, f.token(home), nil)
	require.NoError(t, err, "the new key is fetched once the interval has passed")
	require.Equal(t, int64(3), f.e.Count("keys"))
	require.Equal(t, int64(1), f.e.Count("openid_configuration"))
}

// TestKeysMaxAge: keys are fetched again (with the configuration) after KeysMaxAge; when that
// fails, the keys already fetched go on verifying tokens, and the next attempt backs off.
func TestKeysMaxAge(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t, nil)
	ctx := context.Background()
	tok := f.token(home)
	_, err := v.Verify(ctx, tok, nil)
	require.NoError(t, err)
	f.clk.add(KeysMaxAge)
	_, err = v.Verify(ctx, tok, nil)
	require.NoError(t, err)
	require.Equal(t, int64(2), f.e.Count("keys"))
	require.Equal(t, int64(2), f.e.Count("openid_configuration"))

	f.clk.add(KeysMaxAge)
	f.e.SetKeyEndpointOutage(true)
	for range 5 {
		_, err = v.Verify(ctx, tok, nil)
		require.NoError(t, err, "the keys already fetched are kept")
	}
	require.Equal(t, int64(3), f.e.Count("keys"), "a failed refresh backs off")
	f.clk.add(time.Second)
	_, err = v.Verify(ctx, tok, nil)
	require.NoError(t, err)
	require.Equal(t, int64(4), f.e.Count("keys"))
	f.mu.Lock()
	require.Contains(t, f.logs.String(), "keys fetched before are kept")
	f.mu.Unlock()
}

// TestColdFailureBackoff: with no keys, tokens are refused (fail closed); attempts back off 1 s,
// 2 s, 4 s...; the first success ends it.
func TestColdFailureBackoff(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t, nil)
	ctx := context.Background()
	tok := f.token(home)
	f.e.SetKeyEndpointOutage(true)
	attempt := func(wantFetches int64) {
		t.Helper()
		_, err := v.Verify(ctx, tok, nil)
		require.Equal(t, KeysUnavailable, reason(err), "%v", err)
		require.ErrorContains(t, err, "fail closed")
		require.Equal(t, wantFetches, f.e.Count("keys"))
	}
	attempt(1)
	attempt(1)
	f.clk.add(time.Second)
	attempt(2)
	f.clk.add(time.Second)
	attempt(2)
	f.clk.add(time.Second)
	attempt(3)
	f.clk.add(maxBackoff)
	f.e.SetKeyEndpointOutage(false)
	_, err := v.Verify(ctx, tok, nil)
	require.NoError(t, err)
}

// TestFetchBoundedByCallerContext: a caller whose context ends while the keys are being fetched
// is answered at once; the fetch itself is bounded by FetchTimeout.
func TestFetchBoundedByCallerContext(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t, nil)
	f.e.Inject(emulator.Fault{Delay: time.Minute, Match: emulator.KeysRequest})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := v.Verify(ctx, f.token(home), nil)
	require.Equal(t, KeysUnavailable, reason(err))
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// TestAnyTenantLRU: with "*", other tenants' keys live in a bounded LRU; the home tenant is never
// evicted; new tenants beyond the burst are refused without a fetch.
func TestAnyTenantLRU(t *testing.T) {
	f := newFixture(t)
	tenants := []string{"bbbbbbbb-0000-4000-8000-00000000000b", "cccccccc-0000-4000-8000-00000000000c", "dddddddd-0000-4000-8000-00000000000d"}
	for _, id := range tenants {
		f.e.AddTenant(id)
	}
	v := f.verifier(t, func(c *Config) { c.AllowedTenants, c.MaxTenants = []string{"*"}, 2 })
	ctx := context.Background()
	for _, id := range append([]string{home}, tenants...) {
		_, err := v.Verify(ctx, f.token(id), nil)
		require.NoError(t, err)
	}
	require.Equal(t, int64(4), f.e.Count("keys"))
	_, err := v.Verify(ctx, f.token(home), nil)
	require.NoError(t, err)
	_, err = v.Verify(ctx, f.token(tenants[2]), nil)
	require.NoError(t, err)
	require.Equal(t, int64(4), f.e.Count("keys"), "home (pinned) and the most recent tenants are cached")
	_, err = v.Verify(ctx, f.token(tenants[0]), nil)
	require.NoError(t, err)
	require.Equal(t, int64(5), f.e.Count("keys"), "the least recently used tenant was evicted")

	// The burst: NewTenantBurst new tenants in all (4 used above), then refusals.
	claims := jwt.MapClaims{}
	_, _, err = jwt.NewParser().ParseUnverified(f.token(home), claims)
	require.NoError(t, err)
	refused := 0
	for i := range NewTenantBurst {
		tid := fmt.Sprintf("eeeeeeee-0000-4000-8000-%012d", i)
		claims["tid"] = tid
		_, err := v.Verify(ctx, f.e.SignClaims(claims), nil)
		if reason(err) == TooManyTenants {
			refused++
		} else {
			require.Equal(t, KeysUnavailable, reason(err), "%v", err) // not a tenant of Entra
		}
	}
	require.GreaterOrEqual(t, refused, 4)
	f.clk.add(time.Second)
	claims["tid"] = "ffffffff-0000-4000-8000-000000000000"
	_, err = v.Verify(ctx, f.e.SignClaims(claims), nil)
	require.Equal(t, KeysUnavailable, reason(err), "the rate refills: %v", err)
	require.ErrorContains(t, err, "AADSTS90002")
}

// TestNotAllowedTenantNoFetch: a token of a tenant that is not allowed costs no fetch.
func TestNotAllowedTenantNoFetch(t *testing.T) {
	f := newFixture(t)
	f.e.AddTenant("bbbbbbbb-0000-4000-8000-00000000000b")
	v := f.verifier(t, func(c *Config) { c.AllowedTenants = []string{"CCCCCCCC-0000-4000-8000-00000000000C"} })
	_, err := v.Verify(context.Background(), f.token("bbbbbbbb-0000-4000-8000-00000000000b"), nil)
	require.Equal(t, TenantNotAllowed, reason(err))
	require.Zero(t, f.e.Count("openid_configuration")+f.e.Count("keys"))
}

// TestPrecheckFirst: precheck runs before any fetch and its error is returned as is.
func TestPrecheckFirst(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t, nil)
	mine := errors.New("not for me")
	_, err := v.Verify(context.Background(), f.token(home), func(c *Claims) error {
		require.Equal(t, home, c.TenantID)
		return mine
	})
	require.Same(t, mine, err)
	require.Zero(t, f.e.Count("keys"))
}

// documents is an OpenID provider on httptest whose documents a test writes.
type documents struct {
	srv  *httptest.Server
	mu   sync.Mutex
	docs map[string]string
}

func newDocuments(t *testing.T) *documents {
	d := &documents{docs: map[string]string{}}
	d.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		body, ok := d.docs[r.URL.Path]
		d.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *documents) set(path, body string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.docs[path] = body
}

func (d *documents) verifier(t *testing.T) *Verifier {
	v, err := New(Config{
		AuthorityHost: d.srv.URL + "/",
		ClientOptions: azcore.ClientOptions{Transport: d.srv.Client(), Retry: policy.RetryOptions{MaxRetries: -1}, Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: d.srv.URL + "/"}},
		HomeTenant:    home, Audiences: []string{apiID},
	})
	require.NoError(t, err)
	return v
}

func jwk(t *testing.T, kid string, pub *rsa.PublicKey, extra map[string]any) map[string]any {
	m := map[string]any{"kty": "RSA", "kid": kid, "use": "sig",
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()), "e": "AQAB"}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func signedBy(t *testing.T, key *rsa.PrivateKey, kid, iss string) string {
	j := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": iss, "tid": home, "aud": apiID, "scp": "x", "exp": time.Now().Add(time.Hour).Unix(),
	})
	j.Header["kid"] = kid
	s, err := j.SignedString(key)
	require.NoError(t, err)
	return s
}

// TestDocumentChecks: what the verifier accepts of a provider's documents.
func TestDocumentChecks(t *testing.T) {
	d := newDocuments(t)
	key := testcerts.RSA(2048, 6)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	iss := d.srv.URL + "/" + home + "/v2.0"
	config := func(issuer, jwks string) string {
		return mustJSON(t, map[string]any{"issuer": issuer, "jwks_uri": jwks})
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		config    string
		keys      string
		tok       string
		want      Reason
		errSubstr string
	}{
		{"good", config(iss, d.srv.URL+"/keys"), mustJSON(t, map[string]any{"keys": []any{jwk(t, "k1", &key.PublicKey, nil)}}), signedBy(t, key, "k1", iss), 0, ""},
		{"placeholder issuer", config(d.srv.URL+"/{tenantid}/v2.0", d.srv.URL+"/keys"), mustJSON(t, map[string]any{"keys": []any{jwk(t, "k1", &key.PublicKey, nil)}}), signedBy(t, key, "k1", iss), 0, ""},
		{"odd keys skipped", config(iss, d.srv.URL+"/keys"), mustJSON(t, map[string]any{"keys": []any{
			map[string]any{"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
			jwk(t, "small", &small.PublicKey, nil),
			jwk(t, "enc", &key.PublicKey, map[string]any{"use": "enc"}),
			jwk(t, "x5c-mismatch", &key.PublicKey, map[string]any{"x5c": []string{base64.StdEncoding.EncodeToString(testcerts.Cert(small, testcerts.Options{CommonName: "x"}).Raw)}}),
			jwk(t, "k1", &key.PublicKey, nil),
		}}), signedBy(t, key, "k1", iss), 0, ""},
		{"small key not used", config(iss, d.srv.URL+"/keys"), mustJSON(t, map[string]any{"keys": []any{jwk(t, "small", &small.PublicKey, nil), jwk(t, "k1", &key.PublicKey, nil)}}), signedBy(t, small, "small", iss), UnknownKey, ""},
		{"key whose x5c is another key's", config(iss, d.srv.URL+"/keys"), mustJSON(t, map[string]any{"keys": []any{jwk(t, "k2", &key.PublicKey, map[string]any{"x5c": []string{base64.StdEncoding.EncodeToString(testcerts.Cert(small, testcerts.Options{CommonName: "x"}).Raw)}}), jwk(t, "k1", &key.PublicKey, nil)}}), signedBy(t, key, "k2", iss), UnknownKey, ""},
		{"no usable key", config(iss, d.srv.URL+"/keys"), mustJSON(t, map[string]any{"keys": []any{jwk(t, "small", &small.PublicKey, nil)}}), signedBy(t, key, "k1", iss), KeysUnavailable, "no RSA signing key"},
		{"jwks_uri not https", config(iss, "http://example.invalid/keys"), "{}", signedBy(t, key, "k1", iss), KeysUnavailable, "not an https URL"},
		{"issuer of another tenant", config(d.srv.URL+"/bbbbbbbb-0000-4000-8000-00000000000b/v2.0", d.srv.URL+"/keys"), "{}", signedBy(t, key, "k1", iss), KeysUnavailable, "does not name the tenant"},
		{"not JSON", "<html>", "{}", signedBy(t, key, "k1", iss), KeysUnavailable, "not an OpenID configuration"},
		{"keys not JSON", config(iss, d.srv.URL+"/keys"), "[[[", signedBy(t, key, "k1", iss), KeysUnavailable, "not a JWK set"},
		{"keys too large", config(iss, d.srv.URL+"/keys"), `{"keys":[],"pad":"` + strings.Repeat("x", maxDocument) + `"}`, signedBy(t, key, "k1", iss), KeysUnavailable, "larger than"},
		{"wrong issuer", config(iss, d.srv.URL+"/keys"), mustJSON(t, map[string]any{"keys": []any{jwk(t, "k1", &key.PublicKey, nil)}}), signedBy(t, key, "k1", "https://elsewhere.example/"+home+"/v2.0"), Issuer, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d.set("/"+home+"/v2.0/.well-known/openid-configuration", tc.config)
			d.set("/keys", tc.keys)
			_, err := d.verifier(t).Verify(ctx, tc.tok, nil)
			if tc.want == 0 {
				require.NoError(t, err)
				return
			}
			require.Equal(t, tc.want, reason(err), "%v", err)
			require.ErrorContains(t, err, tc.errSubstr)
		})
	}
}

// TestDomainTenant: a home tenant named by domain is resolved to its ID through its OpenID
// configuration; while that fails, tokens are refused saying so.
func TestDomainTenant(t *testing.T) {
	f := newFixture(t)
	f.e.AddTenantDomain(home, "contoso.example")
	f.e.Inject(emulator.Fault{Status: http.StatusServiceUnavailable, Match: emulator.OpenIDConfigurationRequest})
	v := f.verifier(t, func(c *Config) { c.HomeTenant = "Contoso.Example" })
	ctx := context.Background()
	tok := f.token(home)
	_, err := v.Verify(ctx, tok, nil)
	require.Equal(t, KeysUnavailable, reason(err), "%v", err)
	require.ErrorContains(t, err, "contoso.example (configured by domain name)")
	require.ErrorContains(t, err, "HTTP 503")
	f.clk.add(time.Second)
	_, err = v.Verify(ctx, tok, nil)
	require.NoError(t, err)
	require.Equal(t, int64(2), f.e.Count("openid_configuration"), "the domain's configuration served as the tenant's")
	f.e.AddTenant("bbbbbbbb-0000-4000-8000-00000000000b")
	_, err = v.Verify(ctx, f.token("bbbbbbbb-0000-4000-8000-00000000000b"), nil)
	require.Equal(t, TenantNotAllowed, reason(err), "%v", err)
}
