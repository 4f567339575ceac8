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
//
// # Observability
//
// Traces: each GetToken is a span through the TracingProvider of the pipeline to Entra
// (SignedAssertionCredentialOptions.ClientOptions.TracingProvider), as azidentity's: named
// "{Credential}.GetToken" (SignedAssertionCredential, CertificateCredential for
// NewCertificateCredential, KeyVaultCertCredential, HSMSignedAssertionCredential,
// ManagedHSMCredential, FederatedCredential; EnvironmentCredential's is its chosen credential's),
// kind internal, attribute az.namespace=Microsoft.Entra, a child of the caller's span, one per
// call, cached calls included, with the error status when it fails. Inside an Azure SDK client's
// own span (an azsecrets call whose bearer token policy asks for a token) azcore suppresses it,
// as it does azidentity's; the token request's HTTP span is then a child of the client's span.
// Ours also say azcredkit.cache (memory, or none when the token came from Entra),
// azcredkit.refresh_reason (no_token, expired, stale: the call started a background refresh,
// claims_challenge) and, on failure, azcredkit.aadsts; never the tenant, client, scope or token
// (the status description too holds only the error type, HTTP status and AADSTS code). The work
// runs under the span's context, so Entra's HTTP spans, the Key Vault requests that load the
// certificate or sign (with the same provider in the Vault options) and a federated source's
// requests are its children; a token request shared by concurrent callers runs under
// context.WithoutCancel of the first caller's, whose span it joins. Without a TracingProvider the
// cached GetToken allocates nothing.
//
// Logs: the records say what azidentity's Authentication events say, at the same moments (a
// record per successful GetToken: Info when the token came from Entra, Debug when the cache
// answered), plus failures with their AADSTS code, background refreshes, certificate loads and
// rotations; each has a stable "event" attribute (acquired, cached, refreshed, failed,
// refresh_failed, certificate_loaded, certificate_rotated, certificate_expires_soon,
// credential_chosen) and "source" (entra, memory). Package azlog hands them to an azcore/log
// listener in azidentity's words.
//
// Certificate expiry: a certificate that expires within CertificateExpiryWarning (30 days) when
// it is loaded gets a warning, once per load (at construction for a file, at each load and
// rotation from Key Vault or Managed HSM).
//
// Metrics: SignedAssertionCredentialOptions.Metrics (package metrics) counts GetToken calls by
// source (the hit ratio), token requests to Entra and their latency, refresh outcomes, Key Vault
// reads, sign operations and rotations, and sets the certificate's days to expiry, labelled with
// the credential type only. A Recorder that does not allocate keeps the cached GetToken free of
// allocations.
package credential
