package emulator

import (
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// jwksKeys fetches a tenant's jwks_uri (named by its v2 OpenID configuration) and returns its
// keys by kid, checking each against its x5c certificate and x5t.
func jwksKeys(t *testing.T, e *Entra, tenant string) map[string]*rsa.PublicKey {
	t.Helper()
	status, doc, _ := doRequest(t, http.MethodGet, e.AuthorityHost()+tenant+"/v2.0/.well-known/openid-configuration", "", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, e.AuthorityHost()+tenant+"/v2.0", doc["issuer"])
	jwksURI := doc["jwks_uri"].(string)
	require.Equal(t, e.AuthorityHost()+tenant+"/discovery/v2.0/keys", jwksURI)
	status, set, _ := doRequest(t, http.MethodGet, jwksURI, "", nil)
	require.Equal(t, http.StatusOK, status, "%v", set)
	out := map[string]*rsa.PublicKey{}
	for _, k := range set["keys"].([]any) {
		m := k.(map[string]any)
		require.Equal(t, "RSA", m["kty"])
		require.Equal(t, "sig", m["use"])
		n, err := base64.RawURLEncoding.DecodeString(m["n"].(string))
		require.NoError(t, err)
		eb, err := base64.RawURLEncoding.DecodeString(m["e"].(string))
		require.NoError(t, err)
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(eb).Int64())}
		der, err := base64.StdEncoding.DecodeString(m["x5c"].([]any)[0].(string))
		require.NoError(t, err)
		cert, err := x509.ParseCertificate(der)
		require.NoError(t, err)
		require.True(t, pub.Equal(cert.PublicKey), "x5c holds the key")
		sum := sha1.Sum(der)
		require.Equal(t, base64.RawURLEncoding.EncodeToString(sum[:]), m["kid"], "kid = x5t")
		require.Equal(t, m["kid"], m["x5t"])
		out[m["kid"].(string)] = pub
	}
	return out
}

// TestSigningKeyRollover: a rollover publishes the new key next to the old one and signs new
// tokens with it; tokens of both verify; RetireOldKeys withdraws the old one.
func TestSigningKeyRollover(t *testing.T) {
	f := oboFixture(t)
	e := f.e
	old := e.SigningKeyID()
	require.Equal(t, []string{old}, e.PublishedKeyIDs())
	require.Len(t, jwksKeys(t, e, tenantA), 1)
	before := e.UserToken(tenantA, userOID, apiAppID, UserTokenOptions{})

	kid := e.RolloverSigningKey()
	require.NotEqual(t, old, kid)
	require.Equal(t, kid, e.SigningKeyID())
	require.Equal(t, []string{old, kid}, e.PublishedKeyIDs())
	keys := jwksKeys(t, e, tenantA)
	require.Len(t, keys, 2)
	require.False(t, keys[old].Equal(keys[kid]), "a new key, not a new certificate of the same key")
	after := e.UserToken(tenantA, userOID, apiAppID, UserTokenOptions{})
	j, err := parseJWS(after)
	require.NoError(t, err)
	require.Equal(t, kid, j.header["kid"])
	for _, tok := range []string{before, after} {
		_, err := e.Verify(tok)
		require.NoError(t, err)
		status, body := f.obo(t, tok, "https://storage.azure.com/user_impersonation", nil)
		require.Equal(t, http.StatusOK, status, "%v", body)
	}

	// A second rollover withdraws the first key.
	third := e.RolloverSigningKey()
	require.Equal(t, []string{kid, third}, e.PublishedKeyIDs())
	_, err = e.Verify(before)
	require.ErrorIs(t, err, errUnknownKey)
	_, err = e.Verify(after)
	require.NoError(t, err)

	e.RetireOldKeys()
	require.Equal(t, []string{third}, e.PublishedKeyIDs())
	require.Len(t, jwksKeys(t, e, tenantA), 1)
	_, err = e.Verify(after)
	require.ErrorIs(t, err, errUnknownKey)
	status, body := f.obo(t, after, "https://storage.azure.com/user_impersonation", nil)
	require.Equal(t, 400, status)
	require.Equal(t, []int{50013}, errorCodes(body))
}

