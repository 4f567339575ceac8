// Package entra talks to Microsoft Entra ID through MSAL Go's confidential client: it builds the
// client (authority, instance discovery, CAE capabilities), sends MSAL's HTTP traffic through an
// azcore pipeline (retries, azcore/log, custom transports), keeps MSAL stateless (the caller's
// token cache sits in front), resolves tenants as azidentity does, and converts failures into
// *Error.
package entra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/cache"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"

	"github.com/azcredkit/azcredkit/internal/panics"
)

const (
	module  = "github.com/azcredkit/azcredkit"
	version = "v0.1.0"
)

// Config configures a Client.
type Config struct {
	// Credential is the credential type's name, for errors and logs.
	Credential string
	TenantID   string
	ClientID   string
	// Cred authenticates the app with a client secret (confidential.NewCredFromSecret). Set Cred
	// or Assertion.
	Cred confidential.Credential
	// Assertion, when set, authenticates the app with client assertions: it returns a signed
	// assertion whose audience is the token endpoint. It is called with the context of Acquire.
	Assertion func(ctx context.Context, audience string) (string, error)
	// AssertionRejected, when set with Assertion, is called when Entra refused a request because
	// of its client assertion's certificate (Error.IsCertificateError: AADSTS700027, 700024,
	// 7000214, 1000502, 7000274, 7000277), with the assertion that request sent and Entra's
	// error. When it returns true the request is sent once more (with a new assertion); when it
	// fails, its error is logged and Entra's is returned. It is the assertion.RejectionHandler of
	// the provider: the one place where "reload the certificate and retry once" happens, for the
	// credentials and for On-Behalf-Of alike.
	AssertionRejected func(ctx context.Context, assertion string, rejection error) (retry bool, err error)
	// Logger receives the records of retries after a rejection (never a token or assertion).
	// Optional.
	Logger                     *slog.Logger
	ClientOptions              azcore.ClientOptions
	AdditionallyAllowedTenants []string
	DisableInstanceDiscovery   bool
	// RecycleAfter replaces the MSAL clients after this many On-Behalf-Of acquisitions (0:
	// never). MSAL keeps every user's OBO token in a cache that WithCache cannot clear; a fresh
	// client bounds that memory. The caller's own bounded cache is the real cache.
	RecycleAfter int64
}

// Client acquires tokens for one app. It is safe for concurrent use and, unlike azidentity, does
// not serialize requests: the token cache in front of it already collapses duplicates.
type Client struct {
	cfg      Config
	host     string
	allowed  []string
	pipeline runtime.Pipeline

	mu         sync.Mutex
	cae, noCAE *confidential.Client
	oboCalls   atomic.Int64

	tracer Tracer
}

// ErrInvalidTenantID is returned for a tenant ID with characters other than letters, digits,
// '-' and '.'.
var ErrInvalidTenantID = errors.New("invalid tenant ID: it may contain only letters, digits, '-' and '.'; find it in the Azure portal under Microsoft Entra ID > Overview")

// CheckIDs validates a tenant ID and a client ID, reporting every problem (both may be missing).
// Errors wrap ErrInvalidTenantID when the tenant ID is wrong.
func CheckIDs(credential, tenantID, clientID string) error {
	var problems []string
	badTenant := !ValidTenantID(tenantID)
	if badTenant {
		if tenantID == "" {
			problems = append(problems, "tenant ID is empty")
		} else {
			problems = append(problems, fmt.Sprintf("tenant %q", tenantID))
		}
	}
	if clientID == "" {
		problems = append(problems, "client ID is empty: set it to the application (client) ID of the app registration")
	}
	switch {
	case badTenant && len(problems) == 2:
		return fmt.Errorf("%s: %s: %w; and %s", credential, problems[0], ErrInvalidTenantID, problems[1])
	case badTenant:
		return fmt.Errorf("%s: %s: %w", credential, problems[0], ErrInvalidTenantID)
	case len(problems) > 0:
		return fmt.Errorf("%s: %s", credential, problems[0])
	}
	return nil
}

