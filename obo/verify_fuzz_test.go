package obo_test

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testguard"
	"github.com/azcredkit/azcredkit/obo"
)

const fuzzGuestTenant = "bbbbbbbb-0000-4000-8000-00000000000b"

// FuzzUserTokenVerification fuzzes the verification of user tokens (App.Credential) with tokens
// the emulator signs with its published key (signed) or that carry the fuzzed signature. The
// header and claims are fuzzed as JSON text in which placeholders stand for live values, so that
// seeds stay meaningful: $KID (the published kid), $TENANT, $GUEST (another tenant of the
// emulator), $ISS/$ISS1 (the home tenant's v2 and v1 issuers), $AUD (the app's client ID), $NOW,
// $EXP (in an hour), $PAST (an hour ago), $FUTURE (in an hour, for nbf).
//
// Property, beyond the usual (no panic, bounded, documented sentinels, no token in errors, no
// token request): Credential accepts a token only if an independent check finds it valid:
// golang-jwt verifies the RS256 signature with the keys of the emulator's jwks_uri (decoded from
// their x5c certificates) and exp/nbf/iat with 6 minutes of leeway (5 allowed, 1 for the time the
// check takes), encoding/json reads aud (the client ID or api://{client ID}), tid (a tenant the
// App accepts), iss (that tenant's v2 or v1 issuer) and scp.
func FuzzUserTokenVerification(f *testing.F) {
	e := fuzzEntra(f)
	e.AddTenant(fuzzGuestTenant)
	single := fuzzApp(f, e, true)
	anyTenant := fuzzAppOptions(f, e, func(o *obo.AppOptions) { o.AdditionallyAllowedTenants = []string{"*"} })
	keys := publishedKeys(f, e, fuzzTenant)

	const h = `{"alg":"RS256","kid":"$KID","typ":"JWT"}`
	const c = `{"aud":"$AUD","iss":"$ISS","tid":"$TENANT","oid":"00000000-0000-4000-8000-000000000001","scp":"user_impersonation","exp":$EXP,"nbf":$NOW,"iat":$NOW,"ver":"2.0","upn":"a@contoso.example"}`
	for _, s := range []struct {
		header, claims string
		signed         bool
	}{
		{h, c, true},
		{h, strings.Replace(c, `"$ISS"`, `"$ISS1"`, 1), true},
		{h, strings.Replace(c, `"$AUD"`, `["x","api://$AUD/"]`, 1), true},
		{h, strings.Replace(c, `"$TENANT"`, `"$GUEST"`, 1), true},
		{h, strings.NewReplacer(`"$TENANT"`, `"$GUEST"`, `$ISS`, `https://login.example/$GUEST/v2.0`).Replace(c), true},
		{h, strings.Replace(c, `"tid":"$TENANT"`, `"tid":"cccccccc-0000-4000-8000-00000000000c","tid":"$TENANT"`, 1), true},
		{h, strings.Replace(c, `$EXP`, `$PAST`, 1), true},
		{h, strings.Replace(c, `"nbf":$NOW`, `"nbf":$FUTURE`, 1), true},
		{h, strings.Replace(c, `$EXP`, `"$EXP"`, 1), true},
		{h, strings.Replace(c, `"scp":"user_impersonation",`, `"roles":["r"],`, 1), true},
		{`{"alg":"none","kid":"$KID"}`, c, false},
		{`{"alg":"HS256","kid":"$KID"}`, c, false},
		{`{"alg":"RS256","kid":"other"}`, c, true},
		{`{"alg":"RS256"}`, c, true},
		{`{"alg":"RS256","kid":"$KID","crit":["exp"],"exp":1}`, c, true},
		{`{"alg":"RS256","kid":"$KID","jwk":{"kty":"RSA","n":"AQAB","e":"AQAB"}}`, c, true},
		{h, `[]`, true},
		{h, `{"aud":"$AUD","tid":"$TENANT","exp":1e300}`, true},
	} {
		f.Add(s.header, s.claims, "c2ln", s.signed, false)
		f.Add(s.header, s.claims, "c2ln", s.signed, true)
	}
	f.Fuzz(func(t *testing.T, header, claims, sig string, signed, anyTenantApp bool) {
		app := single
		accepted := []string{fuzzTenant}
		if anyTenantApp {
			app, accepted = anyTenant, []string{fuzzTenant, fuzzGuestTenant}
		}
		now := time.Now()
		expand := strings.NewReplacer(
			"$KID", e.SigningKeyID(), "$TENANT", fuzzTenant, "$GUEST", fuzzGuestTenant,
			"$ISS1", "https://sts.windows.net/"+fuzzTenant+"/", "$ISS", e.AuthorityHost()+fuzzTenant+"/v2.0",
			"$AUD", fuzzClientID, "$NOW", fmt.Sprint(now.Unix()), "$EXP", fmt.Sprint(now.Add(time.Hour).Unix()),
			"$PAST", fmt.Sprint(now.Add(-time.Hour).Unix()), "$FUTURE", fmt.Sprint(now.Add(time.Hour).Unix()),
		)
		input := base64.RawURLEncoding.EncodeToString([]byte(expand.Replace(header))) + "." + base64.RawURLEncoding.EncodeToString([]byte(expand.Replace(claims)))
		if signed {
			sig = e.SignJWSInput(input)
		}
		tok := input + "." + sig
		var c *obo.EasyAuthOBOCredential
		var err error
		testguard.Within(t, fuzzDeadline, "Credential", func() { c, err = app.Credential(tok) })
		checkCredential(t, c, err, tok)
		noExchange(t, e)
		if err != nil {
			return
		}
		if why := oracleRefuses(tok, keys, accepted, e); why != "" {
			t.Fatalf("Credential accepted a token that is not valid (%s): header %s claims %s", why, expand.Replace(header), expand.Replace(claims))
		}
	})
}

