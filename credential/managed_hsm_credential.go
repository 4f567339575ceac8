package credential

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/internal/metering"
	"github.com/azcredkit/azcredkit/internal/safetext"
	"github.com/azcredkit/azcredkit/keyvault"
)

const credNameManagedHSM = "ManagedHSMCredential"

// CertificateChainSource supplies the certificates that identify a Managed HSM key to Microsoft
// Entra ID. A Managed HSM holds keys only, so the certificate registered on the app (issued for
// the key's public key, for example from a CSR that the HSM key signed) lives elsewhere: a file
// (CertificatesFromFile), a Key Vault certificate (CertificatesFromKeyVault), or your own store.
//
// Certificates may return certificates for several key versions and their CA certificates, in
// any order: the credential uses the valid certificate whose public key is the key version in
// use (an end-entity certificate before a CA certificate, then the latest-expiring one), followed
// by its issuers found among the others.
// It is called when the credential loads or re-checks the key, never per token.
type CertificateChainSource interface {
	Certificates(ctx context.Context) ([]*x509.Certificate, error)
}

// StaticCertificates is a CertificateChainSource of fixed certificates.
type StaticCertificates []*x509.Certificate

// Certificates returns the certificates. It implements CertificateChainSource.
func (s StaticCertificates) Certificates(context.Context) ([]*x509.Certificate, error) {
	return append([]*x509.Certificate(nil), s...), nil
}

// maxChainFile bounds a certificate file.
const maxChainFile = 1 << 20

// CertificatesFromFile returns a CertificateChainSource that reads the certificates in the file at
// path each time the credential checks the key: PEM (any number of CERTIFICATE blocks, other
// blocks ignored) or one DER certificate. Add the certificate of a new key version to the file
// before or when the key rotates.
func CertificatesFromFile(path string) CertificateChainSource { return certFile(path) }

type certFile string

func (p certFile) Certificates(context.Context) ([]*x509.Certificate, error) {
	f, err := os.Open(string(p))
	if err != nil {
		return nil, fmt.Errorf("certificate file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxChainFile+1))
	if err != nil {
		return nil, fmt.Errorf("certificate file %s: %w", safetext.Clip(string(p), 300), err)
	}
	if len(data) > maxChainFile {
		return nil, fmt.Errorf("certificate file %s: more than %d bytes: %w", safetext.Clip(string(p), 300), maxChainFile, keyvault.ErrInvalidCertificate)
	}
	certs, err := parseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("certificate file %s: %w", safetext.Clip(string(p), 300), err)
	}
	return certs, nil
}

// parseCertificates reads PEM CERTIFICATE blocks, or one DER certificate.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	if !bytes.Contains(data, []byte("-----BEGIN")) {
		c, err := x509.ParseCertificate(data)
		if err != nil {
			return nil, fmt.Errorf("%w: neither PEM nor a DER certificate", keyvault.ErrInvalidCertificate)
		}
		return []*x509.Certificate{c}, nil
	}
	var certs []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue // a key or anything else: not needed, not kept
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %d: %v", keyvault.ErrInvalidCertificate, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: no CERTIFICATE block", keyvault.ErrInvalidCertificate)
	}
	return certs, nil
}

// CertificatesFromKeyVault returns a CertificateChainSource that reads the public part of a Key
// Vault certificate (https://{vault}/certificates/{name}[/{version}]; the certificates API, never
// the secret), authenticating with cred: a certificate issued for the Managed HSM key's public
// key and kept in a Key Vault (imported or merged there). An unpinned URL is read at its latest
// version each time the credential checks the key, so a certificate renewed for a new key version
// is picked up.
func CertificatesFromKeyVault(certificateURL string, cred azcore.TokenCredential, options *keyvault.ClientOptions) (CertificateChainSource, error) {
	src, err := keyvault.NewCertificateSource(certificateURL, cred, options)
	if err != nil {
		return nil, err
	}
	return kvCerts{src}, nil
}

type kvCerts struct{ src *keyvault.CertificateSource }

func (k kvCerts) Certificates(ctx context.Context) ([]*x509.Certificate, error) {
	c, err := k.src.LoadPublic(ctx)
	if err != nil {
		return nil, err
	}
	return c.Chain, nil
}

