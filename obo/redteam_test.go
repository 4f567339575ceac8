package obo_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/obo"
)

// Red-team tests of the user-token verification: attacks by an outsider who can send any HTTP
// request to an app using obo.App (Middleware, CredentialFromRequest, Credential) and who may own
// a tenant of their own (so holds real, validly signed tokens of another tenant or of their own
// account), but not the victim's keys. Each test says what the attack is and what must happen.

const b64urlAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// sameBytesVariants returns the other spellings of the unpadded base64url segment seg that
// decode to the same bytes with a lenient decoder: its last character with other values in the
// bits that carry no data (none when the segment's length is a multiple of 4).
func sameBytesVariants(seg string) []string {
	unused := map[int]int{2: 4, 3: 2}[len(seg)%4] // bits of the last character that carry no data
	if unused == 0 {
		return nil
	}
	last := strings.IndexByte(b64urlAlphabet, seg[len(seg)-1])
	var out []string
	for x := 1; x < 1<<unused; x++ {
		out = append(out, seg[:len(seg)-1]+string(b64urlAlphabet[last|x]))
	}
	return out
}

// TestRedTeamOneTokenManySpellings: a base64url segment has one canonical spelling, but a lenient
// decoder also accepts others (the unused low bits of the last character set: up to 16 x 16 x 16
// spellings of one token, at least the 16 of its 256-byte signature; CR and LF anywhere).
// go-jose re-encodes what it decoded to compute the signing input, so every such spelling of a
// valid token verifies. Each is a different string, so a different cache key: one user holding
// one valid token could make the App admit thousands of cache entries (evicting every other user)
// and, through a handler that calls GetToken, send as many OBO requests to Entra in the app's
// name. Every spelling but the canonical one must be refused, cost no exchange and take no room.
func TestRedTeamOneTokenManySpellings(t *testing.T) {
	v := newVerifyEnv(t, func(o *obo.AppOptions) { o.MaxCachedUsers = 20 })
	victim := v.userToken(v.user(8001), emulator.UserTokenOptions{})
	attacker := v.userToken(v.user(8002), emulator.UserTokenOptions{})

	var spellings []string
	parts := strings.Split(attacker, ".")
	for i := range parts {
		for _, s := range sameBytesVariants(parts[i]) {
			p := append([]string(nil), parts...)
			p[i] = s
			spellings = append(spellings, strings.Join(p, "."))
		}
	}
	require.GreaterOrEqual(t, len(spellings), 15, "the 256-byte signature alone has 15 other spellings")

	srv := httptest.NewServer(v.a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := obo.CredentialFromContext(r.Context())
		if _, err := c.GetToken(r.Context(), policy.TokenRequestOptions{Scopes: []string{storage}}); err != nil {
			http.Error(w, "token failed", http.StatusBadGateway)
			return
		}
		fmt.Fprint(w, c.UserObjectID())
	})))
	defer srv.Close()
	get := func(tok string) int {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, get(victim))
	require.Equal(t, http.StatusOK, get(attacker))
	obo0 := v.entra.Count("token:obo")
	for i, s := range spellings {
		require.Equal(t, http.StatusUnauthorized, get(s), "spelling %d of the attacker's token", i)
	}
	require.Equal(t, 2, v.a.CachedUsers(), "other spellings take no room in the cache")
	require.Equal(t, obo0, v.entra.Count("token:obo"), "other spellings cost no OBO request")
	require.Equal(t, http.StatusOK, get(victim))
	require.Equal(t, obo0, v.entra.Count("token:obo"), "the victim is still cached")

	// Line breaks, which a lenient decoder skips: only through Credential (no HTTP header holds
	// CR or LF), but as many as the size bound allows.
	for _, raw := range []string{"\n", "\r\n", strings.Repeat("\n", 1000)} {
		_, err := v.a.Credential(parts[0] + "." + parts[1][:10] + raw + parts[1][10:] + "." + parts[2])
		require.ErrorIs(t, err, obo.ErrInvalidUserToken, "a line break inside the claims")
	}
	require.Equal(t, 2, v.a.CachedUsers())

	// The canonical spelling still works, as Bearer and through Easy Auth.
	_, err := v.a.CredentialFromRequest(easyAuthTokenOnly(attacker))
	require.NoError(t, err)
}

