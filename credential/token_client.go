package credential

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/internal/entra"
	"github.com/azcredkit/azcredkit/internal/metering"
	"github.com/azcredkit/azcredkit/internal/tokencache"
	"github.com/azcredkit/azcredkit/metrics"
)

// ErrInvalidScopes is returned by GetToken for missing scopes or scopes an app-only request
// cannot use.
var ErrInvalidScopes = errors.New("invalid scopes")

// tokenClient is what every credential of this package shares: tenant rules, the token cache in
// front of MSAL, logging, spans and metrics. The "reload the certificate and retry once" rule
// lives in entra.Client.Acquire, fed by the provider's assertion.RejectionHandler.
type tokenClient struct {
	client *entra.Client
	home   string
	cache  tokencache.Map
	logger *slog.Logger
	tracer *entra.Tracer
	span   string // the span name, "{Credential}.GetToken"
	meter  metering.Meter
	// certificate returns the certificate the assertions present (for the days-to-expiry gauge);
	// nil when there is none (a federated credential).
	certificate func() *x509.Certificate
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
	t := &tokenClient{client: c, home: tenantID, logger: o.Logger, tracer: c.Tracer(), span: entra.SpanName(name),
		meter: metering.Meter{R: o.Metrics, Credential: name}}
	if p, ok := provider.(interface{ Certificate() *x509.Certificate }); ok {
		t.certificate = p.Certificate
	}
	return t, nil
}

// getToken serves a cached token when fresh (no lock, no allocation) and otherwise goes through
// the token cache's slow path. The common case (home tenant, one scope, the same as last time) is
// two string comparisons and a monotonic clock read. With a TracingProvider, the call is a span
// (see getTokenTraced); with a metrics.Recorder, it counts in TokenRequests.
func (t *tokenClient) getToken(ctx context.Context, opts *policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if t.tracer.Enabled() {
		return t.getTokenTraced(ctx, opts)
	}
	if opts.Claims == "" && len(opts.Scopes) == 1 && (opts.TenantID == "" || opts.TenantID == t.home) {
		if l := t.last.Load(); l != nil && l.key.Scopes == opts.Scopes[0] && l.key.Tenant == t.home && l.key.CAE == opts.EnableCAE {
			if tok, ok := l.slot.FreshNow(); ok {
				if t.meter.R != nil || t.logger != nil {
					t.hit(ctx, &l.key)
				}
				return tok, nil
			}
		}
	}
	tok, _, err := t.getTokenSlow(ctx, opts)
	return tok, err
}

// getTokenTraced is getToken inside a span "{Credential}.GetToken" (kind internal,
// az.namespace=Microsoft.Entra), a child of ctx's span, with the cache that answered and why a
// token was fetched, or the error status and Entra's AADSTS code. Entra's and Key Vault's HTTP
// spans of the call are its children: the work runs under the span's context (a shared fetch
// under context.WithoutCancel of it).
func (t *tokenClient) getTokenTraced(ctx context.Context, opts *policy.TokenRequestOptions) (azcore.AccessToken, error) {
	ctx, span := t.tracer.Start(ctx, t.span)
	tok, served, err := t.getTokenSlow(ctx, opts)
	span.End(served, err)
	return tok, err
}

// hit records a GetToken answered from the cache: TokenRequests (memory) and the Debug record
// that stands for azidentity's Authentication event of each successful GetToken.
func (t *tokenClient) hit(ctx context.Context, k *tokencache.Key) {
	t.meter.Add(ctx, metrics.TokenRequests, metrics.SourceMemory, metrics.Success)
	if t.logger != nil {
		entra.Cached(ctx, t.logger, t.client.Credential(), t.client.ClientID(), k.Tenant, k.Scopes)
	}
}

