package credential_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
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
)

func TestMain(m *testing.M) {
	testguard.VerifyTestMain(m)
}

func TestSignedAssertionCredentialGetsVerifiedToken(t *testing.T) {
	for _, tc := range []struct {
		name      string
		alg       string
		x5c       bool
		discovery bool
	}{
		{"PS256", assertion.PS256, false, false},
		{"RS256", assertion.RS256, false, false},
		{"PS256 x5c", assertion.PS256, true, false},
		{"instance discovery", "", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			var seen *emulator.TokenRequest
			var mu sync.Mutex
			e.entra.OnToken(func(r *emulator.TokenRequest) *emulator.ErrorResponse {
				mu.Lock()
				seen = r
				mu.Unlock()
				return nil
			})
			o := e.options()
			o.SendCertificateChain = tc.x5c
			o.DisableInstanceDiscovery = !tc.discovery
			s, err := assertion.NewLocalSigner(e.key, tc.alg)
			require.NoError(t, err)
			c, err := credential.NewSignedAssertionCredential(tenantA, clientID, e.chain, s, o)
			require.NoError(t, err)
			tok, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
			require.NoError(t, err)
			claims, err := e.entra.Verify(tok.Token)
			require.NoError(t, err)
			require.Equal(t, tenantA, claims["tid"])
			require.Equal(t, clientID, claims["appid"])
			require.Equal(t, "2", claims["appidacr"], "certificate authentication (a v1 token: Key Vault)")
			require.Equal(t, "https://vault.azure.net", claims["aud"])
			require.WithinDuration(t, time.Now().Add(time.Hour), tok.ExpiresOn, time.Minute)

			mu.Lock()
			defer mu.Unlock()
			require.NotNil(t, seen)
			wantAlg := tc.alg
			if wantAlg == "" {
				wantAlg = assertion.PS256
			}
			require.Equal(t, wantAlg, seen.AssertionHeader["alg"])
			require.Equal(t, e.entra.TokenEndpoint(tenantA), seen.AssertionClaims["aud"])
			_, hasX5c := seen.AssertionHeader["x5c"]
			require.Equal(t, tc.x5c, hasX5c)
			if tc.discovery {
				require.Positive(t, e.entra.Count("instance_discovery"))
			}
		})
	}
}

func TestConcurrentColdCallersShareOneTokenRequest(t *testing.T) {
	e := newEnv(t)
	c := e.cred(t, nil)
	e.entra.Inject(emulator.Fault{Count: 1, Delay: 100 * time.Millisecond}) // let callers pile up
	toks := concurrentTokens(t, c, 64)
	for _, tok := range toks {
		require.Equal(t, toks[0], tok)
	}
	require.Equal(t, int64(1), e.entra.Count("token"))

	// Cached: no more requests; another scope is another token.
	for range 100 {
		_, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
		require.NoError(t, err)
	}
	require.Equal(t, int64(1), e.entra.Count("token"))
	tok, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}})
	require.NoError(t, err)
	require.NotEqual(t, toks[0], tok.Token)
	require.Equal(t, int64(2), e.entra.Count("token"))
}

func TestRefreshAheadOfExpiry(t *testing.T) {
	e := newEnv(t)
	e.entra.SetTokenLifetime(2 * time.Second)
	c := e.cred(t, nil)
	ctx := context.Background()
	opts := policy.TokenRequestOptions{Scopes: []string{vaultRes}}
	first, err := c.GetToken(ctx, opts)
	require.NoError(t, err)
	require.Equal(t, int64(1), e.entra.Count("token"))

	// Half the lifetime later the token is stale: callers still get it at once, and one
	// background request replaces it before it expires.
	time.Sleep(1200 * time.Millisecond)
	tok, err := c.GetToken(ctx, opts)
	require.NoError(t, err)
	require.Equal(t, first.Token, tok.Token, "the stale but valid token is returned without waiting")
	require.Eventually(t, func() bool {
		tok, err := c.GetToken(ctx, opts)
		return err == nil && tok.Token != first.Token
	}, 3*time.Second, 10*time.Millisecond)
	require.Equal(t, int64(2), e.entra.Count("token"), "exactly one refresh")
	require.True(t, time.Now().Before(first.ExpiresOn), "refreshed before the old token expired")

	// A token is never handed out expired.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		tok, err := c.GetToken(ctx, opts)
		require.NoError(t, err)
		require.True(t, time.Now().Before(tok.ExpiresOn))
		time.Sleep(20 * time.Millisecond)
	}
	require.LessOrEqual(t, e.entra.Count("token"), int64(6))
}

