package emulator

import (
	"errors"
	"fmt"
	"time"

	"github.com/azcredkit/azcredkit/internal/emulator"
)

// GitHubActionsIssuer is the issuer of GitHub Actions OIDC tokens: the Issuer of a federated
// identity credential that trusts a workflow (see [Emulator.GitHubActionsEnv]).
const GitHubActionsIssuer = emulator.GitHubActionsIssuer

// FederatedIdentityCredential is a federated identity credential of an app (Microsoft Graph's
// federatedIdentityCredential, "Federated credentials" of an app registration): the app accepts,
// instead of a certificate assertion or a secret, a token of Issuer about Subject whose aud is
// its audience. Add it with [Emulator.AddFederatedCredential].
type FederatedIdentityCredential struct {
	// Name identifies the record on the app: 3 to 120 letters, digits, '-' or '_', starting
	// with a letter or digit, unique on the app (case-insensitively).
	Name string
	// Issuer is the https URL of the token issuer, compared case-sensitively with the token's
	// iss: for a managed identity [Emulator.Issuer] of its tenant (in Azure
	// https://login.microsoftonline.com/{tenant}/v2.0), for GitHub Actions [GitHubActionsIssuer],
	// for Kubernetes the cluster's OIDC issuer URL. At most 600 characters.
	Issuer string
	// Subject is compared case-sensitively with the token's sub: for a managed identity its
	// object (principal) ID ([Emulator.ManagedIdentityObjectID]), not its client ID; for GitHub
	// Actions for example "repo:contoso/app:environment:production"; for Kubernetes
	// "system:serviceaccount:{namespace}:{service account}". At most 600 characters.
	Subject string
	// Audiences holds exactly one audience, usually "api://AzureADTokenExchange"
	// (credential.TokenExchangeAudience, what credential.NewFederatedCredential asks its source
	// for by default).
	Audiences []string
}

// AddFederatedCredential adds a federated identity credential to the app clientID, registered
// with RegisterApp or RegisterSecretApp (with no certificate and no secret, if it has no other
// credential): from then on its token requests may present, as client assertion, a token that fc
// trusts (credential.NewFederatedCredential does), in every tenant the app has a service
// principal in. It fails, as Microsoft Graph does, on an invalid or duplicate Name, an Issuer that
// is not an https URL, an empty or too long Subject, other than one audience, an Issuer and
// Subject pair the app already trusts, and a 21st record (an app has at most 20).
//
// The token endpoint then checks a presented token as Entra does, answering in Entra's words
// (each names the presented issuer, subject or audience): a record for its issuer (else
// AADSTS700211), its signature, exp and nbf (AADSTS50013, AADSTS700024), a record for its issuer
// and subject (AADSTS70021), the record's audience (AADSTS700212). For a token of Entra ID itself
// only a user-assigned managed identity of the app's home tenant (the tenant it was first
// registered in) is accepted: AADSTS700226 for another app's or a system-assigned identity's
// token, AADSTS700236 for another tenant's.
//
// With [Options].FederatedCredentialPropagation, the token endpoint sees the record only after
// that delay and answers AADSTS70021 meanwhile, as Entra does while a new record propagates.
func (e *Emulator) AddFederatedCredential(clientID string, fc FederatedIdentityCredential) error {
	e.mu.Lock()
	app := e.apps[clientID]
	e.mu.Unlock()
	if app == nil {
		return fmt.Errorf("emulator: no app %s is registered: call RegisterApp first (with no certificate, for an app that has only federated credentials)", clientID)
	}
	err := app.AddFederatedCredential(emulator.FederatedIdentityCredential{Name: fc.Name, Issuer: fc.Issuer, Subject: fc.Subject, Audiences: fc.Audiences})
	if err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	return nil
}

// Issuer returns the issuer of tenantID's v2 tokens, "https://127.0.0.1:{port}/{tenantID}/v2.0"
// (in Azure https://login.microsoftonline.com/{tenantID}/v2.0): the iss of the managed identity
// tokens of tenantID, and so the Issuer of a federated identity credential that trusts one.
func (e *Emulator) Issuer(tenantID string) string { return e.entra.Issuer(tenantID) }

