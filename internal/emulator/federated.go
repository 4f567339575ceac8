package emulator

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Workload identity federation: federated identity credential records on apps, and the client
// assertions that present a token of a trusted issuer instead of a certificate assertion.
//
// What the emulator checks, in Entra's order as far as it shows in its answers:
//
//  1. a record whose issuer is the assertion's iss, compared case-sensitively (else AADSTS700211);
//  2. for an issuer of Microsoft Entra ID itself: only this cloud and the app's home tenant
//     (another cloud's issuer: AADSTS700222, another tenant's: AADSTS700236);
//  3. the signature (RS256 with this emulator's key: the emulator also plays the external
//     issuers, Kubernetes and GitHub Actions, see [Entra.FederatedToken]), exp and nbf
//     (AADSTS50013, AADSTS700024);
//  4. a record with that issuer and the assertion's sub, case-sensitively (else AADSTS70021,
//     naming the assertion's issuer, subject and audience, as Entra does);
//  5. the record's audience among the assertion's aud (else AADSTS700212); a record for
//     api://AzureADTokenExchange accepts the token exchange app's ID, which is what Entra puts in
//     the aud of the tokens it issues for that audience;
//  6. an Entra-issued token must come from a user-assigned managed identity (else AADSTS700226).
//
// The codes and messages of 700211, 70021, 700212, 700222, 700226 and 700236 are the ones users
// report from the real service; which of them Entra answers for a token of another cloud is not
// documented (the documentation says only that cross-cloud trust is not supported): the emulator
// answers 700222 ("AAD-issued tokens may not be used for federated identity flows").

// Token exchange audiences: the audience of a token that serves as a federated client assertion
// for Microsoft Entra ID, per cloud. A managed identity asks for "{audience}/.default".
const (
	TokenExchangeAudience      = "api://AzureADTokenExchange"
	TokenExchangeAudienceUSGov = "api://AzureADTokenExchangeUSGov"
	TokenExchangeAudienceChina = "api://AzureADTokenExchangeChina"
	// TokenExchangeAppID is the application ID of Entra's token exchange endpoint: the aud of
	// the tokens Entra issues for api://AzureADTokenExchange.
	TokenExchangeAppID = "fb60f99c-7a34-4190-8149-302f77469936"
	// GitHubActionsIssuer is the issuer of GitHub Actions OIDC tokens.
	GitHubActionsIssuer = "https://token.actions.githubusercontent.com"
	// MaxFederatedCredentials is how many federated identity credentials an app may have.
	MaxFederatedCredentials = 20
)

// federatedFieldMax is the longest issuer, subject or audience Entra accepts in a record.
const federatedFieldMax = 600

// FederatedIdentityCredential is a federated identity credential record of an app: the app
// trusts tokens of Issuer about Subject for Audiences as its client assertions, as Microsoft
// Graph's federatedIdentityCredential does.
type FederatedIdentityCredential struct {
	// Name is unique among the app's records: 3 to 120 letters, digits, '-' or '_', starting
	// with a letter or digit.
	Name string
	// Issuer is the URL of the token issuer, matched case-sensitively with the token's iss. For
	// a managed identity: [Entra.Issuer] of its tenant.
	Issuer string
	// Subject is matched case-sensitively with the token's sub. For a managed identity: its
	// object (principal) ID, [App.ObjectID].
	Subject string
	// Audiences holds exactly one audience, usually [TokenExchangeAudience].
	Audiences []string
}

// fedRecord is a record with the time from which the token endpoint sees it.
type fedRecord struct {
	FederatedIdentityCredential
	activeAt time.Time
}

// appFederation is an app's federation state. Guarded by Entra.mu.
type appFederation struct {
	records []fedRecord
	// mirid is the Azure resource ID of the managed identity the app plays (xms_mirid), "" for
	// an ordinary app.
	mirid string
}

// ErrFederatedCredential is wrapped by the errors of [App.AddFederatedCredential].
var ErrFederatedCredential = errors.New("invalid federated identity credential")