func (t *tokenClient) getTokenSlow(ctx context.Context, opts *policy.TokenRequestOptions) (azcore.AccessToken, tokencache.Served, error) {
	tenant, err := t.client.ResolveTenant(opts.TenantID)
	if err != nil {
		return t.refused(ctx, entra.NonRetriable(optionsError{err}))
	}
	key := tokencache.Key{Tenant: tenant, CAE: opts.EnableCAE}
	switch len(opts.Scopes) {
	case 0:
		return t.refused(ctx, entra.NonRetriable(fmt.Errorf("%s: GetToken: %w: no scope given (for example https://vault.azure.net/.default)", t.client.Credential(), ErrInvalidScopes)))
	case 1:
		key.Scopes = opts.Scopes[0]
	default:
		key.Scopes = strings.Join(opts.Scopes, " ")
	}
	for _, s := range opts.Scopes {
		if !strings.HasSuffix(s, "/.default") {
			return t.refused(ctx, entra.NonRetriable(fmt.Errorf("%s: GetToken: %w: %q: an app (client credentials) token needs a resource scope ending in \"/.default\", for example %q",
				t.client.Credential(), ErrInvalidScopes, s, defaultScope(s))))
		}
	}
	if opts.Claims == "" {
		if s := t.cache.Lookup(key); s != nil {
			if tok, ok := s.FreshNow(); ok {
				if t.meter.R != nil || t.logger != nil {
					t.hit(ctx, &key)
				}
				return tok, tokencache.Served{Source: tokencache.SourceCache}, nil
			}
		}
	}
	tok, served, err := t.slow(ctx, key, opts)
	switch {
	case err != nil:
		t.meter.Add(ctx, metrics.TokenRequests, metrics.SourceEntra, metrics.Failure)
	case served.Source == tokencache.SourceCache:
		if t.meter.R != nil || t.logger != nil {
			t.hit(ctx, &key)
		}
	default:
		t.meter.Add(ctx, metrics.TokenRequests, metering.Source(served.Source), metrics.Success)
	}
	return tok, served, err
}

// refused counts and returns a request refused before anything was asked (bad scopes, a tenant
// the options do not allow).
func (t *tokenClient) refused(ctx context.Context, err error) (azcore.AccessToken, tokencache.Served, error) {
	t.meter.Add(ctx, metrics.TokenRequests, "", metrics.Failure)
	return azcore.AccessToken{}, tokencache.Served{}, err
}

type keyedSlot struct {
	key  tokencache.Key
	slot *tokencache.Slot
}

func (t *tokenClient) slow(ctx context.Context, key tokencache.Key, opts *policy.TokenRequestOptions) (azcore.AccessToken, tokencache.Served, error) {
	req := entra.Request{Tenant: key.Tenant, Scopes: append([]string(nil), opts.Scopes...), Claims: opts.Claims, CAE: opts.EnableCAE}
	p := &tokencache.Policy{Observe: t.observer(key.Tenant, key.Scopes)}
	fetch := func(ctx context.Context) (azcore.AccessToken, error) { return t.acquire(ctx, req) }
	s := t.cache.Slot(key)
	t.last.Store(&keyedSlot{key: key, slot: s})
	var (
		tok    azcore.AccessToken
		served tokencache.Served
		err    error
	)
	if opts.Claims != "" {
		// A claims challenge (CAE, conditional access) means the cached token was refused:
		// bypass it and cache the new one.
		tok, served, err = s.ReplaceServed(ctx, p, fetch)
	} else {
		tok, served, err = s.GetServed(ctx, p, fetch)
	}
	return tok, served, entra.Waited(ctx, t.client.Credential(), t.client.ClientID(), key.Tenant, key.Scopes, err)
}

// acquire sends one token request to Entra, measuring it (TokenAcquisitions,
// TokenAcquisitionDuration) and the certificate's days to expiry.
func (t *tokenClient) acquire(ctx context.Context, req entra.Request) (azcore.AccessToken, error) {
	if t.meter.R == nil {
		return t.client.Acquire(ctx, req)
	}
	start := time.Now()
	tok, err := t.client.Acquire(ctx, req)
	t.meter.Acquired(ctx, start, err)
	if t.certificate != nil {
		if c := t.certificate(); c != nil {
			t.meter.Set(ctx, metrics.CertificateDaysToExpiry, daysLeft(c, time.Now()))
		}
	}
	return tok, err
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