// fuzzAppOptions is fuzzApp with options edited.
func fuzzAppOptions(t testing.TB, e *emulator.Entra, edit func(*obo.AppOptions)) *obo.App {
	t.Helper()
	co := e.ClientOptions()
	co.Retry.MaxRetries = -1
	o := &obo.AppOptions{ClientOptions: co, DisableInstanceDiscovery: true, TrustEasyAuthHeaders: true, MaxCachedUsers: 1000}
	edit(o)
	a, err := obo.NewAppWithSecret(fuzzTenant, fuzzClientID, "dummy-secret-never-sent", o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// publishedKeys reads the emulator's jwks_uri document of tenant and returns its keys by kid,
// taken from their x5c certificates (not from n and e: the tests decode keys another way than the
// App).
func publishedKeys(t testing.TB, e *emulator.Entra, tenant string) map[string]*rsa.PublicKey {
	t.Helper()
	resp, err := emulator.HTTPClient().Get(e.AuthorityHost() + tenant + "/discovery/v2.0/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kid string   `json:"kid"`
			X5c []string `json:"x5c"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	out := map[string]*rsa.PublicKey{}
	for _, k := range set.Keys {
		der, err := base64.StdEncoding.DecodeString(k.X5c[0])
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		out[k.Kid] = cert.PublicKey.(*rsa.PublicKey)
	}
	return out
}

// oracleRefuses returns why tok is not a valid user token for the fuzz App, or "".
func oracleRefuses(tok string, keys map[string]*rsa.PublicKey, tenants []string, e *emulator.Entra) string {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if k := keys[kid]; k != nil {
			return k, nil
		}
		return nil, fmt.Errorf("unknown kid %q", kid)
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithLeeway(6*time.Minute), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil {
		return "golang-jwt: " + err.Error()
	}
	aud, err := claims.GetAudience()
	if err != nil {
		return "aud: " + err.Error()
	}
	audOK := false
	for _, a := range aud {
		a = strings.TrimSuffix(a, "/")
		audOK = audOK || strings.EqualFold(a, fuzzClientID) || strings.EqualFold(a, "api://"+fuzzClientID)
	}
	if !audOK {
		return fmt.Sprintf("aud %q", aud)
	}
	tid, _ := claims["tid"].(string)
	tidOK := false
	for _, want := range tenants {
		tidOK = tidOK || strings.EqualFold(tid, want)
	}
	if !tidOK {
		return fmt.Sprintf("tid %q", tid)
	}
	iss, _ := claims["iss"].(string)
	if lt := strings.ToLower(tid); iss != e.AuthorityHost()+lt+"/v2.0" && iss != "https://sts.windows.net/"+lt+"/" {
		return fmt.Sprintf("iss %q", iss)
	}
	if _, ok := claims["scp"]; !ok {
		return "no scp"
	}
	return ""
}