func TestRefreshInIsHonoured(t *testing.T) {
	e := newEnv(t)
	e.entra.SetTokenLifetime(time.Hour)
	e.entra.SetRefreshIn(time.Second)
	c := e.cred(t, nil)
	opts := policy.TokenRequestOptions{Scopes: []string{vaultRes}}
	first, err := c.GetToken(context.Background(), opts)
	require.NoError(t, err)
	require.False(t, first.RefreshOn.IsZero())
	time.Sleep(1100 * time.Millisecond)
	require.Eventually(t, func() bool {
		tok, err := c.GetToken(context.Background(), opts)
		return err == nil && tok.Token != first.Token
	}, 3*time.Second, 10*time.Millisecond)
	require.Equal(t, int64(2), e.entra.Count("token"))
}

func TestClaimsChallengeBypassesCache(t *testing.T) {
	e := newEnv(t)
	c := e.cred(t, nil)
	opts := policy.TokenRequestOptions{Scopes: []string{vaultRes}}
	first, err := c.GetToken(context.Background(), opts)
	require.NoError(t, err)
	var form string
	e.entra.OnToken(func(r *emulator.TokenRequest) *emulator.ErrorResponse { form = r.Form.Get("claims"); return nil })
	claims := `{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}`
	second, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: opts.Scopes, Claims: claims, EnableCAE: true})
	require.NoError(t, err)
	require.NotEqual(t, first.Token, second.Token)
	require.Equal(t, int64(2), e.entra.Count("token"))
	require.Contains(t, form, `"nbf"`, "claims are sent to Entra")
	require.Contains(t, form, `cp1`, "CAE capability is sent")
	// The non-CAE token is still cached.
	again, err := c.GetToken(context.Background(), opts)
	require.NoError(t, err)
	require.Equal(t, first.Token, again.Token)
	require.Equal(t, int64(2), e.entra.Count("token"))
}

func TestTenantRules(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	scopes := []string{vaultRes}

	c := e.cred(t, nil)
	_, err := c.GetToken(ctx, policy.TokenRequestOptions{Scopes: scopes, TenantID: tenantB})
	require.ErrorContains(t, err, "AdditionallyAllowedTenants")
	require.Zero(t, e.entra.Count("token"))
	_, err = c.GetToken(ctx, policy.TokenRequestOptions{Scopes: scopes, TenantID: "bad tenant!"})
	require.ErrorContains(t, err, "invalid tenant ID")
	tok, err := c.GetToken(ctx, policy.TokenRequestOptions{Scopes: scopes, TenantID: tenantA})
	require.NoError(t, err)
	claims, err := e.entra.Verify(tok.Token)
	require.NoError(t, err)
	require.Equal(t, tenantA, claims["tid"])

	for _, allowed := range [][]string{{tenantB}, {"*"}} {
		o := e.options()
		o.AdditionallyAllowedTenants = allowed
		c := e.cred(t, o)
		tok, err := c.GetToken(ctx, policy.TokenRequestOptions{Scopes: scopes, TenantID: tenantB})
		require.NoError(t, err)
		claims, err := e.entra.Verify(tok.Token)
		require.NoError(t, err)
		require.Equal(t, tenantB, claims["tid"])
		require.Equal(t, e.entra.TokenEndpoint(tenantB), lastAssertionAudience(t, e, c, tenantB), "assertion audience is the requested tenant's endpoint")
	}

	o := e.options()
	o.AdditionallyAllowedTenants = []string{"*"}
	c = e.cred(t, o)
	_, err = c.GetToken(ctx, policy.TokenRequestOptions{Scopes: scopes, TenantID: "cccccccc-0000-0000-0000-00000000000c"})
	var afe *azidentity.AuthenticationFailedError
	require.ErrorAs(t, err, &afe, "unknown tenant is Entra's answer")
	require.Contains(t, err.Error(), "AADSTS90002")
}