// TestRedTeamAnyTenantNewTenantsNotLockedOut: with AdditionallyAllowedTenants "*", tenants never
// seen before are admitted at a bounded rate. Anyone can send unsigned tokens (no key needed:
// aud, exp and tid are all the attacker writes) naming random tenants; they must not use up that
// rate, or one request per second from anywhere refuses every real new tenant (a denial of
// service of a multi-tenant app without any credential). A token whose kid is one of the app's
// tenant's keys (Entra signs every tenant's tokens with the same keys) and whose signature does
// not verify with it is refused before anything is done for its tenant.
func TestRedTeamAnyTenantNewTenantsNotLockedOut(t *testing.T) {
	v := newVerifyEnv(t, func(o *obo.AppOptions) { o.AdditionallyAllowedTenants = []string{"*"} })
	const realNew = "dddddddd-0000-4000-8000-0000000000d1"
	v.entra.AddTenant(realNew)
	_, claims := jwtParts(t, v.userToken(v.user(8100), emulator.UserTokenOptions{}))
	kid := v.entra.SigningKeyID()
	for i := range 80 {
		tid := fmt.Sprintf("eeeeeeee-0000-4000-8000-%012d", i)
		claims["tid"], claims["iss"] = tid, v.entra.AuthorityHost()+tid+"/v2.0"
		h := map[string]any{"alg": "RS256", "typ": "JWT", "kid": kid}
		if i%2 == 1 {
			h["kid"] = fmt.Sprintf("random-kid-%d", i) // a kid no tenant has
		}
		_, err := v.a.CredentialFromRequest(bearerRequest(forge(t, h, claims, rs256(t, freshKey()))))
		require.ErrorIs(t, err, obo.ErrInvalidUserToken)
	}
	oid := "00000000-0000-4000-8000-0000000d1001"
	c, err := v.a.CredentialFromRequest(bearerRequest(v.entra.UserToken(realNew, oid, apiID, emulator.UserTokenOptions{})))
	require.NoError(t, err, "a real tenant's user after a flood of forged tokens of random tenants")
	require.Equal(t, oid, c.UserObjectID())
	require.Zero(t, v.entra.Count("token"))
}

// TestRedTeamAnyTenantForgedTokensEvictNoTenant: with "*", the tenants whose keys are cached live
// in a bounded LRU (MaxTenants). Forged tokens of random tenants must not keep places in it: they
// would push out real tenants, which then cost fetches again.
func TestRedTeamAnyTenantForgedTokensEvictNoTenant(t *testing.T) {
	v := newVerifyEnv(t, func(o *obo.AppOptions) {
		o.AdditionallyAllowedTenants = []string{"*"}
		o.MaxTenants = 3
	})
	const guest = "dddddddd-0000-4000-8000-0000000000d2"
	v.entra.AddTenant(guest)
	guestToken := func(i int) string {
		return v.entra.UserToken(guest, fmt.Sprintf("00000000-0000-4000-8000-0000000d2%03d", i), apiID, emulator.UserTokenOptions{})
	}
	_, err := v.a.Credential(guestToken(0))
	require.NoError(t, err)
	for i := range 10 {
		_, err := v.a.Credential(randomTenantToken(t, v, i))
		require.ErrorIs(t, err, obo.ErrInvalidUserToken)
	}
	keys := v.entra.Count("keys")
	_, err = v.a.Credential(guestToken(1))
	require.NoError(t, err)
	require.Equal(t, keys, v.entra.Count("keys"), "the guest tenant's keys are still cached: forged tokens evicted it")
}

