package obo_test

import (
	"encoding/base64"
	"encoding/json"
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