// TestKeyEndpointOutage: SetKeyEndpointOutage and a Fault matching KeysRequest make the key
// endpoint fail (503, Entra's body) and nothing else; every request is counted.
func TestKeyEndpointOutage(t *testing.T) {
	f := oboFixture(t)
	e := f.e
	keysURL := e.AuthorityHost() + tenantA + "/discovery/v2.0/keys"
	e.SetKeyEndpointOutage(true)
	status, body, _ := doRequest(t, http.MethodGet, keysURL, "", nil)
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Equal(t, "temporarily_unavailable", body["error"])
	status, _, _ = doRequest(t, http.MethodGet, e.AuthorityHost()+tenantA+"/v2.0/.well-known/openid-configuration", "", nil)
	require.Equal(t, http.StatusOK, status, "discovery is not affected")
	status, _ = f.obo(t, e.UserToken(tenantA, userOID, apiAppID, UserTokenOptions{}), "https://storage.azure.com/user_impersonation", nil)
	require.Equal(t, http.StatusOK, status, "the token endpoint is not affected")
	e.SetKeyEndpointOutage(false)
	require.Len(t, jwksKeys(t, e, tenantA), 1)

	e.Inject(Fault{Count: 2, Status: http.StatusInternalServerError, Match: KeysRequest})
	for range 2 {
		status, _, _ = doRequest(t, http.MethodGet, keysURL, "", nil)
		require.Equal(t, http.StatusInternalServerError, status)
	}
	status, _, _ = doRequest(t, http.MethodGet, keysURL, "", nil)
	require.Equal(t, http.StatusOK, status)
	e.Inject(Fault{Status: http.StatusServiceUnavailable, Match: OpenIDConfigurationRequest})
	status, _, _ = doRequest(t, http.MethodGet, e.AuthorityHost()+tenantA+"/.well-known/openid-configuration", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, status)
	assert.Equal(t, int64(5), e.Count("keys"), "every key request is counted, failed ones included")
	assert.Equal(t, int64(3), e.Count("openid_configuration"))
}

// TestSignClaimsAndJWSInput: tokens of any shape, signed with the published key.
func TestSignClaimsAndJWSInput(t *testing.T) {
	f := newFixture(t)
	e := f.e
	tok := e.SignClaims(map[string]any{"iss": "https://elsewhere.example/", "exp": time.Now().Add(time.Hour).Unix(), "x": "y"})
	claims, err := e.Verify(tok)
	require.NoError(t, err)
	require.Equal(t, "y", claims["x"])

	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"` + e.SigningKeyID() + `"}`))
	p := base64.RawURLEncoding.EncodeToString([]byte(`{"exp":` + big.NewInt(time.Now().Add(time.Hour).Unix()).String() + `}`))
	_, err = e.Verify(h + "." + p + "." + e.SignJWSInput(h+"."+p))
	require.NoError(t, err)
	_, err = e.Verify(h + "." + p + "." + e.SignJWSInput(h+"."+p+"x"))
	require.Error(t, err)
}

// TestTenantDomain: a tenant is found by its domain name too; its configuration there names the
// tenant ID.
func TestTenantDomain(t *testing.T) {
	f := oboFixture(t)
	e := f.e
	e.AddTenantDomain(tenantA, "contoso.onmicrosoft.example")
	status, doc, _ := doRequest(t, http.MethodGet, e.AuthorityHost()+"contoso.onmicrosoft.example/v2.0/.well-known/openid-configuration", "", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, e.AuthorityHost()+tenantA+"/v2.0", doc["issuer"])
	require.True(t, strings.HasSuffix(doc["jwks_uri"].(string), "/discovery/v2.0/keys"))
	status, body, _ := post(t, e.TokenEndpoint("contoso.onmicrosoft.example"), map[string][]string{
		"grant_type": {"client_credentials"}, "client_id": {appID}, "client_secret": {appSecret}, "scope": {vaultAud + "/.default"},
	})
	require.Equal(t, http.StatusOK, status, "%v", body)
	claims, err := e.Verify(body["access_token"].(string))
	require.NoError(t, err)
	require.Equal(t, tenantA, claims["tid"])
}