// ManagedHSMCredentialOptions configure NewManagedHSMCredential. nil means the defaults.
type ManagedHSMCredentialOptions struct {
	SignedAssertionCredentialOptions
	// Vault is the pipeline to the Managed HSM (Transport, Retry,
	// DisableChallengeResourceVerification for private endpoints and emulators). Optional.
	Vault keyvault.ClientOptions
	// Algorithm of the assertions the HSM signs: "PS256" (default) or "RS256". Optional.
	Algorithm string
	// RotationCheckInterval is how often an unversioned key URL is re-read for a new version (one
	// keys/get and one read of the certificates): 0 means DefaultRotationCheckInterval (1 hour),
	// a negative value only when Entra rejects the certificate. Optional.
	RotationCheckInterval time.Duration
}

// ManagedHSMCredential authenticates an app with a key that never leaves a Managed HSM: the HSM
// signs each client assertion (keys/sign), and the assertion is identified by a certificate for
// that key kept outside the HSM (a Managed HSM holds keys only).
//
// It follows new versions of an unversioned key URL: once per RotationCheckInterval, and at once
// when Entra rejects the certificate (then the token request is retried once), it reads the key's
// latest version and the certificates, and switches to the new version when a certificate for its
// public key is there; until then it keeps signing with the version in use. A certificate renewed
// for the same key is picked up the same way. As with HSMSignedAssertionCredential, one signed
// assertion serves every token request to a token endpoint while half its lifetime remains.
type ManagedHSMCredential struct {
	p     *rotatingProvider
	tc    *tokenClient
	signs atomic.Int64
}

// NewManagedHSMCredential authenticates clientID in tenantID with assertions that the Managed HSM
// key at keyURL (https://{hsm}.managedhsm.azure.net/keys/{name}[/{version}]) signs, identified by
// the certificate from chain whose public key is that key's. hsmCredential authenticates to the
// Managed HSM (it needs the "Managed HSM Crypto User" role on the key: keys/get and keys/sign),
// for example a managed identity. It does no I/O.
//
//	chain := credential.CertificatesFromFile("/etc/app/hsm-signer-chain.pem")
//	cred, err := credential.NewManagedHSMCredential(tenantID, clientID,
//		"https://contoso.managedhsm.azure.net/keys/app-signer", chain, mi, nil)
func NewManagedHSMCredential(tenantID, clientID, keyURL string, chain CertificateChainSource, hsmCredential azcore.TokenCredential, options *ManagedHSMCredentialOptions) (*ManagedHSMCredential, error) {
	var o ManagedHSMCredentialOptions
	if options != nil {
		o = *options
	}
	if chain == nil {
		return nil, optionsError{fmt.Errorf("%s: the certificate chain source is nil: use CertificatesFromFile, CertificatesFromKeyVault or StaticCertificates", credNameManagedHSM)}
	}
	keys, err := keyvault.NewKeySource(keyURL, hsmCredential, &o.Vault)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", credNameManagedHSM, err)
	}
	alg, err := assertion.NormalizeAlgorithm(o.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", credNameManagedHSM, err)
	}
	bo := &assertion.BuilderOptions{SendCertificateChain: o.SendCertificateChain, Lifetime: o.AssertionLifetime}
	if err := checkLifetime(bo); err != nil {
		return nil, fmt.Errorf("%s: %w", credNameManagedHSM, err)
	}
	c := &ManagedHSMCredential{}
	u := keys.URL()
	// The certificates are re-read even for a pinned key version (a renewed certificate for
	// the same key): the provider always checks.
	checked := u
	checked.Version = ""
	var signers sync.Map // key version -> *keyvault.Signer (one client per version)
	c.p = &rotatingProvider{
		name:     credNameManagedHSM,
		url:      checked,
		interval: rotationInterval(o.RotationCheckInterval),
		logger:   o.Logger,
		meter:    metering.Meter{R: o.Metrics, Credential: credNameManagedHSM},
		read: func(ctx context.Context, cur *loaded) (*loaded, error) {
			key, err := keys.Load(ctx)
			if err != nil {
				return nil, err
			}
			certs, err := chain.Certificates(ctx)
			if err != nil {
				return nil, fmt.Errorf("reading the certificates for key %s: %w", key.KeyID, err)
			}
			leaf, err := chainFor(key, certs, time.Now())
			if err != nil {
				return nil, err
			}
			version := key.Version + "/" + assertion.Thumbprint(leaf[0])
			if cur != nil && cur.version == version {
				return cur, nil
			}
			s, ok := signers.Load(key.Version)
			if !ok {
				ns, err := keyvault.NewSigner(key.KeyID, hsmCredential, alg, &o.Vault)
				if err != nil {
					return nil, err
				}
				s, _ = signers.LoadOrStore(key.Version, ns)
			}
			b, err := assertion.NewBuilder(clientID, leaf, &countingSigner{Signer: s.(*keyvault.Signer), n: &c.signs, m: metering.Meter{R: o.Metrics, Credential: credNameManagedHSM}}, bo)
			if err != nil {
				return nil, fmt.Errorf("key %s: %w", key.KeyID, err)
			}
			return newLoaded(version, b), nil
		},
	}
	c.tc, err = newTokenClient(credNameManagedHSM, tenantID, clientID, c.p, &o.SignedAssertionCredentialOptions)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// errNoCertificateForKey: none of the certificates has the key version's public key.