// NewClient validates cfg and returns a Client. It does no I/O.
func NewClient(cfg Config) (*Client, error) {
	if err := CheckIDs(cfg.Credential, cfg.TenantID, cfg.ClientID); err != nil {
		return nil, err
	}
	host, err := AuthorityHost(cfg.ClientOptions.Cloud)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Credential, err)
	}
	opts := cfg.ClientOptions
	// Token request and response bodies hold assertions, secrets and tokens: never log them.
	opts.Logging.IncludeBody = false
	pl := runtime.NewPipeline(module, version, runtime.PipelineOptions{}, &opts)
	c := &Client{cfg: cfg, host: host, allowed: resolveAdditionalTenants(cfg.AdditionallyAllowedTenants), pipeline: pl,
		tracer: NewTracer(opts.TracingProvider)}
	if cfg.Assertion != nil {
		c.cfg.Cred = confidential.NewCredFromAssertionCallback(c.assertion)
	}
	return c, nil
}

// sentKey is the context key of the *sent of one Acquire.
type sentKey struct{}

// sent records the client assertion that one request sent (MSAL calls the assertion callback with
// the context given to it), so that a rejection is reported with the assertion it rejected.
type sent struct {
	mu        sync.Mutex
	assertion string
}

func (s *sent) set(a string) {
	s.mu.Lock()
	s.assertion = a
	s.mu.Unlock()
}

func (s *sent) get() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.assertion
}

// assertion is MSAL's assertion callback: it asks Config.Assertion, turns a panic into an error
// and records the assertion for this request.
func (c *Client) assertion(ctx context.Context, o confidential.AssertionRequestOptions) (a string, err error) {
	defer panics.Recover("the client assertion provider", &err)
	a, err = c.cfg.Assertion(ctx, o.TokenEndpoint)
	if err == nil {
		if s, ok := ctx.Value(sentKey{}).(*sent); ok {
			s.set(a)
		}
	}
	return a, err
}

// AuthorityHost returns the authority host of c (default: public cloud, or AZURE_AUTHORITY_HOST)
// with a trailing slash; it must be https.
func AuthorityHost(c cloud.Configuration) (string, error) {
	host := c.ActiveDirectoryAuthorityHost
	if host == "" {
		host = cloud.AzurePublic.ActiveDirectoryAuthorityHost
		if env := os.Getenv("AZURE_AUTHORITY_HOST"); env != "" {
			host = env
		}
	}
	u, err := url.Parse(host)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("authority host %q is not a URL", host)
	}
	if u.Scheme != "https" {
		return "", fmt.Errorf("authority host %q must use https", host)
	}
	if !strings.HasSuffix(host, "/") {
		host += "/"
	}
	return host, nil
}

// Tracer returns the tracer of the GetToken spans (ClientOptions.TracingProvider).
func (c *Client) Tracer() *Tracer { return &c.tracer }

// HomeTenant returns the tenant the client was configured with.
func (c *Client) HomeTenant() string { return c.cfg.TenantID }

// ClientID returns the app's client ID.
func (c *Client) ClientID() string { return c.cfg.ClientID }

// Credential returns the credential name.
func (c *Client) Credential() string { return c.cfg.Credential }

// TokenEndpoint returns the v2 token endpoint of tenant: the audience of client assertions.
func (c *Client) TokenEndpoint(tenant string) string {
	return c.host + tenant + "/oauth2/v2.0/token"
}

// ResolveTenant returns the tenant for a request that asked for specified ("" = home tenant),
// applying AdditionallyAllowedTenants exactly as azidentity does.
func (c *Client) ResolveTenant(specified string) (string, error) {
	home := c.cfg.TenantID
	if specified == "" || specified == home {
		return home, nil
	}
	if !ValidTenantID(specified) {
		return "", fmt.Errorf("%s: requested tenant %q: %w", c.cfg.Credential, specified, ErrInvalidTenantID)
	}
	for _, t := range c.allowed {
		if t == "*" || t == specified {
			return specified, nil
		}
	}
	return "", fmt.Errorf(`%s isn't configured to acquire tokens for tenant %q: add it to AdditionallyAllowedTenants in the credential options, or add "*" to allow any tenant`, c.cfg.Credential, specified)
}

