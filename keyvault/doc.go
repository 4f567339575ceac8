// Package keyvault uses Azure Key Vault (and Managed HSM) for certificate authentication to
// Microsoft Entra ID, in two ways:
//
//   - as a certificate source: CertificateSource reads a certificate and its exportable private key
//     from the certificate's secret (PKCS#12 or PEM, as Key Vault stores them), or only its public
//     part from the certificates API;
//   - as a signer: NewSigner returns an assertion.Signer that has Key Vault sign (keys/sign), so the
//     private key never leaves the vault or HSM.
//
// ParseCertificate reads the same formats from files: PEM made by openssl (certificate and key in
// any order, PKCS#1 or PKCS#8) and PFX from Windows or OpenSSL 3 (AES-256, which
// azidentity.ParseCertificates cannot read).
//
// Most services use these through package credential (KeyVaultCertCredential,
// HSMSignedAssertionCredential).
//
// # URLs
//
// Certificates: https://{vault}/certificates/{name}[/{version}] or the same with /secrets/; keys:
// https://{vault}/keys/{name}[/{version}]. A URL with a version is pinned to it.
//
// # Errors
//
// Errors wrap sentinels for errors.Is: ErrNotExportable, ErrKeyMismatch, ErrUnsupportedKey,
// ErrCertificateExpired, ErrWrongPassword, ErrEncryptedPEM, ErrInvalidCertificate, ErrInvalidURL,
// and, for Key Vault's answers, ErrAccessDenied (403: which identity lacks which permission),
// ErrNotFound and ErrDisabled, carried by *Error with Key Vault's code and message. No error holds
// key material.
package keyvault