// randomTenantToken is a forged token (a key of its own, a kid no tenant has) of a random tenant
// that does not exist.
func randomTenantToken(t *testing.T, v *verifyEnv, i int) string {
	_, claims := jwtParts(t, v.userToken("00000000-0000-4000-8000-00000000ad03", emulator.UserTokenOptions{}))
	tid := fmt.Sprintf("eeeeeeee-0000-4000-8000-%012d", 100+i)
	claims["tid"], claims["iss"] = tid, v.entra.AuthorityHost()+tid+"/v2.0"
	return forge(t, map[string]any{"alg": "RS256", "kid": fmt.Sprintf("random-kid-%d", i)}, claims, rs256(t, freshKey()))
}

// TestRedTeamAnyTenantRetriesBounded: with "*", a random tenant whose discovery failed must not be
// fetched again without passing the global bound on new tenants once more: otherwise every
// tenant admitted once is retried after its own backoff, and the many of them (up to MaxTenants)
// make a flood of discovery requests, from unsigned tokens.
func TestRedTeamAnyTenantRetriesBounded(t *testing.T) {
	v := newVerifyEnv(t, func(o *obo.AppOptions) { o.AdditionallyAllowedTenants = []string{"*"} })
	const n = 40 // beyond the burst of new tenants (30)
	before := v.entra.Count("openid_configuration")
	for i := range n {
		_, err := v.a.Credential(randomTenantToken(t, v, i))
		require.ErrorIs(t, err, obo.ErrInvalidUserToken)
	}
	first := v.entra.Count("openid_configuration") - before
	roundEnd := time.Now()
	time.Sleep(1100 * time.Millisecond) // the backoff after a first failure (1 s) has passed
	before = v.entra.Count("openid_configuration")
	for i := range n {
		_, err := v.a.Credential(randomTenantToken(t, v, i))
		require.ErrorIs(t, err, obo.ErrInvalidUserToken)
	}
	allowed := int64(time.Since(roundEnd).Seconds()) + 2 // 1 new tenant a second, rounded up, +1
	require.LessOrEqual(t, v.entra.Count("openid_configuration")-before, allowed,
		"the same random tenants again after their backoff: at most 1 new tenant per second may be fetched (first round: %d discoveries)", first)
}

// TestRedTeamAudienceUnicodeFolding: audiences are compared case-insensitively for ASCII (v1 tokens
// carry the App ID URI as configured), but not with Unicode case folding, under which "ſ" (U+017F)
// is "s" and "K" (U+212A, Kelvin) is "k": a token for another API whose App ID URI is spelled with
// them is not a token for this one.
func TestRedTeamAudienceUnicodeFolding(t *testing.T) {
	const custom = "https://contoso.example/desk"
	v := newVerifyEnv(t, func(o *obo.AppOptions) { o.Audiences = []string{custom} })
	_, claims := jwtParts(t, v.userToken(v.user(8300), emulator.UserTokenOptions{}))
	for _, aud := range []string{"https://conto\u017fo.example/desk", "https://contoso.example/des\u212a"} {
		claims["aud"] = aud
		_, err := v.a.Credential(v.entra.SignClaims(claims))
		require.ErrorIs(t, err, obo.ErrInvalidUserToken, "aud %q", aud)
		require.ErrorContains(t, err, "audience")
	}
	for _, aud := range []string{"HTTPS://CONTOSO.EXAMPLE/DESK", custom + "/"} {
		claims["aud"] = aud
		_, err := v.a.Credential(v.entra.SignClaims(claims))
		require.NoError(t, err, "aud %q", aud)
	}
}

