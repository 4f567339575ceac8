package emulator

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"testing"
	"time"

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
