package credential

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/internal/entra"
	"github.com/azcredkit/azcredkit/internal/tokencache"
)

// ErrInvalidScopes is returned by GetToken for missing scopes or scopes an app-only request
// cannot use.
var ErrInvalidScopes = errors.New("invalid scopes")

// tokenClient is what every credential of this package shares: tenant rules, the token cache in
// front of MSAL, and logging. The "reload the certificate and retry once" rule lives in
// entra.Client.Acquire, fed by the provider's assertion.RejectionHandler.
type tokenClient struct {
	client *entra.Client
	home   string
	cache  tokencache.Map
	logger *slog.Logger
	// last is the slot of the last slow-path request: most services ask for one tenant and
	// scope, and comparing two strings is cheaper than hashing them.
	last atomic.Pointer[keyedSlot]
}

// newTokenClient authenticates with assertions from provider; when provider implements
// assertion.RejectionHandler, Entra's rejections of its certificate reach it.
func newTokenClient(name, tenantID, clientID string, provider assertion.Provider, o *SignedAssertionCredentialOptions) (*tokenClient, error) {
	cfg := entra.Config{
		Credential:                 name,
		TenantID:                   tenantID,
		ClientID:                   clientID,
		Assertion:                  provider.Assertion,
		Logger:                     o.Logger,
		ClientOptions:              o.ClientOptions,
		AdditionallyAllowedTenants: o.AdditionallyAllowedTenants,
		DisableInstanceDiscovery:   o.DisableInstanceDiscovery,
	}
	if h, ok := provider.(assertion.RejectionHandler); ok {
		cfg.AssertionRejected = h.AssertionRejected
	}
	c, err := entra.NewClient(cfg)
	if err != nil {
		return nil, optionsError{err}
	}
	return &tokenClient{client: c, home: tenantID, logger: o.Logger}, nil
}

// getToken serves a cached token when fresh (no lock, no allocation) and otherwise goes through
// the token cache's slow path. The common case (home tenant, one scope, the same as last time) is
// two string comparisons and a monotonic clock read.
func (t *tokenClient) getToken(ctx context.Context, opts *policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if opts.Claims == "" && len(opts.Scopes) == 1 && (opts.TenantID == "" || opts.TenantID == t.home) {
		if l := t.last.Load(); l != nil && l.key.Scopes == opts.Scopes[0] && l.key.Tenant == t.home && l.key.CAE == opts.EnableCAE {
			if tok, ok := l.slot.FreshNow(); ok {
				return tok, nil
			}
		}
	}
	return t.getTokenSlow(ctx, opts)
}

func (t *tokenClient) getTokenSlow(ctx context.Context, opts *policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tenant, err := t.client.ResolveTenant(opts.TenantID)
	if err != nil {
		return azcore.AccessToken{}, entra.NonRetriable(optionsError{err})
	}
	key := tokencache.Key{Tenant: tenant, CAE: opts.EnableCAE}
	switch len(opts.Scopes) {
	case 0:
		return azcore.AccessToken{}, entra.NonRetriable(fmt.Errorf("%s: GetToken: %w: no scope given (for example https://vault.azure.net/.default)", t.client.Credential(), ErrInvalidScopes))
	case 1:
		key.Scopes = opts.Scopes[0]
	default:
		key.Scopes = strings.Join(opts.Scopes, " ")
	}
	if opts.Claims == "" {
		if s := t.cache.Lookup(key); s != nil {
			if tok, ok := s.FreshNow(); ok {
				return tok, nil
			}
		}
	}
	return t.slow(ctx, key, opts)
}

type keyedSlot struct {
	key  tokencache.Key
	slot *tokencache.Slot
}

func (t *tokenClient) slow(ctx context.Context, key tokencache.Key, opts *policy.TokenRequestOptions) (azcore.AccessToken, error) {
	for _, s := range opts.Scopes {
		if !strings.HasSuffix(s, "/.default") {
			return azcore.AccessToken{}, entra.NonRetriable(fmt.Errorf("%s: GetToken: %w: %q: an app (client credentials) token needs a resource scope ending in \"/.default\", for example %q",
				t.client.Credential(), ErrInvalidScopes, s, defaultScope(s)))
		}
	}
	req := entra.Request{Tenant: key.Tenant, Scopes: append([]string(nil), opts.Scopes...), Claims: opts.Claims, CAE: opts.EnableCAE}
	p := &tokencache.Policy{Observe: entra.Observer(t.logger, t.client.Credential(), t.client.ClientID(), key.Tenant, key.Scopes)}
	fetch := func(ctx context.Context) (azcore.AccessToken, error) { return t.client.Acquire(ctx, req) }
	s := t.cache.Slot(key)
	t.last.Store(&keyedSlot{key: key, slot: s})
	if opts.Claims != "" {
		// A claims challenge (CAE, conditional access) means the cached token was refused:
		// bypass it and cache the new one.
		tok, err := s.Replace(ctx, p, fetch)
		return tok, entra.Waited(ctx, t.client.Credential(), t.client.ClientID(), key.Tenant, key.Scopes, err)
	}
	tok, err := s.Get(ctx, p, fetch)
	return tok, entra.Waited(ctx, t.client.Credential(), t.client.ClientID(), key.Tenant, key.Scopes, err)
}

// defaultScope is the app-token scope of the resource that scope belongs to: a delegated scope
// such as https://storage.azure.com/user_impersonation belongs to https://storage.azure.com, whose
// app token scope is https://storage.azure.com/.default.
func defaultScope(scope string) string {
	s := strings.TrimRight(scope, "/")
	rest, authority := s, ""
	if i := strings.Index(s, "://"); i >= 0 {
		j := strings.IndexByte(s[i+3:], '/')
		if j < 0 {
			return s + "/.default" // a resource URI without a path
		}
		authority, rest = s[:i+3+j], s[i+3+j:]
	}
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		return authority + rest[:i] + "/.default" // drop the permission
	}
	if authority == "" {
		// A bare permission (User.Read, Mail.Send...) is Microsoft Graph's.
		return "https://graph.microsoft.com/.default"
	}
	return s + "/.default"
}
