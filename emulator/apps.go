package emulator

import (
	"crypto/x509"
	"fmt"
	"time"

	"github.com/azcredkit/azcredkit/internal/emulator"
)

// RegisterApp registers an app (its service principal) in tenantID with certificate credentials:
// client assertions signed by the key of one of certs are accepted (RS256 identified by x5t,
// PS256 by x5t#S256), others get AADSTS700027. The tenant is created if needed.
//
// Registering a client ID again adds certs to the same app, and in another tenant provisions the
// app's service principal there (a multi-tenant app: the same certificates work in both).
// RegisterApp with no certs is allowed: the app exists, and its token requests fail with
// AADSTS700027 until a certificate is registered (or with AADSTS7000215 for a secret, see
// RegisterSecretApp).
func (e *Emulator) RegisterApp(tenantID, clientID string, certs ...*x509.Certificate) error {
	if err := checkID("tenant ID", tenantID); err != nil {
		return err
	}
	if err := checkID("client ID", clientID); err != nil {
		return err
	}
	for _, c := range certs {
		if c == nil {
			return errNilCertificate
		}
	}
	app := e.register(tenantID, clientID)
	for _, c := range certs {
		app.AddCertificate(c)
	}
	return nil
}

// RegisterSecretApp registers an app in tenantID that authenticates with a client secret
// (obo.NewAppWithSecret, azidentity.NewClientSecretCredential). Registering the client ID again
// adds the secret: every registered secret works.
func (e *Emulator) RegisterSecretApp(tenantID, clientID, secret string) error {
	if err := checkID("tenant ID", tenantID); err != nil {
		return err
	}
	if err := checkID("client ID", clientID); err != nil {
		return err
	}
	if secret == "" {
		return fmt.Errorf("emulator: the secret of app %s is empty", clientID)
	}
	e.register(tenantID, clientID).AddSecret(secret)
	return nil
}

func (e *Emulator) register(tenantID, clientID string) *emulator.App {
	app := e.entra.RegisterApp(tenantID, clientID)
	e.mu.Lock()
	e.apps[clientID] = app
	e.mu.Unlock()
	return app
}

// UnregisterCertificate removes a certificate credential of a registered app: from then on its
// assertions get AADSTS700027, as after an app registration drops a certificate that was rotated.
func (e *Emulator) UnregisterCertificate(clientID string, cert *x509.Certificate) error {
	if cert == nil {
		return errNilCertificate
	}
	e.mu.Lock()
	app := e.apps[clientID]
	e.mu.Unlock()
	if app == nil {
		return fmt.Errorf("emulator: no app %s is registered", clientID)
	}
	app.RemoveCertificate(cert)
	return nil
}

// GrantVaultAccess lets clientID of tenantID read certificates and secrets and use keys (the
// roles "Key Vault Certificate User", "Key Vault Secrets User" and "Key Vault Crypto User"). The
// vault accepts a token when its tenant (tid) is the vault's and its app (azp or appid) has been
// granted access; others get 401 (another tenant) or 403 Forbidden (inner code AccessDenied). The
// first call sets the vault's tenant unless Options.VaultTenant did.
func (e *Emulator) GrantVaultAccess(tenantID, clientID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.vault.Tenant() == "" {
		e.vault.SetTenant(tenantID)
	}
	for _, id := range e.granted {
		if id == clientID {
			return
		}
	}
	e.granted = append(e.granted, clientID)
	e.vault.AllowOnly(e.granted...)
}

// User is a signed-in user, for [Emulator.UserToken].
type User struct {
	// ObjectID is the user's object ID: the oid (and sub) of the token. UserPrincipalName, such
	// as "alice@contoso.example", is its upn and preferred_username; optional.
	ObjectID, UserPrincipalName string
	// MFA makes the token's amr ["pwd","mfa"]: the user signed in with multi-factor
	// authentication, which resources marked with RequireMFA need.
	MFA bool
}

// UserToken issues a v2 access token for a signed-in user, as Entra would for audience (an API's
// client ID or App ID URI, used as given), signed RS256 with a key the emulator publishes in its
// jwks_uri: iss (the tenant's v2 issuer), tid, oid and sub (ObjectID), upn and preferred_username,
// scp "user_impersonation", amr ["pwd"] plus "mfa" when MFA is set, iat, nbf, exp (and azp, a
// public client, with azpacr "0"). The tenant is created if needed. lifetime 0 means one hour; a
// negative lifetime makes a token that expired that long ago. Give it to the middle tier as the
// user's token (obo.App.Credential, or the X-MS-TOKEN-AAD-ACCESS-TOKEN or Authorization header).
func (e *Emulator) UserToken(tenantID, audience string, user User, lifetime time.Duration) string {
	if lifetime == 0 {
		lifetime = time.Hour
	}
	return e.entra.UserAccessToken(tenantID, audience, emulator.User{OID: user.ObjectID, UPN: user.UserPrincipalName}, user.MFA, lifetime)
}

// RequireMFA makes On-Behalf-Of requests for resource (for example "https://vault.azure.net" or
// "https://storage.azure.com") fail as Entra does under a conditional access policy, unless the
// user's token has amr "mfa": 400 invalid_grant, AADSTS50076, suberror basic_action and a claims
// challenge, which obo returns as *obo.InteractionRequiredError.
func (e *Emulator) RequireMFA(resource string) { e.entra.RequireMFA(resource) }