// AddFederatedCredential adds a federated identity credential record, validated as Microsoft
// Graph does: a unique name, an issuer and subject of at most 600 characters whose combination is
// unique on the app, exactly one audience, and at most [MaxFederatedCredentials] records per app.
// The token endpoint sees the record after the propagation delay set with
// [Entra.SetFederatedCredentialPropagation] (none by default); until then it answers AADSTS70021.
func (a *App) AddFederatedCredential(fc FederatedIdentityCredential) error {
	if err := checkFederatedRecord(fc); err != nil {
		return err
	}
	fc.Audiences = append([]string(nil), fc.Audiences...)
	a.e.mu.Lock()
	defer a.e.mu.Unlock()
	for _, r := range a.fed.records {
		if strings.EqualFold(r.Name, fc.Name) {
			return fmt.Errorf("%w: app %s already has a federated identity credential named %q", ErrFederatedCredential, a.clientID, fc.Name)
		}
		if r.Issuer == fc.Issuer && r.Subject == fc.Subject {
			return fmt.Errorf("%w: app %s already trusts issuer %q with subject %q (record %q)", ErrFederatedCredential, a.clientID, fc.Issuer, fc.Subject, r.Name)
		}
	}
	if len(a.fed.records) >= MaxFederatedCredentials {
		return fmt.Errorf("%w: app %s has %d federated identity credentials, the most an app may have", ErrFederatedCredential, a.clientID, MaxFederatedCredentials)
	}
	a.fed.records = append(a.fed.records, fedRecord{FederatedIdentityCredential: fc, activeAt: time.Now().Add(a.e.fedPropagation)})
	return nil
}

func checkFederatedRecord(fc FederatedIdentityCredential) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrFederatedCredential, fmt.Sprintf(format, args...))
	}
	if n := len(fc.Name); n < 3 || n > 120 || !validRecordName(fc.Name) {
		return bad("name %q: 3 to 120 letters, digits, '-' or '_', starting with a letter or digit", fc.Name)
	}
	if fc.Issuer == "" || len(fc.Issuer) > federatedFieldMax {
		return bad("issuer: 1 to %d characters", federatedFieldMax)
	}
	if u, err := url.Parse(fc.Issuer); err != nil || u.Scheme != "https" || u.Host == "" {
		return bad("issuer %q is not an https URL", fc.Issuer)
	}
	if fc.Subject == "" || len(fc.Subject) > federatedFieldMax {
		return bad("subject: 1 to %d characters", federatedFieldMax)
	}
	if len(fc.Audiences) != 1 || fc.Audiences[0] == "" || len(fc.Audiences[0]) > federatedFieldMax {
		return bad("audiences: exactly one audience of 1 to %d characters", federatedFieldMax)
	}
	return nil
}

func validRecordName(s string) bool {
	for i, r := range s {
		alnum := 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
		if !alnum && (i == 0 || r != '-' && r != '_') {
			return false
		}
	}
	return true
}

// RemoveFederatedCredential removes the record named name (case-insensitively); it does nothing
// when there is none.
func (a *App) RemoveFederatedCredential(name string) {
	a.e.mu.Lock()
	defer a.e.mu.Unlock()
	for i, r := range a.fed.records {
		if strings.EqualFold(r.Name, name) {
			a.fed.records = append(a.fed.records[:i:i], a.fed.records[i+1:]...)
			return
		}
	}
}

// FederatedCredentials returns the app's records.
func (a *App) FederatedCredentials() []FederatedIdentityCredential {
	a.e.mu.Lock()
	defer a.e.mu.Unlock()
	out := make([]FederatedIdentityCredential, len(a.fed.records))
	for i, r := range a.fed.records {
		out[i] = r.FederatedIdentityCredential
		out[i].Audiences = append([]string(nil), r.Audiences...)
	}
	return out
}

// SetFederatedCredentialPropagation makes federated identity credentials added from now on
// invisible to the token endpoint for d, as a new record takes a while to propagate in Entra
// (meanwhile it answers AADSTS70021). 0, the default, makes them visible at once.
func (e *Entra) SetFederatedCredentialPropagation(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fedPropagation = max(d, 0)
}

// ObjectID returns the object ID of the app's service principal in tenant: the oid and sub of its
// app-only tokens, and so the subject of a federated identity credential that trusts it as a
// managed identity.
func (a *App) ObjectID(tenant string) string {
	t := a.e.lookupTenant(tenant)
	if t != nil {
		tenant = t.id
	}
	return spObjectID(a.clientID, tenant)
}

// MakeManagedIdentity makes the app play a user-assigned managed identity whose Azure resource ID
// is resourceID (/subscriptions/{sub}/resourceGroups/{rg}/providers/
// Microsoft.ManagedIdentity/userAssignedIdentities/{name}): its app-only tokens carry it as
// xms_mirid, as a managed identity's tokens do, and so they are accepted as federated client
// assertions (Entra accepts tokens it issued only from user-assigned managed identities). A
// system-assigned identity's resource ID (a VM's, a web app's) is accepted here and refused at
// the token endpoint, as Entra refuses it.
func (a *App) MakeManagedIdentity(resourceID string) {
	a.e.mu.Lock()
	defer a.e.mu.Unlock()
	a.fed.mirid = resourceID
}

