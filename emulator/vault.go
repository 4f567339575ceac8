package emulator

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/keyvault"
)

// CertificateOptions shape a certificate made by [Emulator.CreateCertificate]. The zero value is
// an exportable RSA-2048 certificate valid for 12 months, stored as PKCS#12.
type CertificateOptions struct {
	// CommonName of the subject (and issuer: the certificate is self-signed, like Key Vault's
	// "Self" issuer); "" means the certificate's name. Optional.
	CommonName string
	// NonExportable keeps the private key in the vault: the certificate's secret holds only the
	// certificate, so credential.NewKeyVaultCertCredential fails with keyvault.ErrNotExportable
	// and the key can only sign through keys/sign (credential.NewHSMSignedAssertionCredential,
	// keyvault.NewSigner). Optional.
	NonExportable bool
	// HSM makes the key RSA-HSM, as in a Premium vault; an HSM key is never exportable, whatever
	// NonExportable says. Optional.
	HSM bool
	// PEM stores the secret as application/x-pem-file (key and certificate in PEM) instead of
	// application/x-pkcs12. Optional.
	PEM bool
	// KeySize of the RSA key: 2048 (used when 0), 3072 or 4096. Optional.
	KeySize int
	// Validity of the certificate from now; 0 means 12 months. A negative Validity makes a
	// certificate that expired that long ago (credentials refuse it with
	// keyvault.ErrCertificateExpired). Optional.
	Validity time.Duration
}

// VaultCertificate is a version of a certificate in the emulated vault.
type VaultCertificate struct {
	// Name and Version of the certificate.
	Name, Version string
	// URL is "https://{vault}/certificates/{name}": unpinned, so a credential follows rotation.
	URL string
	// VersionURL is "https://{vault}/certificates/{name}/{version}": pinned to this version.
	VersionURL string
	// Certificate is the public certificate: register it with RegisterApp.
	Certificate *x509.Certificate
}

// vaultCert is what the Emulator knows of a certificate of its vault.
type vaultCert struct {
	policy certPolicy
	latest VaultCertificate
}

// certPolicy is how a certificate of the vault is renewed by RotateCertificate.
type certPolicy struct {
	commonName    string
	pem           bool
	nonExportable bool
	hsm           bool
	rsaBits       int // RSA key size, or 0 for an EC key
	ecKey         int // EC curve size in bits when rsaBits is 0
	validity      time.Duration
}

// ImportCertificate stores a PKCS#12 or PEM certificate with its key in the vault (the vault's
// tenant is the first tenant used with it) and returns its URL,
// https://{vault}/certificates/{name}. data is a PKCS#12 (DER, or base64 as Key Vault returns it)
// decrypted with password, or PEM text with the certificate(s) and an unencrypted private key (RSA
// or EC) in any order; the certificate matching the key is the leaf, the others its chain. The
// secret keeps the format of data (application/x-pkcs12 or application/x-pem-file), and the
// certificate is exportable. Importing a name again adds a version, which becomes the latest.
// Expired certificates are imported as Key Vault does, for tests of what credentials make of them.
func (e *Emulator) ImportCertificate(name string, data []byte, password string) (string, error) {
	if err := checkObjectName(name); err != nil {
		return "", err
	}
	chain, key, err := parseImport(data, password)
	if err != nil {
		return "", fmt.Errorf("emulator: importing certificate %s: %w", name, err)
	}
	p := certPolicy{
		commonName: chain[0].Subject.CommonName,
		pem:        strings.Contains(string(data), "-----BEGIN"),
		validity:   chain[0].NotAfter.Sub(chain[0].NotBefore),
	}
	switch k := key.Public().(type) {
	case *rsa.PublicKey:
		p.rsaBits = k.N.BitLen()
	case *ecdsa.PublicKey:
		p.ecKey = k.Curve.Params().BitSize
	}
	if _, err := e.storeCertificate(name, chain, key, p); err != nil {
		return "", err
	}
	return e.vault.URL() + "/certificates/" + name, nil
}

// parseImport reads a certificate to import. keyvault.ParseCertificate bounds the work that a
// crafted PKCS#12 or key can ask for before anything parses it, and it refuses two things Key
// Vault imports but credentials cannot use: EC keys and expired certificates. Those are read
// again, now known to be harmless, by the emulator's own parser.
func parseImport(data []byte, password string) ([]*x509.Certificate, crypto.Signer, error) {
	chain, key, err := keyvault.ParseCertificate(data, password)
	switch {
	case err == nil:
		if signer, ok := key.(crypto.Signer); ok {
			return chain, signer, nil
		}
		return nil, nil, fmt.Errorf("the private key is a %T", key)
	case errors.Is(err, keyvault.ErrUnsupportedKey), errors.Is(err, keyvault.ErrCertificateExpired):
		return emulator.ParseImport(data, password)
	}
	return nil, nil, err
}

// CreateCertificate creates a self-signed certificate in the vault as Key Vault's create
// operation does, with a new RSA key made by crypto/rand: exportable or not, software or HSM
// (see [CertificateOptions]); options may be nil. Creating a name again adds a version with the
// new options, which becomes the latest. Register the returned Certificate with the app that
// authenticates with it.
func (e *Emulator) CreateCertificate(name string, options *CertificateOptions) (*VaultCertificate, error) {
	if err := checkObjectName(name); err != nil {
		return nil, err
	}
	var o CertificateOptions
	if options != nil {
		o = *options
	}
	if o.KeySize == 0 {
		o.KeySize = 2048
	}
	if o.KeySize != 2048 && o.KeySize != 3072 && o.KeySize != 4096 {
		return nil, fmt.Errorf("emulator: certificate %s: KeySize %d is not one Key Vault creates (2048, 3072 or 4096)", name, o.KeySize)
	}
	if o.Validity == 0 {
		o.Validity = 365 * 24 * time.Hour
	}
	if o.CommonName == "" {
		o.CommonName = name
	}
	return e.newVersion(name, certPolicy{
		commonName:    o.CommonName,
		pem:           o.PEM,
		nonExportable: o.NonExportable || o.HSM,
		hsm:           o.HSM,
		rsaBits:       o.KeySize,
		validity:      o.Validity,
	})
}

