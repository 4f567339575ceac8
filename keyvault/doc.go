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
// https://{vault}/keys/{name}[/{version}], also of a Managed HSM
// (https://{name}.managedhsm.azure.net/keys/{name}: keys only, no certificates or secrets). A URL
// with a version is pinned to it. Collection names are case-insensitive, as Key Vault
// identifiers are.
//
// # Errors
//
// Errors wrap sentinels for errors.Is: ErrNotExportable, ErrKeyMismatch, ErrUnsupportedKey,
// ErrCertificateExpired, ErrWrongPassword, ErrEncryptedPEM, ErrInvalidCertificate, ErrInvalidURL,
// and, for Key Vault's answers, ErrAccessDenied (403: which identity lacks which permission: an
// Azure RBAC role or access policy, or for a Managed HSM its local RBAC role such as "Managed HSM
// Crypto User"), ErrNetworkRefused (403 from the vault's network rules: public network access
// disabled, inner error ForbiddenByConnection, or the firewall, ForbiddenByFirewall; it wraps
// ErrAccessDenied), ErrNotFound and ErrDisabled (a disabled object: SecretDisabled, KeyDisabled,
// CertificateDisabled), carried by *Error with Key Vault's codes and message. No error holds key
// material.
//
// # Untrusted input
//
// Certificates are parsed with bounded work whatever the input: the size, the PKCS#12 key
// derivation iterations and the shape of every RSA private key are checked before crypto/x509
// and go-pkcs12 compute with them (including keys in encrypted PKCS#12 SafeContents and PKCS#8
// keys followed by trailing data). Certificates with a negative serial number, which Key Vault
// still returns and crypto/x509 refuses by default, are read as they are.
//
// # Observability
//
// The Key Vault clients are azsecrets, azcertificates and azkeys on ClientOptions' pipeline: their
// HTTP requests reach an azcore/log listener, and with ClientOptions.TracingProvider set they make
// spans ("HTTP GET", "HTTP POST", az.namespace Microsoft.KeyVault). Every call takes the caller's
// context: a credential of package credential that reads a certificate or signs during a GetToken
// passes its span's context, so these spans are children of the "{Credential}.GetToken" span
// (set the same provider in the credential's Vault options). The credentials count the reads and
// sign operations (metrics.KeyVaultReads, metrics.SignOperations).
package keyvault