// Issuer returns the issuer of the v2 tokens of tenant: "{authority host}{tenant}/v2.0", the
// issuer of a federated identity credential that trusts a managed identity of tenant.
func (e *Entra) Issuer(tenant string) string {
	if t := e.lookupTenant(tenant); t != nil {
		tenant = t.id
	}
	return e.issuer(tenant, false)
}

// ManagedIdentityCredential returns the record with which an app of tenant trusts the managed
// identity played by identity (see [App.MakeManagedIdentity]): issuer [Entra.Issuer] of tenant,
// subject the identity's object ID, audience [TokenExchangeAudience].
func (e *Entra) ManagedIdentityCredential(name, tenant string, identity *App) FederatedIdentityCredential {
	return FederatedIdentityCredential{Name: name, Issuer: e.Issuer(tenant), Subject: identity.ObjectID(tenant), Audiences: []string{TokenExchangeAudience}}
}

// IdentityCredential returns the record with which an app trusts the managed identity id served
// by a [ManagedIdentity] endpoint: issuer [Entra.Issuer] of its tenant, subject its object ID,
// audience [TokenExchangeAudience]. Entra accepts the endpoint's tokens for that audience when
// the identity is user-assigned and of the app's home tenant.
func (e *Entra) IdentityCredential(name string, id Identity) FederatedIdentityCredential {
	return FederatedIdentityCredential{Name: name, Issuer: e.Issuer(id.TenantID), Subject: id.ObjectID(), Audiences: []string{TokenExchangeAudience}}
}

// FederatedToken returns a token of issuer about subject for audience, valid for lifetime, signed
// RS256 with the emulator's key: what an external identity provider (the Kubernetes service
// account issuer, GitHub Actions) would issue, for the tests of federated credentials. The token
// endpoint accepts the emulator's signature for any issuer.
func (e *Entra) FederatedToken(issuer, subject, audience string, lifetime time.Duration) string {
	now := time.Now()
	return e.sign(jwt.MapClaims{
		"iss": issuer, "sub": subject, "aud": audience,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(lifetime).Unix(),
		"jti": newUUID(),
	})
}

// tokenExchangeResource is the resource a scope for a token exchange audience names: v2 tokens
// whose aud is the token exchange app's ID (the public cloud's) or the audience itself (the
// other clouds', whose IDs the emulator does not know).
func tokenExchangeResource(name string) (resource, bool) {
	switch {
	case strings.EqualFold(name, TokenExchangeAudience):
		return resource{aud: TokenExchangeAppID, keys: []string{TokenExchangeAudience}}, true
	case strings.EqualFold(name, TokenExchangeAudienceUSGov), strings.EqualFold(name, TokenExchangeAudienceChina):
		return resource{aud: name, keys: []string{name}}, true
	}
	return resource{}, false
}

// addManagedIdentityClaims adds xms_mirid to the app-only tokens of an app that plays a managed
// identity.
func (e *Entra) addManagedIdentityClaims(app *App, claims jwt.MapClaims) {
	e.mu.Lock()
	mirid := app.fed.mirid
	e.mu.Unlock()
	if mirid != "" {
		claims["xms_mirid"] = mirid
	}
}

// isFederatedAssertion reports whether a client assertion presents a token of another issuer
// (its iss is an https URL, where a certificate assertion's iss is the client ID).
func isFederatedAssertion(tr *TokenRequest, ca *jws) bool {
	iss, _ := ca.claims["iss"].(string)
	return iss != tr.ClientID && len(iss) > 8 && strings.EqualFold(iss[:8], "https://")
}

