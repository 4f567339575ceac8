package credential

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/internal/entra"
	"github.com/azcredkit/azcredkit/internal/metering"
	"github.com/azcredkit/azcredkit/keyvault"
	"github.com/azcredkit/azcredkit/metrics"
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
	p     *rotatingProvider
	tc    *tokenClient
	signs atomic.Int64
}

// NewHSMSignedAssertionCredential reads only the public certificate for certificateURL and has Key
// Vault sign every assertion with the certificate's key (works with non-exportable and HSM keys).
func NewHSMSignedAssertionCredential(tenantID, clientID, certificateURL string, vaultCredential azcore.TokenCredential, options *HSMSignedAssertionCredentialOptions) (*HSMSignedAssertionCredential, error) {
	if err := entra.CheckIDs(credNameHSM, tenantID, clientID); err != nil {
		return nil, optionsError{err}
	}
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
	c := &HSMSignedAssertionCredential{}
	p := &rotatingProvider{
		name:     credNameHSM,
		url:      src.URL(),
		interval: rotationInterval(o.RotationCheckInterval),
		logger:   o.Logger,
		meter:    metering.Meter{R: o.Metrics, Credential: credNameHSM},
		read: func(ctx context.Context, cur *loaded) (*loaded, error) {
			cert, err := src.LoadPublic(ctx)
			if err != nil {
				return nil, err
			}
			if cur != nil && cur.version == cert.Version {
				return cur, nil
			}
			signer, err := keyvault.NewSigner(cert.KeyID, vaultCredential, alg, &o.Vault)
			if err != nil {
				return nil, fmt.Errorf("certificate %s version %s: %w", src.URL(), cert.Version, err)
			}
			b, err := assertion.NewBuilder(clientID, cert.Chain, &countingSigner{Signer: signer, n: &c.signs, m: metering.Meter{R: o.Metrics, Credential: credNameHSM}}, bo)
			if err != nil {
				return nil, fmt.Errorf("certificate %s version %s: %w", src.URL(), cert.Version, err)
			}
			return newLoaded(cert.Version, b), nil
		},
	}
	tc, err := newTokenClient(credNameHSM, tenantID, clientID, p, &o.SignedAssertionCredentialOptions)
	if err != nil {
		return nil, err
	}
	c.p, c.tc = p, tc
	return c, nil
}

// SignCount returns how many keys/sign operations this credential has sent to Key Vault (each is
// billed and, on Premium vaults, rate-limited): one per assertion lifetime per token endpoint.
func (c *HSMSignedAssertionCredential) SignCount() int64 { return c.signs.Load() }

// countingSigner counts the signatures of a Key Vault signer (SignCount, and SignOperations).
type countingSigner struct {
	*keyvault.Signer
	n *atomic.Int64
	m metering.Meter
}

func (s *countingSigner) Sign(ctx context.Context, digest []byte) ([]byte, error) {
	s.n.Add(1)
	sig, err := s.Signer.Sign(ctx, digest)
	s.m.Add(ctx, metrics.SignOperations, "", metering.Outcome(err))
	return sig, err
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

// AssertionRejected implements assertion.RejectionHandler, as KeyVaultCertCredential's does
// (with a new certificate version, a new key and key ID).
func (c *HSMSignedAssertionCredential) AssertionRejected(ctx context.Context, assertion string, rejection error) (bool, error) {
	return c.p.AssertionRejected(ctx, assertion, rejection)
}

var (
	_ azcore.TokenCredential     = (*HSMSignedAssertionCredential)(nil)
	_ assertion.Provider         = (*HSMSignedAssertionCredential)(nil)
	_ assertion.RejectionHandler = (*HSMSignedAssertionCredential)(nil)
)