func lastAssertionAudience(t *testing.T, e *env, c *credential.SignedAssertionCredential, tenant string) string {
	t.Helper()
	a, err := c.Assertion(context.Background(), e.entra.TokenEndpoint(tenant))
	require.NoError(t, err)
	_, claims := decodeJWT(t, a)
	return claims["aud"].(string)
}

func TestEntraErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("certificate not registered", func(t *testing.T) {
		e := newEnv(t)
		e.app.RemoveCertificate(e.chain[0])
		var asserted string
		e.entra.OnToken(func(r *emulator.TokenRequest) *emulator.ErrorResponse {
			asserted = r.Form.Get("client_assertion")
			return nil
		})
		c := e.cred(t, nil)
		_, err := c.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{vaultRes}})
		var afe *azidentity.AuthenticationFailedError
		require.ErrorAs(t, err, &afe)
		require.NotNil(t, afe.RawResponse)
		require.Equal(t, http.StatusUnauthorized, afe.RawResponse.StatusCode)
		msg := err.Error()
		require.Contains(t, msg, "AADSTS700027")
		require.Contains(t, msg, "invalid_client")
		require.Contains(t, msg, "correlation ID")
		require.Contains(t, msg, "register this certificate")
		require.Contains(t, msg, "thumbprint "+assertion.Thumbprint(e.chain[0])+" (the one that signed", "the hint names the certificate that was sent")
		require.NotEmpty(t, asserted)
		require.NotContains(t, msg, asserted)
		require.NotContains(t, msg, strings.Split(asserted, ".")[2], "no signature in the message")
		var ee *credential.AuthenticationError
		require.ErrorAs(t, err, &ee)
		require.Equal(t, 700027, ee.AADSTS)
		require.NotEmpty(t, ee.CorrelationID)
	})
	t.Run("app not in tenant", func(t *testing.T) {
		e := newEnv(t)
		e.entra.AddTenant("dddddddd-0000-0000-0000-00000000000d")
		o := e.options()
		o.AdditionallyAllowedTenants = []string{"*"}
		c := e.cred(t, o)
		_, err := c.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{vaultRes}, TenantID: "dddddddd-0000-0000-0000-00000000000d"})
		require.ErrorContains(t, err, "AADSTS700016")
		require.ErrorContains(t, err, "consent")
	})
	t.Run("scopes", func(t *testing.T) {
		e := newEnv(t)
		c := e.cred(t, nil)
		_, err := c.GetToken(ctx, policy.TokenRequestOptions{})
		require.ErrorIs(t, err, credential.ErrInvalidScopes)
		_, err = c.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/user_impersonation"}})
		require.ErrorIs(t, err, credential.ErrInvalidScopes)
		require.ErrorContains(t, err, `for example "https://vault.azure.net/.default"`, "the resource's app scope, not the permission's")
		require.NotContains(t, err.Error(), "user_impersonation/.default")
		require.Zero(t, e.entra.Count("token"))
	})
	t.Run("error body not JSON", func(t *testing.T) {
		e := newEnv(t)
		e.entra.OnToken(func(*emulator.TokenRequest) *emulator.ErrorResponse {
			return &emulator.ErrorResponse{Status: http.StatusBadGateway, Description: "<html>bad gateway</html>", Raw: true}
		})
		o := e.options()
		o.Retry.MaxRetries = -1
		c := e.cred(t, o)
		_, err := c.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{vaultRes}})
		var afe *azidentity.AuthenticationFailedError
		require.ErrorAs(t, err, &afe)
		require.ErrorContains(t, err, "not Entra's JSON error")
	})
	t.Run("throttled then served", func(t *testing.T) {
		e := newEnv(t)
		e.entra.Inject(emulator.Fault{Count: 2, Status: http.StatusServiceUnavailable, RetryAfter: time.Second})
		o := e.options()
		o.Retry.MaxRetryDelay = 5 * time.Second // azcore does not retry when Retry-After exceeds it
		c := e.cred(t, o)
		start := time.Now()
		_, err := c.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{vaultRes}})
		require.NoError(t, err)
		require.Equal(t, int64(3), e.entra.Count("token"))
		require.GreaterOrEqual(t, time.Since(start), 2*time.Second, "Retry-After honoured")
	})
	t.Run("deadline", func(t *testing.T) {
		e := newEnv(t)
		e.entra.Inject(emulator.Fault{Count: 1, Delay: 3 * time.Second})
		c := e.cred(t, nil)
		dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.GetToken(dctx, policy.TokenRequestOptions{Scopes: []string{vaultRes}})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorContains(t, err, "SignedAssertionCredential: no token for client "+clientID)
		require.Less(t, time.Since(start), time.Second)
	})
}

