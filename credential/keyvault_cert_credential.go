package credential

import (
	"context"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/internal/entra"
	"github.com/azcredkit/azcredkit/internal/metering"
	"github.com/azcredkit/azcredkit/keyvault"
)

const credNameKeyVaultCert = "KeyVaultCertCredential"

// KeyVaultCertCredentialOptions configure NewKeyVaultCertCredential. nil means the defaults.
type KeyVaultCertCredentialOptions struct {
	SignedAssertionCredentialOptions
	// Vault is the pipeline to Key Vault (Transport, Retry, DisableChallengeResourceVerification...).
	// Optional.
	Vault keyvault.ClientOptions
	// RotationCheckInterval is how often an unpinned certificate URL is re-read for a new version:
	// 0 means DefaultRotationCheckInterval (1 hour), a negative value never (only when Entra
	// rejects the certificate). Re-reads happen in the background, only while tokens are
	// requested. Optional.
	RotationCheckInterval time.Duration
}

// KeyVaultCertCredential authenticates an app with a certificate whose exportable private key
// lives in Key Vault: it reads the certificate's secret (PKCS#12 or PEM) with vaultCredential —
// for example a managed identity, even in another tenant than the app — and signs client
// assertions locally.
//
// It loads the certificate on the first GetToken (one read for all concurrent callers), follows
// rotation of an unpinned certificate (re-read once per RotationCheckInterval, and at once when
// Entra rejects the certificate: then the token request is retried once with the new
// certificate), keeps using the loaded certificate when the vault cannot be reached, and never
// changes a pinned version. Non-exportable keys are refused with keyvault.ErrNotExportable: use
// NewHSMSignedAssertionCredential for them.
type KeyVaultCertCredential struct {
	p  *rotatingProvider
	tc *tokenClient
}

// NewKeyVaultCertCredential loads certificate + private key (PKCS#12 or PEM) from Key Vault's secret
// for certificateURL, authenticating to the vault with vaultCredential (for example a managed
// identity in another tenant), and signs assertions locally. It follows rotation of an unpinned
// certificate.
func NewKeyVaultCertCredential(tenantID, clientID, certificateURL string, vaultCredential azcore.TokenCredential, options *KeyVaultCertCredentialOptions) (*KeyVaultCertCredential, error) {
	if err := entra.CheckIDs(credNameKeyVaultCert, tenantID, clientID); err != nil {
		return nil, optionsError{err}
	}
	o := options
	if o == nil {
		o = &KeyVaultCertCredentialOptions{}
	}
	src, err := keyvault.NewCertificateSource(certificateURL, vaultCredential, &o.Vault)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", credNameKeyVaultCert, err)
	}
	bo := &assertion.BuilderOptions{SendCertificateChain: o.SendCertificateChain, Lifetime: o.AssertionLifetime}
	if err := checkLifetime(bo); err != nil {
		return nil, fmt.Errorf("%s: %w", credNameKeyVaultCert, err)
	}
	p := &rotatingProvider{
		name:     credNameKeyVaultCert,
		url:      src.URL(),
		interval: rotationInterval(o.RotationCheckInterval),
		logger:   o.Logger,
		meter:    metering.Meter{R: o.Metrics, Credential: credNameKeyVaultCert},
		read: func(ctx context.Context, cur *loaded) (*loaded, error) {
			c, err := src.LoadWithKey(ctx)
			if err != nil {
				return nil, err
			}
			if cur != nil && cur.version == c.Version {
				return cur, nil
			}
			signer, err := assertion.NewLocalSigner(c.Key, assertion.PS256)
			if err != nil {
				return nil, err
			}
			b, err := assertion.NewBuilder(clientID, c.Chain, signer, bo)
			if err != nil {
				return nil, fmt.Errorf("certificate %s version %s: %w", src.URL(), c.Version, err)
			}
			return newLoaded(c.Version, b), nil
		},
	}
	tc, err := newTokenClient(credNameKeyVaultCert, tenantID, clientID, p, &o.SignedAssertionCredentialOptions)
	if err != nil {
		return nil, err
	}
	return &KeyVaultCertCredential{p: p, tc: tc}, nil
}

// GetToken returns an access token for opts.Scopes. It implements azcore.TokenCredential.
func (c *KeyVaultCertCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return c.tc.getToken(ctx, &opts)
}

// Assertion returns a client assertion for audience signed with the Key Vault certificate
// (loading it if needed). It implements assertion.Provider, for example for
// obo.NewAppWithAssertion.
func (c *KeyVaultCertCredential) Assertion(ctx context.Context, audience string) (string, error) {
	return c.p.Assertion(ctx, audience)
}

// AssertionRejected implements assertion.RejectionHandler for the consumers of this credential's
// assertions (obo.NewAppWithAssertion calls it; so does the credential's own GetToken): after Entra
// rejected an assertion's certificate, it reports retry true at once when the assertion came from
// an older certificate version than the one in use, and otherwise reads the vault (at most once
// per 10 seconds) and reports whether a new version is now in use.
func (c *KeyVaultCertCredential) AssertionRejected(ctx context.Context, assertion string, rejection error) (bool, error) {
	return c.p.AssertionRejected(ctx, assertion, rejection)
}

var (
	_ azcore.TokenCredential     = (*KeyVaultCertCredential)(nil)
	_ assertion.Provider         = (*KeyVaultCertCredential)(nil)
	_ assertion.RejectionHandler = (*KeyVaultCertCredential)(nil)
)
