package emulator

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
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
