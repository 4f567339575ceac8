package keyvault

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/azcredkit/azcredkit/assertion"
)

// ClientOptions configures the Key Vault clients (azsecrets, azkeys, certificates).
type ClientOptions struct {
	azcore.ClientOptions
	// DisableChallengeResourceVerification: as in azsecrets/azkeys (needed for private endpoints
	// and for local emulators).
	DisableChallengeResourceVerification bool
}

// vaultOptions copies options and turns off body logging: Key Vault's answers carry private keys
// (secrets) and assertion signatures (keys/sign), which must never reach a log.
func vaultOptions(options *ClientOptions) ClientOptions {
	var o ClientOptions
	if options != nil {
		o = *options
	}
	o.Logging.IncludeBody = false
	return o
}

// Certificate is a certificate read from Key Vault.
type Certificate struct {
	// Chain is the certificate chain, leaf first.
	Chain []*x509.Certificate
	// Key is the leaf's private key; nil when read without it (CertificateSource.LoadPublic).
	Key *rsa.PrivateKey
	// Version is the version that was read (certificate, secret and key share it).
	Version string
	// KeyID is the kid of the certificate's key in Key Vault, when known:
	// https://{vault}/keys/{name}/{version}.
	KeyID string
}

// CertificateSource reads one certificate from Key Vault: with its private key from the
// certificate's secret (PKCS#12 or PEM), or only its public part from the certificates API. It
// is safe for concurrent use; every Load is one Key Vault read.
type CertificateSource struct {
	url     ObjectURL
	secrets *azsecrets.Client
	certs   *azcertificates.Client
}

// NewCertificateSource returns a source for certificateURL (https://{vault}/certificates/{name}
// or .../secrets/{name}, optionally with /{version}), authenticating to the vault with cred. It
// does no I/O.
func NewCertificateSource(certificateURL string, cred azcore.TokenCredential, options *ClientOptions) (*CertificateSource, error) {
	u, err := ParseCertificateURL(certificateURL)
	if err != nil {
		return nil, err
	}
	if cred == nil {
		return nil, fmt.Errorf("keyvault: %w: the vault credential is nil: pass the credential that may read the vault (for example a managed identity)", assertion.ErrInvalidOptions)
	}
	o := vaultOptions(options)
	sc, err := azsecrets.NewClient(u.Vault, cred, &azsecrets.ClientOptions{ClientOptions: o.ClientOptions, DisableChallengeResourceVerification: o.DisableChallengeResourceVerification})
	if err != nil {
		return nil, fmt.Errorf("keyvault: %w", err)
	}
	cc, err := azcertificates.NewClient(u.Vault, cred, &azcertificates.ClientOptions{ClientOptions: o.ClientOptions, DisableChallengeResourceVerification: o.DisableChallengeResourceVerification})
	if err != nil {
		return nil, fmt.Errorf("keyvault: %w", err)
	}
	return &CertificateSource{url: u, secrets: sc, certs: cc}, nil
}

// URL returns the parsed certificate URL.
func (s *CertificateSource) URL() ObjectURL { return s.url }

// LoadWithKey reads the certificate's secret (the pinned version, or the latest) and parses the
// chain and private key. Errors wrap ErrNotExportable when the secret holds no key, and the other
// sentinels of this package; they name the vault, certificate and version.
func (s *CertificateSource) LoadWithKey(ctx context.Context) (*Certificate, error) {
	obj := ObjectURL{Vault: s.url.Vault, Collection: "secrets", Name: s.url.Name, Version: s.url.Version}
	resp, err := s.secrets.GetSecret(ctx, s.url.Name, s.url.Version, nil)
	if err != nil {
		return nil, vaultError("secrets/get", obj, err)
	}
	version := s.url.Version
	if resp.ID != nil {
		version = resp.ID.Version()
	}
	obj.Version = version
	if a := resp.Attributes; a != nil && a.Enabled != nil && !*a.Enabled {
		return nil, &Error{Op: "secrets/get", Object: obj, sentinel: ErrDisabled, err: ErrDisabled, Hint: "enable this version or use another"}
	}
	if resp.Value == nil {
		return nil, fmt.Errorf("keyvault: secret %s has no value: %w", obj, ErrInvalidCertificate)
	}
	chain, key, err := parseCertificate([]byte(*resp.Value), "", time.Now())
	if errors.Is(err, ErrNotExportable) {
		// In Key Vault, a secret without the key means a key that is not exportable; the
		// advice for files (add the key) does not apply.
		return nil, fmt.Errorf("keyvault: certificate %q version %s in vault %s: its secret holds the certificate and no private key: %w", s.url.Name, version, s.url.Vault, ErrNotExportable)
	}
	if err != nil {
		return nil, fmt.Errorf("keyvault: certificate %q version %s in vault %s: %w", s.url.Name, version, s.url.Vault, err)
	}
	c := &Certificate{Chain: chain, Key: key, Version: version}
	if resp.KID != nil {
		c.KeyID = string(*resp.KID)
	}
	return c, nil
}

// LoadPublic reads only the public certificate and its key ID from the certificates API (the
// secret is never read): for signing with the key in the vault (NewSigner). Errors wrap
// ErrUnsupportedKey for non-RSA keys and ErrCertificateExpired, and name the certificate.
func (s *CertificateSource) LoadPublic(ctx context.Context) (*Certificate, error) {
	obj := ObjectURL{Vault: s.url.Vault, Collection: "certificates", Name: s.url.Name, Version: s.url.Version}
	resp, err := s.certs.GetCertificate(ctx, s.url.Name, s.url.Version, nil)
	if err != nil {
		return nil, vaultError("certificates/get", obj, err)
	}
	version := s.url.Version
	if resp.ID != nil {
		version = resp.ID.Version()
	}
	obj.Version = version
	if a := resp.Attributes; a != nil && a.Enabled != nil && !*a.Enabled {
		return nil, &Error{Op: "certificates/get", Object: obj, sentinel: ErrDisabled, err: ErrDisabled, Hint: "enable this version or use another"}
	}
	if len(resp.CER) == 0 {
		return nil, fmt.Errorf("keyvault: certificate %s has no content (is it still pending?): %w", obj, ErrInvalidCertificate)
	}
	leaf, err := parseX509Certificate(resp.CER)
	if err != nil {
		return nil, fmt.Errorf("keyvault: certificate %s: %w: %v", obj, ErrInvalidCertificate, err)
	}
	if err := assertion.CheckRSAPublicKey(leaf.PublicKey); err != nil {
		return nil, fmt.Errorf("keyvault: certificate %s: %w", obj, err)
	}
	if err := assertion.CheckValidity(leaf, time.Now()); err != nil {
		return nil, fmt.Errorf("keyvault: certificate %s: %w", obj, err)
	}
	if resp.KID == nil {
		return nil, fmt.Errorf("keyvault: certificate %s has no key ID (kid): %w", obj, ErrInvalidCertificate)
	}
	return &Certificate{Chain: []*x509.Certificate{leaf}, Version: version, KeyID: string(*resp.KID)}, nil
}
