package obo

import (
	"context"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/internal/entra"
	"github.com/azcredkit/azcredkit/internal/tokencache"
)

// EasyAuthOBOCredential implements azcore.TokenCredential for exactly one user: it exchanges that
// user's access token On-Behalf-Of for tokens to downstream resources (Storage, Key Vault, Graph,
// ARM...), cached in the App's shared per-user cache. It is bound to one user assertion for its
// whole life and can never return another user's token. Create one per request (App.Middleware
// does); it is safe for concurrent use.
type EasyAuthOBOCredential struct {
	app       *App
	userToken string
	entry     *userEntry
	principal *Principal
}

// GetToken returns a token for opts.Scopes on behalf of the user (delegated scopes such as
// "https://storage.azure.com/user_impersonation", or "{resource}/.default"). When Entra needs the
// user to do more (MFA, consent), the error is an *InteractionRequiredError: answer the client with
// its WriteResponse (a claims challenge, or a request for consent). A request with opts.Claims (a
// claims challenge from a resource) always goes to Entra: it is never answered from the cache.
func (c *EasyAuthOBOCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tenant, err := c.tenant(opts.TenantID)
	if err != nil {
		return azcore.AccessToken{}, entra.NonRetriable(err)
	}
	key := tokencache.Key{Tenant: tenant, CAE: opts.EnableCAE}
	switch len(opts.Scopes) {
	case 0:
		return azcore.AccessToken{}, entra.NonRetriable(fmt.Errorf("obo: %s.GetToken: %w: no scope given (for example %q)", credName, assertion.ErrInvalidOptions, "https://storage.azure.com/user_impersonation"))
	case 1:
		key.Scopes = opts.Scopes[0]
	default:
		key.Scopes = strings.Join(opts.Scopes, " ")
	}
	if opts.Claims == "" {
		if s := c.entry.tokens.Lookup(key); s != nil {
			if tok, ok := s.FreshNow(); ok {
				return tok, nil
			}
		}
	}
	tok, err := c.slow(ctx, key, opts)
	if err != nil {
		return tok, c.app.forCaller(err)
	}
	return tok, nil
}

func (c *EasyAuthOBOCredential) slow(ctx context.Context, key tokencache.Key, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	a := c.app
	s := c.entry.tokens.Slot(key)
	if !a.now().Before(c.entry.claims.Expires) {
		// A cached OBO token may outlive the user token, but a new exchange cannot succeed. A
		// claims challenge was raised against the cached token: never answer it with that token.
		if tok, ok := s.Fresh(a.now()); ok && opts.Claims == "" {
			return tok, nil
		}
		return azcore.AccessToken{}, entra.NonRetriable(fmt.Errorf("obo: %w (at %s): the client must sign in again or refresh its token", ErrUserTokenExpired, c.entry.claims.Expires.UTC().Format("2006-01-02T15:04:05Z07:00")))
	}
	req := entra.Request{Tenant: key.Tenant, Scopes: append([]string(nil), opts.Scopes...), Claims: opts.Claims, CAE: opts.EnableCAE, UserAssertion: c.userToken}
	p := &tokencache.Policy{Now: a.now, Observe: entra.Observer(a.logger, credName, a.clientID, key.Tenant, key.Scopes, userAttrs(c.entry.claims)...)}
	fetch := func(ctx context.Context) (azcore.AccessToken, error) {
		r := req
		if cur, ok := s.Current(); ok {
			r.Avoid = cur.Token
		}
		return a.client.Acquire(ctx, r)
	}
	if a.shared != nil {
		fetch = a.shared.fetch(s, c.userToken, key, opts.Claims != "", a.now, fetch)
	}
	// fromEntra runs for each caller, on the caller's own copy of a shared failure
	// (tokencache.PerCaller).
	if opts.Claims != "" {
		tok, err := s.Replace(ctx, p, fetch)
		return tok, entra.Waited(ctx, credName, a.clientID, key.Tenant, key.Scopes, fromEntra(err, req.Scopes))
	}
	tok, err := s.Get(ctx, p, fetch)
	return tok, entra.Waited(ctx, credName, a.clientID, key.Tenant, key.Scopes, fromEntra(err, req.Scopes))
}

// tenant picks the tenant of the exchange: the requested one (subject to
// AdditionallyAllowedTenants), else the user's own tenant when the app may target it (a guest or a
// user of a multi-tenant app), else the app's tenant.
func (c *EasyAuthOBOCredential) tenant(requested string) (string, error) {
	if requested != "" {
		t, err := c.app.client.ResolveTenant(requested)
		if err != nil {
			return "", optionsError{err}
		}
		return t, nil
	}
	if tid := c.entry.claims.TID; tid != "" {
		if t, err := c.app.client.ResolveTenant(tid); err == nil {
			return t, nil
		}
	}
	return c.app.client.HomeTenant(), nil
}

// UserObjectID returns the user's object ID (oid) from the user token, which was verified before
// the credential was made.
func (c *EasyAuthOBOCredential) UserObjectID() string { return c.entry.claims.OID }

// UserName returns the user's name (preferred_username or upn) from the verified user token.
func (c *EasyAuthOBOCredential) UserName() string { return c.entry.claims.Name }

// Principal returns the signed-in principal from the trusted Easy Auth headers (which name the
// verified token's user), or nil when the credential came from a Bearer token (even one sent with
// principal headers) or App.Credential.
func (c *EasyAuthOBOCredential) Principal() *Principal { return c.principal }

var _ azcore.TokenCredential = (*EasyAuthOBOCredential)(nil)