func TestConstructorRejectsBadInput(t *testing.T) {
	key := testcerts.RSA(2048, 0)
	cert := testcerts.Cert(key, testcerts.Options{})
	s, err := assertion.NewLocalSigner(key, "")
	require.NoError(t, err)
	other := testcerts.Cert(testcerts.RSA(2048, 1), testcerts.Options{})
	for _, tc := range []struct {
		name             string
		tenant, clientID string
		chain            []*x509.Certificate
		want             error
		msg              string
	}{
		{"bad tenant", "a/b", clientID, []*x509.Certificate{cert}, nil, "invalid tenant ID"},
		{"empty tenant", "", clientID, []*x509.Certificate{cert}, nil, "invalid tenant ID"},
		{"empty client", tenantA, "", []*x509.Certificate{cert}, assertion.ErrInvalidOptions, "client ID is empty"},
		{"no chain", tenantA, clientID, nil, assertion.ErrInvalidOptions, "no certificate"},
		{"mismatch", tenantA, clientID, []*x509.Certificate{other}, assertion.ErrKeyMismatch, "does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := credential.NewSignedAssertionCredential(tc.tenant, tc.clientID, tc.chain, s, nil)
			require.Nil(t, c)
			require.ErrorContains(t, err, tc.msg)
			if tc.want != nil {
				require.ErrorIs(t, err, tc.want)
			}
		})
	}
	o := &credential.SignedAssertionCredentialOptions{}
	o.Cloud.ActiveDirectoryAuthorityHost = "http://login.example/"
	_, err = credential.NewSignedAssertionCredential(tenantA, clientID, []*x509.Certificate{cert}, s, o)
	require.ErrorContains(t, err, "https")
}

func TestLogsWithoutSecrets(t *testing.T) {
	e := newEnv(t)
	var logs logBuffer
	o := e.options()
	o.Logger = logs.logger()
	c := e.cred(t, o)
	tok, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
	require.NoError(t, err)
	e.app.RemoveCertificate(e.chain[0])
	_, err = c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}})
	require.Error(t, err)
	out := logs.String()
	require.Contains(t, out, "token acquired")
	require.Contains(t, out, "tenant="+tenantA)
	require.Contains(t, out, "token request failed")
	require.Contains(t, out, "AADSTS700027")
	require.NotContains(t, out, tok.Token)
	require.NotContains(t, out, strings.Split(tok.Token, ".")[2])
	a, err := c.Assertion(context.Background(), e.entra.TokenEndpoint(tenantA))
	require.NoError(t, err)
	require.NotContains(t, out, strings.Split(a, ".")[2])
}

func TestErrorsAreNotRetriedByCallerPipeline(t *testing.T) {
	e := newEnv(t)
	e.app.RemoveCertificate(e.chain[0])
	c := e.cred(t, nil)
	_, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
	var nr interface{ NonRetriable() }
	require.True(t, errors.As(err, &nr), "azcore must not retry a request whose token failed")
}

func TestCacheHitDoesNotAllocate(t *testing.T) {
	e := newEnv(t)
	c := e.cred(t, nil)
	ctx := context.Background()
	opts := policy.TokenRequestOptions{Scopes: []string{vaultRes}}
	_, err := c.GetToken(ctx, opts)
	require.NoError(t, err)
	other := policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}}
	_, err = c.GetToken(ctx, other)
	require.NoError(t, err)
	for _, o := range []policy.TokenRequestOptions{opts, other} {
		allocs := testing.AllocsPerRun(1000, func() {
			if _, err := c.GetToken(ctx, o); err != nil {
				panic(err)
			}
		})
		require.Zero(t, allocs, "a cache hit allocates nothing (%v)", o.Scopes)
	}
}