// TestRedTeamClaimNamesExact: claim names are case-sensitive (RFC 7519 section 4) and a claim
// named twice is refused (section 4 allows rejecting, and the lexically last would otherwise
// override a value the issuer meant): "OID" is not "oid", so no claim of another name can set the
// user's object ID, tenant or audience.
func TestRedTeamClaimNamesExact(t *testing.T) {
	v := newVerifyEnv(t, nil)
	victim := "00000000-0000-4000-8000-00000000dead"
	own := v.user(8400)

	// The JSON text is built by hand: the order of the names matters, and a map cannot hold a
	// name twice.
	signed := func(extra string) string {
		body := fmt.Sprintf(`{"aud":%q,"iss":%q,"tid":%q,"scp":"user_impersonation","exp":%d,"nbf":%d,%s}`,
			apiID, v.entra.AuthorityHost()+tenant+"/v2.0", tenant, time.Now().Add(time.Hour).Unix(), time.Now().Unix(), extra)
		input := b64JSON(t, map[string]any{"alg": "RS256", "typ": "JWT", "kid": v.entra.SigningKeyID()}) + "." + base64.RawURLEncoding.EncodeToString([]byte(body))
		return input + "." + v.entra.SignJWSInput(input)
	}
	for _, tc := range []struct{ name, extra string }{
		{"OID after oid", fmt.Sprintf(`"oid":%q,"preferred_username":"me@contoso.example","OID":%q,"Preferred_Username":"admin@contoso.example"`, own, victim)},
		{"OID instead of oid", fmt.Sprintf(`"OID":%q`, victim)},
		{"Tid after tid", fmt.Sprintf(`"oid":%q,"Tid":"cccccccc-0000-4000-8000-00000000000c"`, own)},
	} {
		c, err := v.a.Credential(signed(tc.extra))
		if err == nil {
			require.NotEqual(t, victim, c.UserObjectID(), "%s: a claim named OID set the user's object ID", tc.name)
			require.NotEqual(t, "admin@contoso.example", c.UserName(), tc.name)
		}
	}
	_, err := v.a.Credential(signed(fmt.Sprintf(`"oid":%q,"oid":%q`, own, victim)))
	require.ErrorIs(t, err, obo.ErrInvalidUserToken, "oid named twice")
	_, err = v.a.Credential(signed(fmt.Sprintf(`"oid":%q`, own)))
	require.NoError(t, err, "the same token with its claims named once")
}

