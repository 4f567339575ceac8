package obo

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/internal/entra"
	"github.com/azcredkit/azcredkit/internal/metering"
	"github.com/azcredkit/azcredkit/internal/tokencache"
	"github.com/azcredkit/azcredkit/metrics"
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
//
// With AppOptions.ClientOptions.TracingProvider, each call is a span "EasyAuthOBOCredential.GetToken"
// (see package credential's documentation); the shared cache's calls are made under its context.
func (c *EasyAuthOBOCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if t := c.app.client.Tracer(); t.Enabled() {
		ctx, span := t.Start(ctx, spanName)
		tok, served, err := c.getToken(ctx, &opts)
		span.End(served, err)
		return tok, err
	}
	tok, _, err := c.getToken(ctx, &opts)
	return tok, err
}

func (c *EasyAuthOBOCredential) getToken(ctx context.Context, opts *policy.TokenRequestOptions) (azcore.AccessToken, tokencache.Served, error) {
	a := c.app
	tenant, err := c.tenant(opts.TenantID)
	if err != nil {
		a.meter.Add(ctx, metrics.TokenRequests, "", metrics.Failure)
		return azcore.AccessToken{}, tokencache.Served{}, entra.NonRetriable(err)
	}
	key := tokencache.Key{Tenant: tenant, CAE: opts.EnableCAE}
	switch len(opts.Scopes) {
	case 0:
		a.meter.Add(ctx, metrics.TokenRequests, "", metrics.Failure)
		return azcore.AccessToken{}, tokencache.Served{}, entra.NonRetriable(fmt.Errorf("obo: %s.GetToken: %w: no scope given (for example %q)", credName, assertion.ErrInvalidOptions, "https://storage.azure.com/user_impersonation"))
	case 1:
		key.Scopes = opts.Scopes[0]
	default:
		key.Scopes = strings.Join(opts.Scopes, " ")
	}
	if opts.Claims == "" {
		if s := c.entry.tokens.Lookup(key); s != nil {
			if tok, ok := s.FreshNow(); ok {
				if a.meter.R != nil || a.logger != nil {
					c.hit(ctx, &key)
				}
				return tok, tokencache.Served{Source: tokencache.SourceCache}, nil
			}
		}
	}
	tok, served, err := c.slow(ctx, key, opts)
	switch {
	case err != nil:
		a.meter.Add(ctx, metrics.TokenRequests, metrics.SourceEntra, metrics.Failure)
		return tok, served, a.forCaller(err)
	case served.Source == tokencache.SourceCache:
		if a.meter.R != nil || a.logger != nil {
			c.hit(ctx, &key)
		}
	default:
		a.meter.Add(ctx, metrics.TokenRequests, metering.Source(served.Source), metrics.Success)
	}
	return tok, served, nil
}

// hit records a GetToken answered from the App's cache: TokenRequests (memory) and, at Debug, the
// record that stands for azidentity's Authentication event of each successful GetToken.
func (c *EasyAuthOBOCredential) hit(ctx context.Context, k *tokencache.Key) {
	a := c.app
	a.meter.Add(ctx, metrics.TokenRequests, metrics.SourceMemory, metrics.Success)
	if a.logger != nil && a.logger.Enabled(ctx, slog.LevelDebug) {
		entra.Cached(ctx, a.logger, credName, a.clientID, k.Tenant, k.Scopes, userAttrs(c.entry.claims)...)
	}
}

func (c *EasyAuthOBOCredential) slow(ctx context.Context, key tokencache.Key, opts *policy.TokenRequestOptions) (azcore.AccessToken, tokencache.Served, error) {
	a := c.app
	s := c.entry.tokens.Slot(key)
	if !a.now().Before(c.entry.claims.Expires) {
		// A cached OBO token may outlive the user token, but a new exchange cannot succeed. A
		// claims challenge was raised against the cached token: never answer it with that token.
		if tok, ok := s.Fresh(a.now()); ok && opts.Claims == "" {
			return tok, tokencache.Served{Source: tokencache.SourceCache}, nil
		}
		return azcore.AccessToken{}, tokencache.Served{}, entra.NonRetriable(fmt.Errorf("obo: %w (at %s): the client must sign in again or refresh its token", ErrUserTokenExpired, c.entry.claims.Expires.UTC().Format("2006-01-02T15:04:05Z07:00")))
	}
	req := entra.Request{Tenant: key.Tenant, Scopes: append([]string(nil), opts.Scopes...), Claims: opts.Claims, CAE: opts.EnableCAE, UserAssertion: c.userToken}
	p := &tokencache.Policy{Now: a.now, Observe: a.meter.Observer(entra.Observer(a.logger, credName, a.clientID, key.Tenant, key.Scopes, userAttrs(c.entry.claims)...))}
	fetch := func(ctx context.Context) (azcore.AccessToken, error) {
		r := req
		if cur, ok := s.Current(); ok {
			r.Avoid = cur.Token
		}
		return a.acquire(ctx, r)
	}
	if a.shared != nil {
		fetch = a.shared.fetch(s, c.userToken, key, opts.Claims != "", a.now, fetch)
	}
	// fromEntra runs for each caller, on the caller's own copy of a shared failure
	// (tokencache.PerCaller).
	var (
		tok    azcore.AccessToken
		served tokencache.Served
		err    error
	)
	if opts.Claims != "" {
		tok, served, err = s.ReplaceServed(ctx, p, fetch)
	} else {
		tok, served, err = s.GetServed(ctx, p, fetch)
	}
	return tok, served, entra.Waited(ctx, credName, a.clientID, key.Tenant, key.Scopes, fromEntra(err, req.Scopes))
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
