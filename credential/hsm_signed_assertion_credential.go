package credential

import (
	"context"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/keyvault"
)

const credNameHSM = "HSMSignedAssertionCredential"

// HSMSignedAssertionCredentialOptions configure NewHSMSignedAssertionCredential. nil means the
// defaults.
type HSMSignedAssertionCredentialOptions struct {
	SignedAssertionCredentialOptions
	// Vault is the pipeline to Key Vault / Managed HSM. Optional.
	Vault keyvault.ClientOptions
	// Algorithm of the assertions Key Vault signs: "PS256" (default) or "RS256". Optional.
	Algorithm string
	// RotationCheckInterval: as in KeyVaultCertCredentialOptions (default 1 hour; negative:
	// only when Entra rejects the certificate). Optional.
	RotationCheckInterval time.Duration
}

// HSMSignedAssertionCredential authenticates an app with a certificate whose private key never
// leaves Key Vault or Managed HSM (non-exportable, HSM-protected keys). It reads only the public
// certificate (certificates API: DER and kid; never the secret) and has Key Vault sign each
// client assertion with the certificate's key (keys/sign).
//
// Sign operations are billed and rate-limited, so a signed assertion is reused for every token
// request to the same token endpoint while at least half of its lifetime remains, and concurrent
// callers share one signature: 100 concurrent cold callers cost 1 certificate read, 1 sign and 1
// token request. Rotation is followed as by KeyVaultCertCredential (new version: new certificate
// and key ID).
type HSMSignedAssertionCredential struct {
	p  *rotatingProvider
	tc *tokenClient
}

// NewHSMSignedAssertionCredential reads only the public certificate for certificateURL and has Key
// Vault sign every assertion with the certificate's key (works with non-exportable and HSM keys).
func NewHSMSignedAssertionCredential(tenantID, clientID, certificateURL string, vaultCredential azcore.TokenCredential, options *HSMSignedAssertionCredentialOptions) (*HSMSignedAssertionCredential, error) {
	o := options
	if o == nil {
		o = &HSMSignedAssertionCredentialOptions{}
	}
	src, err := keyvault.NewCertificateSource(certificateURL, vaultCredential, &o.Vault)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", credNameHSM, err)
	}
	alg, err := assertion.NormalizeAlgorithm(o.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", credNameHSM, err)
	}
	bo := &assertion.BuilderOptions{SendCertificateChain: o.SendCertificateChain, Lifetime: o.AssertionLifetime}
	if err := checkLifetime(bo); err != nil {
		return nil, fmt.Errorf("%s: %w", credNameHSM, err)
	}
	p := &rotatingProvider{
		name:     credNameHSM,
		url:      src.URL(),
		interval: rotationInterval(o.RotationCheckInterval),
		logger:   o.Logger,
		read: func(ctx context.Context, cur *loaded) (*loaded, error) {
			c, err := src.LoadPublic(ctx)
			if err != nil {
				return nil, err
			}
			if cur != nil && cur.version == c.Version {
				return cur, nil
			}
			signer, err := keyvault.NewSigner(c.KeyID, vaultCredential, alg, &o.Vault)
			if err != nil {
				return nil, fmt.Errorf("certificate %s version %s: %w", src.URL(), c.Version, err)
			}
			b, err := assertion.NewBuilder(clientID, c.Chain, signer, bo)
			if err != nil {
				return nil, fmt.Errorf("certificate %s version %s: %w", src.URL(), c.Version, err)
			}
			return newLoaded(c.Version, b), nil
		},
	}
	tc, err := newTokenClient(credNameHSM, tenantID, clientID, func() assertion.Provider { return p }, &o.SignedAssertionCredentialOptions)
	if err != nil {
		return nil, err
	}
	tc.reload = p.reloadAfterRejection
	return &HSMSignedAssertionCredential{p: p, tc: tc}, nil
}

// GetToken returns an access token for opts.Scopes. It implements azcore.TokenCredential.
func (c *HSMSignedAssertionCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return c.tc.getToken(ctx, &opts)
}

// Assertion returns a client assertion for audience signed by Key Vault (reused while half its
// lifetime remains). It implements assertion.Provider, for example for obo.NewAppWithAssertion.
func (c *HSMSignedAssertionCredential) Assertion(ctx context.Context, audience string) (string, error) {
	return c.p.Assertion(ctx, audience)
}

var (
	_ azcore.TokenCredential = (*HSMSignedAssertionCredential)(nil)
	_ assertion.Provider     = (*HSMSignedAssertionCredential)(nil)
)