// TestRedTeamRefusedShapes: regression guards for attacks that are refused, beyond those of
// TestForgedAndInvalidTokensRefused: each is refused with ErrInvalidUserToken, costs no token
// request and takes no room in the cache.
func TestRedTeamRefusedShapes(t *testing.T) {
	var attackerHits atomic.Int64
	attacker := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attackerHits.Add(1)
		http.NotFound(w, r)
	}))
	defer attacker.Close()

	v := newVerifyEnv(t, nil)
	good := v.userToken(v.user(8500), emulator.UserTokenOptions{})
	_, err := v.a.Credential(good) // warm: every case below has the keys to compare with
	require.NoError(t, err)
	header, claims := jwtParts(t, good)
	kid := header["kid"].(string)
	iss := claims["iss"].(string)
	const other = "cccccccc-0000-4000-8000-00000000000c"
	v.entra.AddTenant(other)

	h := func(edit func(map[string]any)) map[string]any {
		out := map[string]any{}
		for k, x := range header {
			out[k] = x
		}
		edit(out)
		return out
	}
	c := func(edit func(map[string]any)) map[string]any {
		out := map[string]any{}
		for k, x := range claims {
			out[k] = x
		}
		out["oid"] = "00000000-0000-4000-8000-00000000ad02"
		edit(out)
		return out
	}
	same := func(map[string]any) {}
	signed := func(hdr, cl map[string]any) string { // signed by the emulator's published key
		input := b64JSON(t, hdr) + "." + b64JSON(t, cl)
		return input + "." + v.entra.SignJWSInput(input)
	}
	attackerJWK := map[string]any{"kty": "RSA", "kid": "attacker", "n": base64.RawURLEncoding.EncodeToString(freshKey().N.Bytes()), "e": "AQAB"}
	parts := strings.Split(good, ".")
	deep := strings.Repeat("[", 4000) + strings.Repeat("]", 4000)
	signedRaw := func(header, body string) string {
		input := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(body))
		return input + "." + v.entra.SignJWSInput(input)
	}

	for _, tc := range []struct {
		name, tok, msg string
	}{
		{"alg RS256 with a space", forge(t, h(func(m map[string]any) { m["alg"] = "RS256 " }), c(same), rs256(t, freshKey())), "only RS256"},
		{"alg rs256", forge(t, h(func(m map[string]any) { m["alg"] = "rs256" }), c(same), rs256(t, freshKey())), "only RS256"},
		{"alg RS512", forge(t, h(func(m map[string]any) { m["alg"] = "RS512" }), c(same), rs256(t, freshKey())), "only RS256"},
		{"alg ES256", forge(t, h(func(m map[string]any) { m["alg"] = "ES256" }), c(same), rs256(t, freshKey())), "only RS256"},
		{"alg None", forge(t, h(func(m map[string]any) { m["alg"] = "None" }), c(same), func(string) []byte { return nil }), "only RS256"},
		{"no alg", forge(t, h(func(m map[string]any) { delete(m, "alg") }), c(same), rs256(t, freshKey())), "only RS256"},
		{"crit with an unknown header, validly signed", signed(h(func(m map[string]any) { m["crit"] = []string{"x-must-understand"}; m["x-must-understand"] = 1 }), c(same)), "signature does not verify"},
		{"embedded jwk of the attacker, signed with it", forge(t, h(func(m map[string]any) { m["jwk"] = attackerJWK }), c(same), rs256(t, freshKey())), "signature does not verify"},
		{"embedded jwk, kid of the attacker's key", forge(t, h(func(m map[string]any) { m["jwk"] = attackerJWK; m["kid"] = "attacker" }), c(same), rs256(t, freshKey())), "not one of tenant"},
		{"jku of the attacker", forge(t, h(func(m map[string]any) { m["jku"] = attacker.URL + "/keys"; m["kid"] = "attacker" }), c(same), rs256(t, freshKey())), "not one of tenant"},
		{"x5u of the attacker", forge(t, h(func(m map[string]any) { m["x5u"] = attacker.URL + "/cert" }), c(same), rs256(t, freshKey())), "signature does not verify"},
		{"kid path traversal", forge(t, h(func(m map[string]any) { m["kid"] = "../../../" + tenant + "/discovery/v2.0/keys?" + kid }), c(same), rs256(t, freshKey())), "not one of tenant"},
		{"JWS JSON serialization", fmt.Sprintf(`{"protected":%q,"payload":%q,"signature":%q}`, parts[0], parts[1], parts[2]), "not a JWT"},
		{"four segments", good + ".AAAA", "not a JWT"},
		{"padded signature", good + "==", "not a well-formed JWT"},
		{"padded claims", parts[0] + "." + parts[1] + "=." + parts[2], "not a well-formed JWT"},
		{"standard base64 alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(good), "not a well-formed JWT"},
		{"empty signature", parts[0] + "." + parts[1] + ".", "signature does not verify"},
		{"issuer with a trailing slash", signed(header, c(func(m map[string]any) { m["iss"] = iss + "/" })), "issuer"},
		{"issuer in upper case", signed(header, c(func(m map[string]any) { m["iss"] = strings.ToUpper(iss) })), "issuer"},
		{"issuer with the {tenantid} placeholder", signed(header, c(func(m map[string]any) { m["iss"] = v.entra.AuthorityHost() + "{tenantid}/v2.0" })), "issuer"},
		{"issuer of common", signed(header, c(func(m map[string]any) { m["iss"] = v.entra.AuthorityHost() + "common/v2.0" })), "issuer"},
		{"v1 issuer of another tenant", signed(header, c(func(m map[string]any) { m["iss"] = "https://sts.windows.net/" + other + "/" })), "issuer"},
		{"tenant B's token naming tenant A in iss", signed(header, c(func(m map[string]any) { m["tid"] = other })), "is not the app's tenant"},
		{"tid common", signed(header, c(func(m map[string]any) { m["tid"] = "common" })), "not a tenant ID"},
		{"tid with a Unicode digit", signed(header, c(func(m map[string]any) { m["tid"] = strings.Replace(tenant, "0", "\u0660", 1) })), "not a tenant ID"},
		{"aud an array of other APIs", signed(header, c(func(m map[string]any) { m["aud"] = []string{otherApp, "api://" + otherApp} })), "audience"},
		{"aud prefixed", signed(header, c(func(m map[string]any) { m["aud"] = "api://" + apiID + "/x" })), "audience"},
		{"aud with two trailing slashes", signed(header, c(func(m map[string]any) { m["aud"] = apiID + "//" })), "audience"},
		{"aud empty array", signed(header, c(func(m map[string]any) { m["aud"] = []string{} })), "audience"},
		{"exp a huge number", signed(header, c(func(m map[string]any) { m["exp"] = 1e300 })), ""},
		{"exp negative", signed(header, c(func(m map[string]any) { m["exp"] = -1 })), "sign in again"},
		{"exp null", signed(header, c(func(m map[string]any) { m["exp"] = nil })), "no exp"},
		{"nbf a string", signed(header, c(func(m map[string]any) { m["nbf"] = "0" })), "claims are not"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.tok
			cached, tokens := v.a.CachedUsers(), v.entra.Count("token")
			cred, err := v.a.Credential(tok)
			require.Nil(t, cred)
			require.ErrorIs(t, err, obo.ErrInvalidUserToken)
			require.ErrorContains(t, err, tc.msg)
			w := httptest.NewRecorder()
			v.a.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("the handler ran") })).ServeHTTP(w, bearerRequest(tok))
			require.Equal(t, http.StatusUnauthorized, w.Code)
			require.Equal(t, cached, v.a.CachedUsers())
			require.Equal(t, tokens, v.entra.Count("token"))
		})
	}
	require.Zero(t, attackerHits.Load(), "nothing was fetched from a URL in a token's header")

	// Deeply nested JSON in a header or a claim nobody reads, validly signed: accepted or
	// refused, but quickly and without a panic.
	body := strings.TrimSuffix(string(mustDecode(t, parts[1])), "}") + `,"x":` + deep + `}`
	for _, tok := range []string{
		signedRaw(`{"alg":"RS256","kid":"`+kid+`","x":`+deep+`}`, string(mustDecode(t, parts[1]))),
		signedRaw(string(mustDecode(t, parts[0])), body),
	} {
		start := time.Now()
		_, _ = v.a.Credential(tok)
		require.Less(t, time.Since(start), 5*time.Second)
	}
}