var errNoCertificateForKey = errors.New("no valid certificate has the key's public key")

// chainFor returns the certificate for key's public key (valid at now; the latest-expiring when
// several are) followed by its issuers found among certs.
func chainFor(key *keyvault.Key, certs []*x509.Certificate, now time.Time) ([]*x509.Certificate, error) {
	var leaf *x509.Certificate
	expired := 0
	for _, c := range certs {
		if pub, ok := c.PublicKey.(*rsa.PublicKey); !ok || !pub.Equal(key.Public) {
			continue
		}
		if assertion.CheckValidity(c, now) != nil {
			expired++
			continue
		}
		// Prefer an end-entity certificate to a CA certificate of the same key, then the one
		// that expires last.
		if leaf == nil || leaf.IsCA && !c.IsCA || leaf.IsCA == c.IsCA && c.NotAfter.After(leaf.NotAfter) {
			leaf = c
		}
	}
	if leaf == nil {
		sum := sha256.Sum256(key.Public.N.Bytes())
		why := fmt.Sprintf("none of the %d certificates is for it", len(certs))
		if expired > 0 {
			why = fmt.Sprintf("%d certificates are for it but expired or not yet valid", expired)
		}
		return nil, fmt.Errorf("%w: key %s (RSA %d bits, modulus SHA-256 %X…): %s; issue a certificate for this key version (for example from a CSR the HSM key signs), add it to the certificate source and register it on the app: %w",
			errNoCertificateForKey, key.KeyID, key.Public.N.BitLen(), sum[:8], why, keyvault.ErrKeyMismatch)
	}
	out := []*x509.Certificate{leaf}
	for cur := leaf; len(out) <= len(certs); {
		var issuer *x509.Certificate
		for _, c := range certs {
			if c != cur && !c.Equal(cur) && bytes.Equal(c.RawSubject, cur.RawIssuer) && cur.CheckSignatureFrom(c) == nil {
				issuer = c
				break
			}
		}
		if issuer == nil || issuer.Equal(cur) {
			break
		}
		out = append(out, issuer)
		if bytes.Equal(issuer.RawSubject, issuer.RawIssuer) { // a root
			break
		}
		cur = issuer
	}
	return out, nil
}

// SignCount returns how many keys/sign operations this credential has sent to the Managed HSM.
func (c *ManagedHSMCredential) SignCount() int64 { return c.signs.Load() }

// GetToken returns an access token for opts.Scopes. It implements azcore.TokenCredential.
func (c *ManagedHSMCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return c.tc.getToken(ctx, &opts)
}

// Assertion returns a client assertion for audience signed by the Managed HSM (reused while half
// its lifetime remains). It implements assertion.Provider, for example for obo.NewAppWithAssertion.
func (c *ManagedHSMCredential) Assertion(ctx context.Context, audience string) (string, error) {
	return c.p.Assertion(ctx, audience)
}

// AssertionRejected implements assertion.RejectionHandler: when Entra rejected an assertion of
// this credential because of its certificate, an older key version than the one in use means
// "retry at once"; otherwise the key (and its certificate) is looked up again, at most once per
// 10 s, and the request is retried when the version changed. obo.NewAppWithAssertion uses it.
func (c *ManagedHSMCredential) AssertionRejected(ctx context.Context, assertion string, rejection error) (bool, error) {
	return c.p.AssertionRejected(ctx, assertion, rejection)
}

var (
	_ azcore.TokenCredential     = (*ManagedHSMCredential)(nil)
	_ assertion.Provider         = (*ManagedHSMCredential)(nil)
	_ assertion.RejectionHandler = (*ManagedHSMCredential)(nil)
	_ CertificateChainSource     = StaticCertificates(nil)
)
