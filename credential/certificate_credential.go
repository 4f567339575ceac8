package credential

import (
	"crypto/rsa"
	"fmt"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/internal/entra"
	"github.com/azcredkit/azcredkit/keyvault"
)

const credNameCertificate = "CertificateCredential"

// NewCertificateCredential is the certificate-on-disk shortcut: it parses certData — a PEM made by
// openssl (certificate and key in any order, PKCS#1 or PKCS#8) or a PKCS#12/PFX from Windows or
// OpenSSL 3, with password — using keyvault.ParseCertificate, and returns a
// SignedAssertionCredential that signs client assertions with the key (PS256).
//
//	data, err := os.ReadFile("service.pem")
//	cred, err := credential.NewCertificateCredential(tenantID, clientID, data, "", nil)
//
// Errors wrap keyvault's sentinels (ErrWrongPassword, ErrKeyMismatch, ErrUnsupportedKey,
// ErrCertificateExpired, ErrNotExportable for a file without a key...). Its errors, from the
// constructor and from GetToken, and its log records name it "CertificateCredential".
func NewCertificateCredential(tenantID, clientID string, certData []byte, password string, options *SignedAssertionCredentialOptions) (*SignedAssertionCredential, error) {
	if err := entra.CheckIDs(credNameCertificate, tenantID, clientID); err != nil {
		return nil, optionsError{err}
	}
	chain, key, err := keyvault.ParseCertificate(certData, password)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", credNameCertificate, err)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok { // ParseCertificate returns RSA keys only; this guards a future change
		return nil, fmt.Errorf("%s: %w", credNameCertificate, keyvault.ErrUnsupportedKey)
	}
	signer, err := assertion.NewLocalSigner(rk, assertion.PS256)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", credNameCertificate, err)
	}
	return newSignedAssertionCredential(credNameCertificate, tenantID, clientID, chain, signer, options)
}
