package obo_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testcerts"
	"github.com/azcredkit/azcredkit/obo"
)

// The examples run against an in-process emulator of Microsoft Entra ID (internal/emulator, HTTPS
// on 127.0.0.1), so they need no Azure account. This file plays what exists before your code runs
// in production: the tenant, the web app's registration and credentials, and the users who sign
// in through App Service authentication. The examples show only the calls you write.

const (
	exampleTenant   = "72f988bf-0000-4000-8000-00000000000a"
	exampleClientID = "5b1a3e9c-0000-4000-8000-0000000000a4" // the web app's registration (the middle tier)
	exampleSecret   = "example-web-app-secret"
)

// exampleAzure is an Entra ID emulator with the web app registered and two users.
type exampleAzure struct {
	entra *emulator.Entra
	app   *emulator.App
	users map[string]string // name -> object ID
}

func startExampleAzure() *exampleAzure {
	a := &exampleAzure{entra: emulator.NewEntra(), users: map[string]string{
		"alice": "00000000-0000-4000-8000-00000000a11c",
		"bob":   "00000000-0000-4000-8000-000000000b0b",
	}}
	a.entra.AddTenant(exampleTenant)
	a.app = a.entra.RegisterApp(exampleTenant, exampleClientID)
	a.app.AddSecret(exampleSecret)
	for name, oid := range a.users {
		a.entra.AddUser(exampleTenant, emulator.User{OID: oid, Name: name, UPN: name + "@contoso.example"})
	}
	return a
}

func (a *exampleAzure) close() { a.entra.Close() }

// appOptions points the App at the emulator. TrustEasyAuthHeaders: the examples play App Service,
// which sets the X-MS-* headers; behind App Service authentication they are trusted without it.
// In production: nil.
func (a *exampleAzure) appOptions() *obo.AppOptions {
	return &obo.AppOptions{ClientOptions: a.entra.ClientOptions(), DisableInstanceDiscovery: true, TrustEasyAuthHeaders: true}
}

// signIn returns the user's access token for the web app (aud api://{client ID}, scope
// user_impersonation), as App Service authentication obtains it at sign-in and passes it in
// X-MS-TOKEN-AAD-ACCESS-TOKEN. mfa: whether the user signed in with multi-factor authentication.
func (a *exampleAzure) signIn(name string, mfa bool) string {
	return a.entra.UserToken(exampleTenant, a.users[name], exampleClientID, emulator.UserTokenOptions{MFA: mfa})
}

// certificateCredential is the web app's own certificate credential, its certificate registered on
// the app. In production: credential.NewKeyVaultCertCredential(tenantID, clientID, certURL,
// managedIdentity, nil), or credential.NewCertificateCredential with a file.
func (a *exampleAzure) certificateCredential() *credential.SignedAssertionCredential {
	key := testcerts.RSA(2048, 4)
	chain := testcerts.Chain(key, "example-web-app")
	a.app.AddCertificate(chain[0])
	signer, err := assertion.NewLocalSigner(key, assertion.PS256)
	if err != nil {
		panic(err)
	}
	cred, err := credential.NewSignedAssertionCredential(exampleTenant, exampleClientID, chain, signer,
		&credential.SignedAssertionCredentialOptions{ClientOptions: a.entra.ClientOptions(), DisableInstanceDiscovery: true})
	if err != nil {
		panic(err)
	}
	return cred
}

// exampleClaims decodes the claims of an access token, without verifying it, to show who Entra
// says the caller is. Resources verify tokens; clients should treat them as opaque.
func exampleClaims(token string) map[string]any {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		panic("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		panic(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		panic(err)
	}
	return claims
}

// withoutConsent makes Entra answer On-Behalf-Of requests for scope as it does when nobody
// consented to the web app's permission for it: 400 invalid_grant, AADSTS65001, suberror
// consent_required, and no claims.
func (a *exampleAzure) withoutConsent(scope string) {
	a.entra.OnToken(consentRequired(scope))
}

// consentRequired is an emulator hook answering OBO requests for scope as Entra does without
// consent (recorded body: FACTS.md).
func consentRequired(scope string) func(*emulator.TokenRequest) *emulator.ErrorResponse {
	return func(r *emulator.TokenRequest) *emulator.ErrorResponse {
		if r.GrantType != "urn:ietf:params:oauth:grant-type:jwt-bearer" || !slices.Contains(r.Scopes, scope) {
			return nil
		}
		return &emulator.ErrorResponse{
			Status: http.StatusBadRequest, Error: "invalid_grant", Code: 65001, SubError: "consent_required",
			Description: "AADSTS65001: The user or administrator has not consented to use the application with ID '" + r.ClientID + "' named 'web app'. Send an interactive authorization request for this user and resource.",
		}
	}
}

// challenge parses a WWW-Authenticate value with one challenge (RFC 9110 section 11.6.1):
// its scheme and its parameters, quoted strings unquoted.
func challenge(h string) (scheme string, params map[string]string) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	params = map[string]string{}
	for rest = strings.TrimSpace(rest); rest != ""; rest = strings.TrimLeft(rest, ", ") {
		name, after, ok := strings.Cut(rest, "=")
		if !ok {
			return scheme, nil
		}
		name = strings.ToLower(strings.TrimSpace(name))
		if !strings.HasPrefix(after, `"`) {
			v, next, _ := strings.Cut(after, ",")
			params[name], rest = strings.TrimSpace(v), next
			continue
		}
		var v strings.Builder
		i := 1
		for ; i < len(after) && after[i] != '"'; i++ {
			if after[i] == '\\' && i+1 < len(after) {
				i++
			}
			v.WriteByte(after[i])
		}
		if i >= len(after) {
			return scheme, nil // unterminated
		}
		params[name], rest = v.String(), after[i+1:]
	}
	return scheme, params
}
