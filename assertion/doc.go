// Package assertion builds RFC 7523 client assertions: the signed JWTs with which an app proves
// to Microsoft Entra ID that it holds the private key of a certificate registered on its app
// registration, instead of sending a client secret.
//
// # When to use it
//
// Most services use a credential from package credential, which builds assertions with this
// package. Use it directly to plug your own key into those credentials (a PKCS#11 token, a TPM,
// a cloud KMS): implement Signer, or wrap any crypto.Signer with NewLocalSigner.
//
// # What an assertion holds
//
// Header: alg (PS256 or RS256), typ "JWT", x5t#S256 and x5t (the certificate's SHA-256 and
// SHA-1 thumbprints, base64url) and, with BuilderOptions.SendCertificateChain, x5c (the chain,
// standard base64 DER: subject name + issuer authentication). Claims: aud (the token endpoint),
// iss and sub (the client ID), jti (random), nbf, iat and exp (10 minutes by default, 1 hour at
// most).
//
// # Reuse
//
// A Builder reuses a signed assertion for the same audience while at least half of its lifetime
// remains, and concurrent callers share one signature: with a Key Vault or HSM signer, every
// signature is a billed and throttled operation.
//
// # Rotation
//
// A Provider whose certificate rotates may implement RejectionHandler: the credentials of package
// credential and obo.NewAppWithAssertion tell it when Entra rejects one of its assertions because
// of the certificate, and send the request once more when it has a new one. Builder.Owns tells
// which certificate an assertion was built for.
//
// # Errors
//
// Bad input is refused with errors wrapping ErrUnsupportedKey, ErrUnsupportedAlgorithm,
// ErrKeyMismatch, ErrCertificateExpired or ErrInvalidOptions, whose messages name the
// certificate (subject and thumbprint) and what to do. A panic in a Signer becomes an error wrapping
// ErrPanic for every caller waiting on that signature.
//
// # Observability
//
// This package logs, traces and measures nothing itself: the credentials of package credential
// that use a Builder do (a span per GetToken through ClientOptions.TracingProvider, slog records,
// package metrics). A Signer's Sign receives the context of the token request, so a Signer of your
// own that calls a service (a KMS, an HSM over the network) makes its spans children of the
// GetToken span by passing ctx on.
package assertion
