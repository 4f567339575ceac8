// Package credential provides azcore.TokenCredential implementations for an app (service
// principal) that authenticates to Microsoft Entra ID with a certificate instead of a client
// secret. Every credential works with any Azure SDK for Go client, and also implements
// assertion.Provider, so it can authenticate an On-Behalf-Of middle tier (package obo).
//
// # Which credential
//
//   - SignedAssertionCredential: the certificate and its key are at hand: a file
//     (NewCertificateCredential reads PEM and PFX), or your own assertion.Signer (PKCS#11, TPM, KMS).
//   - KeyVaultCertCredential: the certificate and its exportable key live in Key Vault; the
//     credential loads them (authenticating to the vault with another credential, which may be
//     a managed identity in another tenant) and follows rotation.
//   - HSMSignedAssertionCredential: the key is non-exportable (Premium vault HSM); Key Vault
//     signs each client assertion and the key never leaves it.
//   - ManagedHSMCredential: the key is in a Managed HSM (keys only); the HSM signs, the
//     certificate comes from a file or a Key Vault certificate, new key versions are followed.
//   - FederatedCredential: no certificate at all: the app trusts a user-assigned managed
//     identity, a Kubernetes service account (TokenFileSource) or a GitHub Actions job
//     (GitHubActionsSource) as a federated identity credential, and their token is the client
//     assertion.
//   - NewEnvironmentCredential picks one of these from environment variables.
//
// # Token cache
//
// Tokens are cached per tenant, scopes and CAE in front of MSAL. A cached token is returned
// without locks or allocations. Concurrent callers that find no valid token share one request to
// Entra. A token is refreshed in the background, by one caller, when its refresh_in has passed or,
// without refresh_in, when 5 minutes (or half its lifetime, if shorter) remain; meanwhile callers
// keep receiving the valid token. A failed refresh keeps the token and is retried after a backoff.
// A claims challenge (TokenRequestOptions.Claims, as CAE sends) bypasses the cache. Freshness is
// judged on the monotonic and the wall clock, so a machine that slept does not hand out a token
// that expired meanwhile.
//
// # Certificate rotation
//
// KeyVaultCertCredential and HSMSignedAssertionCredential re-read an unpinned certificate once per
// RotationCheckInterval, and at once when Entra rejects the certificate (AADSTS700027, 700024,
// 7000214, 1000502, 7000274, 7000277): the rejected request is then sent once more with the new
// certificate. Concurrent rejections share one vault read. They implement
// assertion.RejectionHandler, so an obo.App built on them (obo.NewAppWithAssertion) follows the
// rotation the same way.
//
// # Tenants
//
// GetToken targets the credential's tenant, or TokenRequestOptions.TenantID when that tenant is in
// AdditionallyAllowedTenants ("*" allows any), exactly as azidentity's credentials do.
//
// # Errors
//
// A refusal from Microsoft Entra ID is an *AuthenticationError whose message has the AADSTS code,
// correlation ID and a hint; errors.As also finds *azidentity.AuthenticationFailedError. When Entra
// cannot be reached, or answers with something that is not a usable token response, errors.As also
// finds an *azidentity.AuthenticationFailedError (without RawResponse), as with azidentity. Callers
// that waited for the same request each receive their own error. A panic in a Signer, a vault
// credential or another callback becomes an error wrapping assertion.ErrPanic for every caller
// that waited, and is logged with its stack. Errors never contain a token, an assertion, a key or
// a token response body.
//
// # Logging
//
// Set SignedAssertionCredentialOptions.Logger (log/slog) to see tokens acquired, refreshed and
// failed, with tenant, scopes and expiry. HTTP traffic reaches an azcore/log listener as usual;
// request and response bodies are never logged, as they carry assertions and tokens.
package credential
