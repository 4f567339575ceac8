// Package emulator runs in-process HTTPS emulators of Microsoft Entra ID (the token service) and
// Azure Key Vault (certificates, secrets and keys) for tests.
//
// The emulators follow the real services closely enough for the real Azure SDK clients
// (azidentity, azsecrets, azkeys, azcertificates) and MSAL Go to talk to them unchanged: the same
// routes, JSON shapes, error bodies (AADSTS codes, Key Vault error codes and messages), the Key
// Vault 401 challenge, PKCS#12 and PEM secret encodings, and RS256/PS256 client assertions.
//
// Every emulator listens on 127.0.0.1 only, on a port picked by the system, and serves HTTPS
// with a certificate signed by one process-wide test CA: give clients [HTTPClient] (or trust
// [CertPool]). Faults (errors, Retry-After, delays, reset connections) can be injected with
// [Fault], and per-endpoint counters show what clients did.
//
// [Entra] issues RS256 access tokens for client credentials (secret or certificate assertion)
// and on-behalf-of requests; [Vault] accepts those tokens. Both are meant for tests only: keys
// are fixtures from internal/testcerts, and nothing here is safe for production use. Tokens are
// never logged.
package emulator