// RotateCertificate renews a certificate of the vault as Key Vault's lifetime action does: a new
// version with a new key and the same options (key type and size, exportability, HSM, secret
// format, subject, validity), self-signed, which becomes the latest. Credentials on the unpinned
// URL pick it up when they next read the vault (at once when Entra refuses the old certificate
// with AADSTS700027). Register the new Certificate with the app; UnregisterCertificate the old
// one to check that the credential moved on.
func (e *Emulator) RotateCertificate(name string) (*VaultCertificate, error) {
	e.mu.Lock()
	c, ok := e.certs[strings.ToLower(name)]
	var p certPolicy
	if ok {
		p = c.policy
	}
	e.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("emulator: the vault has no certificate %s to rotate", name)
	}
	if p.validity <= 0 {
		p.validity = 365 * 24 * time.Hour
	}
	return e.newVersion(name, p)
}

// newVersion makes a key and a self-signed certificate following p and stores them as the
// latest version of name.
func (e *Emulator) newVersion(name string, p certPolicy) (*VaultCertificate, error) {
	var key crypto.Signer
	var err error
	if p.rsaBits > 0 {
		key, err = rsa.GenerateKey(rand.Reader, p.rsaBits)
	} else {
		key, err = newECKey(p.ecKey)
	}
	if err != nil {
		return nil, fmt.Errorf("emulator: certificate %s: making a key: %w", name, err)
	}
	cert, err := selfSigned(p.commonName, key, p.validity)
	if err != nil {
		return nil, fmt.Errorf("emulator: certificate %s: %w", name, err)
	}
	return e.storeCertificate(name, []*x509.Certificate{cert}, key, p)
}

// storeCertificate adds a version of name to the vault and remembers p for rotation.
func (e *Emulator) storeCertificate(name string, chain []*x509.Certificate, key crypto.Signer, p certPolicy) (*VaultCertificate, error) {
	opts := emulator.CertificateOptions{NonExportable: p.nonExportable, HSM: p.hsm, ContentType: emulator.ContentTypePKCS12}
	if p.pem {
		opts.ContentType = emulator.ContentTypePEM
	}
	var version string
	if err := safely(func() { version = e.vault.ImportCertificate(name, chain, key, opts) }); err != nil {
		return nil, fmt.Errorf("emulator: storing certificate %s: %w", name, err)
	}
	u := e.vault.URL() + "/certificates/" + name
	vc := VaultCertificate{Name: name, Version: version, URL: u, VersionURL: u + "/" + version, Certificate: chain[0]}
	e.mu.Lock()
	e.certs[strings.ToLower(name)] = &vaultCert{policy: p, latest: vc}
	e.mu.Unlock()
	return &vc, nil
}

// GetCertificate returns the latest version of a certificate of the vault (imported, created
// or rotated), for example to register the public certificate of an imported one with an app.
func (e *Emulator) GetCertificate(name string) (*VaultCertificate, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.certs[strings.ToLower(name)]
	if !ok {
		return nil, fmt.Errorf("emulator: the vault has no certificate %s", name)
	}
	vc := c.latest
	return &vc, nil
}

// SetSecret stores a version of the secret name (a plain secret, not a certificate's) and
// returns its URL, https://{vault}/secrets/{name}; azsecrets.Client.GetSecret reads it.
func (e *Emulator) SetSecret(name, value string) (string, error) {
	if err := checkObjectName(name); err != nil {
		return "", err
	}
	e.vault.SetSecret(name, value, "")
	return e.vault.URL() + "/secrets/" + name, nil
}

// checkObjectName applies Key Vault's rule for object names: 1 to 127 letters, digits and dashes.
func checkObjectName(name string) error {
	if name == "" || len(name) > 127 {
		return fmt.Errorf("emulator: the name %q is not a Key Vault object name (1 to 127 letters, digits and dashes)", name)
	}
	for _, r := range name {
		if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return fmt.Errorf("emulator: the name %q is not a Key Vault object name (1 to 127 letters, digits and dashes)", name)
		}
	}
	return nil
}

// selfSigned makes a certificate for key valid for validity from a minute ago, or (a negative
// validity) one that expired that long ago, with Key Vault's default key usages.
func selfSigned(commonName string, key crypto.Signer, validity time.Duration) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	notBefore := time.Now().Add(-time.Minute)
	notAfter := notBefore.Add(validity)
	if validity < 0 {
		notAfter = time.Now().Add(validity)
		notBefore = notAfter.Add(-365 * 24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

var errCurve = errors.New("unsupported EC curve")

// newECKey makes an ECDSA key on the NIST curve of the given size (for the rotation of an
// imported EC certificate).
func newECKey(bits int) (*ecdsa.PrivateKey, error) {
	var c elliptic.Curve
	switch bits {
	case 256:
		c = elliptic.P256()
	case 384:
		c = elliptic.P384()
	case 521:
		c = elliptic.P521()
	default:
		return nil, errCurve
	}
	return ecdsa.GenerateKey(c, rand.Reader)
}