func mustDecode(t *testing.T, seg string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	require.NoError(t, err)
	return b
}

// TestRedTeamEasyAuthPrincipalHeaders: behind Easy Auth, the principal and the token come from the
// platform; a request whose principal headers name another user than the token (first of two
// X-MS-CLIENT-PRINCIPAL-ID values, or a tenant claim of another tenant) is refused, even once
// the token is cached.
func TestRedTeamEasyAuthPrincipalHeaders(t *testing.T) {
	v := newVerifyEnv(t, nil)
	alice, bob := v.user(8601), v.user(8602)
	tok := v.userToken(alice, emulator.UserTokenOptions{})
	_, err := v.a.CredentialFromRequest(easyAuthRequest(tok, alice)) // cached
	require.NoError(t, err)

	dup := easyAuthRequest(tok, alice)
	dup.Header.Del(obo.HeaderPrincipalID)
	dup.Header.Add(obo.HeaderPrincipalID, bob)
	dup.Header.Add(obo.HeaderPrincipalID, alice)
	_, err = v.a.CredentialFromRequest(dup)
	require.ErrorIs(t, err, obo.ErrInvalidUserToken)

	otherTenant := easyAuthRequest(tok, alice)
	otherTenant.Header.Set(obo.HeaderClientPrincipal, base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf(
		`{"auth_typ":"aad","claims":[{"typ":"http://schemas.microsoft.com/identity/claims/objectidentifier","val":%q},{"typ":"http://schemas.microsoft.com/identity/claims/tenantid","val":"cccccccc-0000-4000-8000-00000000000c"}]}`, alice))))
	_, err = v.a.CredentialFromRequest(otherTenant)
	require.ErrorIs(t, err, obo.ErrInvalidUserToken)

	nameOnly := easyAuthRequest(tok, alice)
	nameOnly.Header.Del(obo.HeaderPrincipalID)
	nameOnly.Header.Del(obo.HeaderClientPrincipal)
	_, err = v.a.CredentialFromRequest(nameOnly)
	require.ErrorIs(t, err, obo.ErrInvalidUserToken, "a principal that names no object ID")

	c, err := v.a.CredentialFromRequest(easyAuthRequest(tok, alice))
	require.NoError(t, err)
	require.Equal(t, alice, c.UserObjectID())
	_, err = c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{storage}})
	require.NoError(t, err)
}