// ValidTenantID reports whether id is a syntactically valid tenant ID or domain.
func ValidTenantID(id string) bool {
	if id == "" {
		return false
	}
	for _, r := range id {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || r == '.' || r == '-') {
			return false
		}
	}
	return true
}

func resolveAdditionalTenants(tenants []string) []string {
	for _, t := range tenants {
		if t == "*" {
			return []string{"*"}
		}
	}
	return append([]string(nil), tenants...)
}

// Request is one token request.
type Request struct {
	Tenant string
	Scopes []string
	Claims string
	CAE    bool
	// UserAssertion, when set, makes it an On-Behalf-Of request for that user access token.
	UserAssertion string
	// Avoid is the token the caller already holds: if MSAL answers with it from its own OBO
	// cache, the request is sent again on fresh MSAL clients, so that a refresh is a refresh.
	Avoid string
}

// Acquire sends the request to Entra (MSAL's own cache is disabled) and returns the token or a
// converted error (see Convert). When Entra rejects the client assertion's certificate and
// Config.AssertionRejected says a new assertion may succeed, the request is sent once more.
func (c *Client) Acquire(ctx context.Context, r Request) (azcore.AccessToken, error) {
	tok, assertion, err := c.acquireOnce(ctx, r)
	var ee *Error
	if err == nil || c.cfg.AssertionRejected == nil || assertion == "" || !errors.As(err, &ee) || !ee.IsCertificateError() {
		return tok, err
	}
	retry, herr := c.assertionRejected(ctx, assertion, ee)
	if herr != nil {
		Log(c.cfg.Logger, slog.LevelWarn, c.cfg.Credential, "Microsoft Entra ID rejected the client assertion's certificate, and reloading the certificate failed",
			slog.Int("aadsts", ee.AADSTS), slog.String("tenant", r.Tenant), slog.String("error", herr.Error()))
		return tok, err
	}
	if !retry {
		return tok, err
	}
	Log(c.cfg.Logger, slog.LevelInfo, c.cfg.Credential, "Microsoft Entra ID rejected the client assertion's certificate; retrying once with the current certificate",
		slog.Int("aadsts", ee.AADSTS), slog.String("tenant", r.Tenant), slog.String("rejected_thumbprint", ee.Thumbprint))
	tok, _, err = c.acquireOnce(ctx, r)
	return tok, err
}

// assertionRejected calls Config.AssertionRejected, turning a panic into an error.
func (c *Client) assertionRejected(ctx context.Context, assertion string, rejection *Error) (retry bool, err error) {
	defer panics.Recover("the assertion provider's rejection handler", &err)
	return c.cfg.AssertionRejected(ctx, assertion, rejection)
}

// acquireOnce sends the request once; it returns the client assertion it sent (if any).
func (c *Client) acquireOnce(ctx context.Context, r Request) (azcore.AccessToken, string, error) {
	var s *sent
	if c.cfg.Assertion != nil {
		s = &sent{}
		ctx = context.WithValue(ctx, sentKey{}, s)
	}
	tok, err := c.acquire(ctx, r)
	assertion := ""
	if s != nil {
		assertion = s.get()
	}
	var ee *Error
	if err != nil && assertion != "" && errors.As(err, &ee) {
		ee.setAssertion(assertion)
	}
	return tok, assertion, err
}

