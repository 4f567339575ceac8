package credential

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/internal/entra"
	"github.com/azcredkit/azcredkit/metrics"
)

const credNameSignedAssertion = "SignedAssertionCredential"

// SignedAssertionCredentialOptions are shared by the credentials in this package. The zero value
// (or nil) is the default: public cloud, home tenant only, instance discovery on.
type SignedAssertionCredentialOptions struct {
	azcore.ClientOptions // the pipeline to Microsoft Entra ID (Cloud, Transport, Retry...)
	// AdditionallyAllowedTenants are tenants GetToken may target via TokenRequestOptions.TenantID
	// ("*" = any), as in azidentity. Optional; by default only the home tenant.
	AdditionallyAllowedTenants []string
	// DisableInstanceDiscovery: as in azidentity (sovereign/private clouds, emulators). Optional.
	DisableInstanceDiscovery bool
	// SendCertificateChain adds the x5c header (subject name + issuer authentication). Optional.
	SendCertificateChain bool
	// AssertionLifetime is the lifetime of each client assertion: 0 means 10 minutes; 1 minute to
	// 1 hour. A signed assertion is reused while half of it remains. Optional.
	AssertionLifetime time.Duration
	// Logger receives what a person debugging authentication needs (token acquired, refreshed,
	// failed with its AADSTS code; tenant, scopes, expiry; certificate loads, rotations and
	// expiry warnings; at Debug, each GetToken answered from the cache), never a token, assertion
	// or key. Optional; nil logs nothing. HTTP traffic is logged by azcore/log as usual (bodies
	// never); package azlog forwards these records to an azcore/log listener.
	Logger *slog.Logger
	// Metrics receives the credential's measurements: GetToken calls by source (the cache hit
	// ratio), token requests to Entra and their latency, refresh outcomes, Key Vault reads and
	// sign operations, certificate rotations and days to expiry (see package metrics; package
	// otelmetrics, a module of its own, adapts OpenTelemetry). Optional; nil measures nothing.
	Metrics metrics.Recorder
}

// SignedAssertionCredential authenticates an app (service principal) to Microsoft Entra ID with
// RFC 7523 client assertions: identified by a certificate registered on the app and signed by an
// assertion.Signer (a local key, Key Vault, or your own). It implements azcore.TokenCredential
// (use it with any Azure SDK for Go client) and assertion.Provider (for obo.NewAppWithAssertion).
//
// Tokens are cached per tenant, scopes and CAE: a cached token is returned without locks or
// allocations, concurrent callers share one request, and tokens are refreshed in the background
// before they expire.
type SignedAssertionCredential struct {
	builder *assertion.Builder
	tc      *tokenClient
}

// NewSignedAssertionCredential authenticates clientID in tenantID with assertions identified by
// chain[0] and signed by signer (a local key, Key Vault, or the user's own Signer).
func NewSignedAssertionCredential(tenantID, clientID string, chain []*x509.Certificate, signer assertion.Signer, options *SignedAssertionCredentialOptions) (*SignedAssertionCredential, error) {
	return newSignedAssertionCredential(credNameSignedAssertion, tenantID, clientID, chain, signer, options)
}

// newSignedAssertionCredential is NewSignedAssertionCredential with name in errors and logs.
func newSignedAssertionCredential(name, tenantID, clientID string, chain []*x509.Certificate, signer assertion.Signer, options *SignedAssertionCredentialOptions) (*SignedAssertionCredential, error) {
	if err := entra.CheckIDs(name, tenantID, clientID); err != nil {
		return nil, optionsError{err}
	}
	o := options
	if o == nil {
		o = &SignedAssertionCredentialOptions{}
	}
	b, err := assertion.NewBuilder(clientID, chain, signer, &assertion.BuilderOptions{SendCertificateChain: o.SendCertificateChain, Lifetime: o.AssertionLifetime})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c := &SignedAssertionCredential{builder: b}
	c.tc, err = newTokenClient(name, tenantID, clientID, b, o)
	if err != nil {
		return nil, err
	}
	cert := b.Certificate()
	certificateLoaded(context.Background(), c.tc.meter, o.Logger, cert, slog.String("thumbprint", assertion.Thumbprint(cert)))
	return c, nil
}

// GetToken returns an access token for opts.Scopes (one resource scope ending in "/.default").
// It implements azcore.TokenCredential.
func (c *SignedAssertionCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return c.tc.getToken(ctx, &opts)
}

// Assertion returns a signed client assertion for audience. It implements assertion.Provider.
func (c *SignedAssertionCredential) Assertion(ctx context.Context, audience string) (string, error) {
	return c.builder.Assertion(ctx, audience)
}

var (
	_ azcore.TokenCredential = (*SignedAssertionCredential)(nil)
	_ assertion.Provider     = (*SignedAssertionCredential)(nil)
)