// ManagedIdentityObjectID returns the object (principal) ID of a managed identity added with
// AddManagedIdentity: the oid and sub of its tokens, and so the Subject of a federated identity
// credential that trusts it. It fails when no identity clientID was added.
//
// To an app registered in the identity's tenant, a user-assigned identity is then a credential
// without secret or certificate: add the record (Issuer(tenant), this ID,
// "api://AzureADTokenExchange") and give credential.NewFederatedCredential an
// azidentity.ManagedIdentityCredential for the identity as source. The managed identity endpoint
// answers its requests for api://AzureADTokenExchange with the token Entra issues for that
// audience (aud the token exchange app, iss Issuer(tenant), sub this ID, xms_mirid the identity's
// resource ID); a system-assigned identity's token is refused as Entra refuses it (AADSTS700226).
func (e *Emulator) ManagedIdentityObjectID(clientID string) (string, error) {
	id, ok := e.mi.Lookup(clientID)
	if !ok {
		return "", fmt.Errorf("emulator: no managed identity %s: add it with AddManagedIdentity", clientID)
	}
	return id.ObjectID(), nil
}

// IssueFederatedToken returns a token of issuer about subject for audience, as an identity
// provider other than Entra ID issues it: a Kubernetes service account token (write it to the
// file that AZURE_FEDERATED_TOKEN_FILE names, for credential.NewTokenFileSource) or another OIDC
// provider's. It is a JWT signed RS256 with the emulator's key, with iss, sub, aud, iat, nbf, exp
// and jti. The emulator's Entra ID accepts that signature for any issuer (Entra fetches the keys
// from the issuer's OpenID configuration), and refuses tokens whose signature is not the
// emulator's. lifetime 0 means one hour; a negative lifetime makes a token that expired that long
// ago.
func (e *Emulator) IssueFederatedToken(issuer, subject, audience string, lifetime time.Duration) string {
	if lifetime == 0 {
		lifetime = time.Hour
	}
	return e.entra.FederatedToken(issuer, subject, audience, lifetime)
}

// GitHubActionsEnv returns the environment of a GitHub Actions job with "permissions: id-token:
// write" whose OIDC tokens have subject as sub (for example
// "repo:contoso/app:environment:production"): ACTIONS_ID_TOKEN_REQUEST_URL, the URL of an
// emulated token endpoint on 127.0.0.1 (started the first time for subject, stopped by Close), and
// ACTIONS_ID_TOKEN_REQUEST_TOKEN, the bearer token it requires. GET
// {ACTIONS_ID_TOKEN_REQUEST_URL}&audience={audience} answers {"value":"<JWT>"}, a token of
// [GitHubActionsIssuer] about subject for audience, living 10 minutes, signed by the emulator (see
// IssueFederatedToken). Set the variables for credential.NewGitHubActionsSource, which reads them
// when created (or pass them in its options); give it ClientOptions so that it trusts the
// endpoint's TLS certificate. Counts.GitHubActionsTokens counts the requests.
func (e *Emulator) GitHubActionsEnv(subject string) (map[string]string, error) {
	if subject == "" {
		return nil, errors.New("emulator: the GitHub Actions subject is empty: give the sub of the job's tokens, for example repo:contoso/app:ref:refs/heads/main")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, errors.New("emulator: GitHubActionsEnv after Close")
	}
	a := e.actions[subject]
	if a == nil {
		if err := safely(func() { a = emulator.NewActionsOIDC(e.entra, subject) }); err != nil {
			return nil, fmt.Errorf("emulator: starting the GitHub Actions token endpoint: %w", err)
		}
		if e.actions == nil {
			e.actions = map[string]*emulator.ActionsOIDC{}
		}
		e.actions[subject] = a
	}
	return map[string]string{
		"ACTIONS_ID_TOKEN_REQUEST_URL":   a.RequestURL(),
		"ACTIONS_ID_TOKEN_REQUEST_TOKEN": a.RequestToken(),
	}, nil
}

// gitHubActionsCount sums a counter of the GitHub Actions endpoints.
func (e *Emulator) gitHubActionsCount(name string) int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var n int64
	for _, a := range e.actions {
		n += a.Count(name)
	}
	return n
}