func (c *Client) acquire(ctx context.Context, r Request) (azcore.AccessToken, error) {
	mc, err := c.msal(r.CAE)
	if err != nil {
		return azcore.AccessToken{}, NonRetriable(fmt.Errorf("%s: %w", c.cfg.Credential, err))
	}
	var ar confidential.AuthResult
	if r.UserAssertion != "" {
		if n := c.cfg.RecycleAfter; n > 0 && c.oboCalls.Add(1)%n == 0 {
			c.recycle()
		}
		ar, err = mc.AcquireTokenOnBehalfOf(ctx, r.UserAssertion, r.Scopes, confidential.WithTenantID(r.Tenant), confidential.WithClaims(r.Claims))
		if err == nil && r.Avoid != "" && ar.AccessToken == r.Avoid {
			c.recycle()
			if mc, err = c.msal(r.CAE); err == nil {
				ar, err = mc.AcquireTokenOnBehalfOf(ctx, r.UserAssertion, r.Scopes, confidential.WithTenantID(r.Tenant), confidential.WithClaims(r.Claims))
			}
		}
	} else {
		ar, err = mc.AcquireTokenByCredential(ctx, r.Scopes, confidential.WithTenantID(r.Tenant), confidential.WithClaims(r.Claims))
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w (%v)", ctxErr, err)
		}
		return azcore.AccessToken{}, Convert(c.cfg.Credential, c.cfg.ClientID, r.Tenant, r.Scopes, err)
	}
	tok := azcore.AccessToken{Token: ar.AccessToken, ExpiresOn: ar.ExpiresOn.UTC()}
	if !ar.Metadata.RefreshOn.IsZero() {
		tok.RefreshOn = ar.Metadata.RefreshOn.UTC()
	}
	return tok, nil
}

// recycle drops the MSAL clients (and their caches); the next request builds new ones.
func (c *Client) recycle() {
	c.mu.Lock()
	c.cae, c.noCAE = nil, nil
	c.mu.Unlock()
}

func (c *Client) msal(cae bool) (*confidential.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := &c.noCAE
	if cae {
		p = &c.cae
	}
	if *p != nil {
		return *p, nil
	}
	opts := []confidential.Option{
		confidential.WithHTTPClient(pipelineAdapter{c.pipeline}),
		confidential.WithCache(noCache{}),
		confidential.WithInstanceDiscovery(!c.cfg.DisableInstanceDiscovery),
	}
	if cae {
		opts = append(opts, confidential.WithClientCapabilities([]string{"cp1"}))
	}
	mc, err := confidential.New(c.host+c.cfg.TenantID, c.cfg.ClientID, c.cfg.Cred, opts...)
	if err != nil {
		return nil, err
	}
	*p = &mc
	return *p, nil
}

// pipelineAdapter sends MSAL's requests through the azcore pipeline. It marks the failures to
// reach Entra (see sendError) and checks 200 answers of the token endpoint before MSAL decodes
// them (see checkTokenResponse).
type pipelineAdapter struct{ pl runtime.Pipeline }

func (a pipelineAdapter) Do(r *http.Request) (*http.Response, error) {
	req, err := runtime.NewRequestFromRequest(r)
	if err != nil {
		return nil, &sendError{host: r.URL.Host, err: err}
	}
	resp, err := a.pl.Do(req)
	if err != nil {
		return nil, &sendError{host: r.URL.Host, err: err}
	}
	if resp.StatusCode == http.StatusOK && r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/token") {
		if err := checkTokenResponse(resp); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

func (pipelineAdapter) CloseIdleConnections() {}

// noCache makes MSAL stateless: every Replace loads an empty cache, so every acquisition goes
// to Entra. The caller's cache (tokencache) decides when that happens: MSAL's would hand back
// the token being refreshed, and treats tokens with under 5 minutes left as expired.
type noCache struct{}

// MSAL's On-Behalf-Of (partitioned) cache cannot be emptied this way: its Unmarshal fails, and the
// error is ignored. Config.RecycleAfter and Request.Avoid deal with that cache.
func (noCache) Replace(_ context.Context, u cache.Unmarshaler, _ cache.ReplaceHints) error {
	_ = u.Unmarshal([]byte("{}"))
	return nil
}

func (noCache) Export(context.Context, cache.Marshaler, cache.ExportHints) error { return nil }