// TestRedTeamOneUserManyTokensEvictsOthers: one real user of the tenant can get as many access
// tokens as they like from Entra (each refresh is a new token); each is a new cache entry
// (entries are per token, keyed by its hash), so MaxCachedUsers tokens of one user evict every
// other user, who then each cost a new verification and a new OBO exchange.
func TestRedTeamOneUserManyTokensEvictsOthers(t *testing.T) {
	// Fixed: obo.MaxTokensPerUser bounds the entries of one user (tenant and object ID).
	v := newVerifyEnv(t, func(o *obo.AppOptions) { o.MaxCachedUsers = 10 })
	victim := v.userToken(v.user(8700), emulator.UserTokenOptions{})
	getToken := func(tok string) {
		c, err := v.a.Credential(tok)
		require.NoError(t, err)
		_, err = c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{storage}})
		require.NoError(t, err)
	}
	getToken(victim)
	attacker := v.user(8701)
	for range 100 { // the LRU is per shard: more than MaxCachedUsers to reach every shard
		getToken(v.userToken(attacker, emulator.UserTokenOptions{})) // as through Middleware and a handler
	}
	exchanges := v.entra.Count("token:obo")
	getToken(victim)
	require.Equal(t, exchanges, v.entra.Count("token:obo"), "the victim was evicted by one other user's tokens")
}

// TestRedTeamIssuerOfAnotherAllowedTenant: with two tenants allowed, a token of one whose iss
// names the other is refused (iss must be the issuer of the token's own tid); and an App whose
// tenant is "organizations" (not a tenant) accepts no tenant's tokens by it: it fails closed.
func TestRedTeamIssuerOfAnotherAllowedTenant(t *testing.T) {
	const b = "cccccccc-0000-4000-8000-00000000000c"
	v := newVerifyEnv(t, func(o *obo.AppOptions) { o.AdditionallyAllowedTenants = []string{b} })
	v.entra.AddTenant(b)
	_, claims := jwtParts(t, v.entra.UserToken(b, "00000000-0000-4000-8000-0000000c0001", apiID, emulator.UserTokenOptions{}))
	_, err := v.a.Credential(v.entra.SignClaims(claims))
	require.NoError(t, err, "tenant B's own token")
	for _, iss := range []string{v.entra.AuthorityHost() + tenant + "/v2.0", "https://sts.windows.net/" + tenant + "/"} {
		claims["iss"], claims["oid"] = iss, "00000000-0000-4000-8000-0000000c0002"
		_, err = v.a.Credential(v.entra.SignClaims(claims))
		require.ErrorIs(t, err, obo.ErrInvalidUserToken, "iss %s", iss)
		require.ErrorContains(t, err, "issuer")
	}

	for _, home := range []string{"organizations", "common"} {
		a, err := obo.NewAppWithSecret(home, apiID, apiSecret, v.options())
		if err != nil {
			continue // refused at construction: fine too
		}
		for _, tid := range []string{tenant, b} {
			_, err := a.Credential(v.entra.UserToken(tid, "00000000-0000-4000-8000-0000000c0003", apiID, emulator.UserTokenOptions{}))
			require.ErrorIs(t, err, obo.ErrInvalidUserToken, "home %s, token of %s", home, tid)
		}
	}
}