// checkFederatedAssertion verifies a federated client assertion against the app's records.
func (e *Entra) checkFederatedAssertion(tr *TokenRequest, app *App, ca *jws) *ErrorResponse {
	iss, _ := ca.claims["iss"].(string)
	sub, _ := ca.claims["sub"].(string)
	auds := stringList(ca.claims["aud"])
	now := time.Now()
	e.mu.Lock()
	var byIssuer []FederatedIdentityCredential
	propagating := false // a record for this issuer not seen yet: Entra answers 70021 meanwhile
	for _, r := range app.fed.records {
		switch {
		case r.Issuer != iss:
		case now.Before(r.activeAt):
			propagating = true
		default:
			byIssuer = append(byIssuer, r.FederatedIdentityCredential)
		}
	}
	e.mu.Unlock()
	if len(byIssuer) == 0 && !propagating {
		return entraError(400, "invalid_request", 700211, "No matching federated identity record found for presented assertion issuer '"+iss+"'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation")
	}
	if er := e.checkEntraIssuer(iss, app); er != nil {
		return er
	}
	if er := e.checkFederatedSignature(tr.Form.Get("client_assertion"), ca, now); er != nil {
		return er
	}
	var rec *FederatedIdentityCredential
	for i := range byIssuer {
		if byIssuer[i].Subject == sub {
			rec = &byIssuer[i]
			break
		}
	}
	if rec == nil {
		return entraError(400, "invalid_request", 70021, "No matching federated identity record found for presented assertion. Assertion Issuer: '"+iss+"'. Assertion Subject: '"+sub+"'. Assertion Audience: '"+strings.Join(auds, ",")+"'. https://docs.microsoft.com/azure/active-directory/develop/workload-identity-federation")
	}
	if !federatedAudienceMatches(rec.Audiences[0], auds) {
		return entraError(400, "invalid_request", 700212, "No matching federated identity record found for presented assertion audience '"+strings.Join(auds, ",")+"'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation")
	}
	if e.isOwnIssuer(iss) {
		mirid, _ := ca.claims["xms_mirid"].(string)
		if !strings.Contains(strings.ToLower(mirid), "/providers/microsoft.managedidentity/userassignedidentities/") {
			return entraError(400, "invalid_request", 700226, "Only MSI tokens may be used as Federated Identity Credentials for AAD issuer. A token of a user-assigned managed identity is required.")
		}
	}
	return nil
}

// checkEntraIssuer applies Entra's rules to its own issuers: a managed identity of the app's
// home tenant, in this cloud.
func (e *Entra) checkEntraIssuer(iss string, app *App) *ErrorResponse {
	if e.isOwnIssuer(iss) {
		tid := strings.TrimSuffix(strings.TrimPrefix(iss, e.AuthorityHost()), "/v2.0")
		if !strings.EqualFold(tid, app.home) {
			return entraError(400, "invalid_request", 700236, "Entra ID tokens issued by issuer '"+iss+"' may not be used for federated identity credential flows for applications or managed identities registered in this tenant.")
		}
		return nil
	}
	if isEntraIssuerOfAnotherCloud(iss) {
		return entraError(400, "invalid_request", 700222, "AAD-issued tokens may not be used for federated identity flows.")
	}
	return nil
}

// isOwnIssuer reports whether iss is the v2 issuer of one of the emulator's tenants.
func (e *Entra) isOwnIssuer(iss string) bool {
	rest, ok := strings.CutPrefix(iss, e.AuthorityHost())
	if !ok {
		return false
	}
	tid, ok := strings.CutSuffix(rest, "/v2.0")
	return ok && !strings.Contains(tid, "/") && e.lookupTenant(tid) != nil
}

// isEntraIssuerOfAnotherCloud reports whether iss belongs to Microsoft Entra ID of another cloud:
// a well-known Entra host, or another running emulator (which stands for another cloud).
func isEntraIssuerOfAnotherCloud(iss string) bool {
	u, err := url.Parse(iss)
	if err != nil {
		return false
	}
	host := strings.ToLower(u.Host)
	for _, h := range []string{"login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn", "login.partner.microsoftonline.cn", "login.windows.net", "login.microsoft.com", "sts.windows.net", "sts.chinacloudapi.cn"} {
		if host == h || strings.HasSuffix(host, "."+h) {
			return true
		}
	}
	liveMu.Lock()
	defer liveMu.Unlock()
	return liveEntras[host]
}

// checkFederatedSignature verifies the token with the emulator's signing keys ([Entra.Verify]:
// RS256, exp, nbf).
func (e *Entra) checkFederatedSignature(raw string, ca *jws, now time.Time) *ErrorResponse {
	_, err := e.Verify(raw)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenNotValidYet):
		exp, _ := numericDate(ca.claims["exp"])
		f := "2006-01-02T15:04:05.0000000Z"
		return entraError(401, "invalid_client", 700024, "Client assertion is not within its valid time range. Current time: "+now.UTC().Format(f)+", expiry time of assertion "+exp.UTC().Format(f)+".")
	case errors.Is(err, jwt.ErrTokenMalformed), errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return errMalformedJWT()
	}
	return entraError(400, "invalid_client", 50013, "Assertion failed signature validation. [Reason - The key was not found.]")
}

// federatedAudienceMatches reports whether the record's audience is among the token's: exactly,
// or as the token exchange app's ID for api://AzureADTokenExchange.
func federatedAudienceMatches(want string, auds []string) bool {
	for _, a := range auds {
		if a == want || want == TokenExchangeAudience && a == TokenExchangeAppID {
			return true
		}
	}
	return false
}
