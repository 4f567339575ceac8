package keyvault

import (
	"errors"

	"github.com/azcredkit/azcredkit/assertion"
)

// Sentinel errors, matched with errors.Is. The returned errors wrap them with the vault, the
// certificate name and version, and what to do.
var (
	// ErrNotExportable: the certificate's private key is not exportable (the secret holds only
	// the public certificate): use credential.NewHSMSignedAssertionCredential, which has Key
	// Vault sign instead.
	ErrNotExportable = errors.New("the certificate's private key is not exportable (use credential.NewHSMSignedAssertionCredential, which has Key Vault sign)")
	// ErrKeyMismatch: no certificate in the secret matches its private key. It is
	// assertion.ErrKeyMismatch.
	ErrKeyMismatch = assertion.ErrKeyMismatch
	// ErrUnsupportedKey: not an RSA key of 2048 bits or more (Entra accepts only RSA client
	// assertions). It is assertion.ErrUnsupportedKey.
	ErrUnsupportedKey = assertion.ErrUnsupportedKey
	// ErrCertificateExpired: the certificate is expired or not yet valid. It is
	// assertion.ErrCertificateExpired.
	ErrCertificateExpired = assertion.ErrCertificateExpired

	// ErrWrongPassword: the PKCS#12 (PFX) password is wrong.
	ErrWrongPassword = errors.New("wrong PKCS#12 password")
	// ErrEncryptedPEM: the PEM private key is encrypted; decrypt it first.
	ErrEncryptedPEM = errors.New("encrypted PEM private keys are not supported: decrypt it (openssl pkey -in key.pem -out key-plain.pem) or use a PKCS#12 file with its password")
	// ErrInvalidCertificate: the data is not a certificate with a private key in a format this
	// package reads (PKCS#12, PEM), or it is malformed.
	ErrInvalidCertificate = errors.New("not a readable certificate")
	// ErrInvalidURL: the certificate or key URL is not of a form this package accepts.
	ErrInvalidURL = errors.New("invalid Key Vault URL")
)
