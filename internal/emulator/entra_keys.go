package emulator

import (
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"math/big"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/golang-jwt/jwt/v5"

	"github.com/azcredkit/azcredkit/internal/testcerts"
)

// Token signing keys. Entra publishes several signing keys at once in every tenant's jwks_uri
// (GET {authority}/{tenant}/discovery/v2.0/keys) and rolls them over: a new key is published, then
// tokens are signed with it, and the old one stays published for a while so that tokens signed
// with it stay valid. The emulator does the same: [Entra.RolloverSigningKey] makes a new key the
// signing key and keeps the previous one published; [Entra.RetireOldKeys] withdraws every key
// but the signing one. Every key is published with kid = x5t (the SHA-1 thumbprint of its
// certificate, base64url), n, e and x5c, as Entra does.

// signingKey is one token signing key the emulator publishes.
type signingKey struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
	kid  string
}

var rolloverCount atomic.Uint64

// newSigningKey returns a signing key with a fixture key other than avoid's and a fresh
// certificate (so a fresh kid).
func newSigningKey(avoid *rsa.PrivateKey) *signingKey {
	var key *rsa.PrivateKey
	for {
		key = testcerts.RSA(2048, int(rolloverCount.Add(1)%testcerts.Keys2048))
		if avoid == nil || !key.Equal(avoid) {
			break
		}
	}
	return signingKeyOf(key, testcerts.Cert(key, testcerts.Options{CommonName: "azcredkit emulator token signing"}))
}

func signingKeyOf(key *rsa.PrivateKey, cert *x509.Certificate) *signingKey {
	sum := sha1.Sum(cert.Raw)
	return &signingKey{key: key, cert: cert, kid: base64.RawURLEncoding.EncodeToString(sum[:])}
}

// publishedKeys returns the published keys, the signing key last. The first call takes the key
// NewEntra made.
func (e *Entra) publishedKeys() []*signingKey {
	e.keysMu.Lock()
	defer e.keysMu.Unlock()
	if e.keys == nil {
		e.keys = []*signingKey{{key: e.signKey, cert: e.signCert, kid: e.kid}}
	}
	return e.keys
}

// currentKey returns the key that signs new tokens.
func (e *Entra) currentKey() *signingKey {
	keys := e.publishedKeys()
	return keys[len(keys)-1]
}

// RolloverSigningKey rolls the token signing key over, as Entra does: a new key signs every token
// issued from now on, and the previous signing key stays published (tokens signed with it stay
// valid) until the next rollover or [Entra.RetireOldKeys]; older keys are withdrawn. Both keys are
// in the jwks_uri document. It returns the new key's kid.
func (e *Entra) RolloverSigningKey() string {
	cur := e.currentKey()
	k := newSigningKey(cur.key)
	e.keysMu.Lock()
	defer e.keysMu.Unlock()
	e.keys = []*signingKey{e.keys[len(e.keys)-1], k}
	return k.kid
}

// RetireOldKeys withdraws every published key but the signing key: tokens signed with an old key
// no longer verify (with [Entra.Verify] or against the jwks_uri document).
func (e *Entra) RetireOldKeys() {
	cur := e.currentKey()
	e.keysMu.Lock()
	defer e.keysMu.Unlock()
	e.keys = []*signingKey{cur}
}

// SigningKeyID returns the kid of the key that signs new tokens.
func (e *Entra) SigningKeyID() string { return e.currentKey().kid }

// PublishedKeyIDs returns the kids of the keys in the jwks_uri document, the signing key last.
func (e *Entra) PublishedKeyIDs() []string {
	var out []string
	for _, k := range e.publishedKeys() {
		out = append(out, k.kid)
	}
	return out
}

// SignClaims signs claims as Entra signs its tokens: a compact JWS, RS256 with the current
// signing key, header kid and x5t = the key's kid. Tests use it for tokens of shapes UserToken
// does not make (another issuer, nbf in the future...); the claims are used as given.
func (e *Entra) SignClaims(claims map[string]any) string {
	return e.sign(jwt.MapClaims(claims))
}

// SetKeyEndpointOutage makes the key endpoint (GET /{tenant}/discovery/v2.0/keys and
// /{tenant}/discovery/keys) answer 503 with Entra's error body while down is true, as during an
// outage; requests are still counted as "keys". The OpenID configuration documents and the token
// endpoint are not affected. For finer control (a number of failures, delays, resets), inject a
// [Fault] whose Match is [KeysRequest].
func (e *Entra) SetKeyEndpointOutage(down bool) { e.keysDown.Store(down) }

// KeysRequest reports whether r is a request for a tenant's signing keys (its jwks_uri): use it
// as [Fault.Match] to make the key endpoint fail.
func KeysRequest(r *http.Request) bool {
	kind, _ := entraRoute(r.URL.Path)
	return kind == routeKeys
}

// OpenIDConfigurationRequest reports whether r is a request for a tenant's OpenID configuration
// (v2 or v1): use it as [Fault.Match] to make discovery fail.
func OpenIDConfigurationRequest(r *http.Request) bool {
	kind, _ := entraRoute(r.URL.Path)
	return kind == routeOpenIDv2 || kind == routeOpenIDv1
}

// jwks serves a tenant's signing keys: every published key.
func (e *Entra) jwks(w http.ResponseWriter, r *http.Request, tid string) {
	if e.keysDown.Load() {
		e.writeEntraError(w, r, faultError(http.StatusServiceUnavailable))
		return
	}
	var keys []map[string]any
	for _, k := range e.publishedKeys() {
		pub := &k.key.PublicKey
		keys = append(keys, map[string]any{
			"kty":    "RSA",
			"use":    "sig",
			"kid":    k.kid,
			"x5t":    k.kid,
			"n":      base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			"e":      base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
			"x5c":    []string{base64.StdEncoding.EncodeToString(k.cert.Raw)},
			"issuer": e.issuer(tid, false),
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
}

// publicKey returns the published key with kid, or nil.
func (e *Entra) publicKey(kid string) *rsa.PublicKey {
	for _, k := range e.publishedKeys() {
		if k.kid == kid {
			return &k.key.PublicKey
		}
	}
	return nil
}

// SignJWSInput returns the RS256 signature (base64url, the third part of a compact JWS) of
// signingInput (base64url(header) + "." + base64url(payload)) with the current signing key, for
// tests that build tokens byte by byte (fuzzing a verifier, for one); the header should name
// [Entra.SigningKeyID] as its kid.
func (e *Entra) SignJWSInput(signingInput string) string {
	sig, err := jwt.SigningMethodRS256.Sign(signingInput, e.currentKey().key)
	if err != nil {
		panic("emulator: signing: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(sig)
}

// AddTenantDomain gives tenant tenantID (created if needed) a domain name (for example
// "contoso.onmicrosoft.com"), by which every endpoint also finds it, as Entra's do: its OpenID
// configuration under the domain names the tenant ID in its issuer, and tokens requested under
// the domain are the tenant's.
func (e *Entra) AddTenantDomain(tenantID, domain string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tenants[strings.ToLower(domain)] = e.tenantLocked(tenantID, true)
}
