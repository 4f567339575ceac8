// Package obo lets a web app or API behind App Service / Container Apps authentication ("Easy
// Auth") call Azure as the signed-in user: it takes the user's access token from the request,
// exchanges it On-Behalf-Of (OAuth 2.0 jwt-bearer grant) for a token to Storage, Key Vault,
// Graph..., and hands any Azure SDK for Go client an azcore.TokenCredential for that user.
//
// # Setup
//
// Create one App per process, authenticated with a certificate (NewAppWithAssertion with a
// credential from package credential: no secret) or a client secret (NewAppWithSecret). Wrap your
// handlers with App.Middleware and take the credential with CredentialFromContext:
//
//	app, _ := obo.NewAppWithAssertion(tenantID, clientID, certCredential, nil)
//	mux.Handle("/files", app.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
//		cred, _ := obo.CredentialFromContext(r.Context())
//		client, _ := azblob.NewClient(accountURL, cred, nil) // acts as the user
//		...
//	})))
//
// Easy Auth must store an access token for this app: in the login parameters, request
// "scope=openid profile offline_access api://{client ID}/user_impersonation". An id token cannot be
// exchanged (ErrNoUserToken says so). API callers may instead send "Authorization: Bearer".
//
// # Trust
//
// X-MS-* headers are trusted only behind App Service authentication (WEBSITE_AUTH_ENABLED=True),
// which strips client-sent copies, or when AppOptions.TrustEasyAuthHeaders is set (Container Apps,
// local development, tests). Otherwise they are refused with ErrUntrustedHeaders: anyone could send
// them. The user token and the principal come from one source: the Easy Auth headers (token from
// X-MS-TOKEN-AAD-ACCESS-TOKEN, principal from X-MS-CLIENT-PRINCIPAL, which must name the token's
// user), or the Bearer token alone (no principal).
//
// # Verification
//
// Every user access token, from the Easy Auth header or from "Authorization: Bearer", is verified
// by the App itself before it is exchanged, cached or believed (UserObjectID, UserName,
// Principal): behind Easy Auth too, whose own checks it does not rely on. Checked, cheapest
// first, so that a malformed or foreign token costs no network request:
//   - a compact JWS signed RS256 (alg "none", the HMAC algorithms, PS256 and EC are refused; so is
//     an HS256 token keyed with the RSA public key), at most MaxUserTokenSize bytes, each part in
//     its one canonical unpadded base64url spelling (so that one token is one cache entry), its
//     claims a JSON object whose names are matched exactly and given once;
//   - an access token with scp (a delegated user token; app-only tokens and id tokens are refused);
//   - aud: the client ID, "api://{client ID}" or one of AppOptions.Audiences (ignoring the case
//     of ASCII letters and a trailing slash);
//   - exp and nbf (and iat) with at most 5 minutes of clock skew: a token expired beyond it is
//     refused with ErrUserTokenExpired, one not valid yet with ErrInvalidUserToken;
//   - tid: a tenant ID, and the App's tenant or one of AdditionallyAllowedTenants ("*": any); a
//     tenant configured by domain name has its ID read from its OpenID configuration;
//   - the signature, with the key named by kid among the tenant's signing keys: those of the
//     jwks_uri of {authority}/{tid}/v2.0/.well-known/openid-configuration, on the authority host
//     of AppOptions.ClientOptions.Cloud, fetched through a pipeline built from
//     AppOptions.ClientOptions (so transports, retries, sovereign clouds and emulators work);
//   - iss: the tenant's v2 issuer (from that document) or its v1 issuer (from
//     {authority}/{tid}/.well-known/openid-configuration: https://sts.windows.net/{tid}/ in the
//     public cloud).
//
// A token that fails gets an error wrapping ErrInvalidUserToken that says which check failed; it
// costs no request to Entra's token endpoint and takes no room in the cache; Middleware answers it
// with 401 (error="invalid_token"). No option turns verification off.
//
// Keys are cached per tenant: the first request of a tenant fetches its configuration and keys
// once for all concurrent requests; a kid that is not among the keys fetches them again at once,
// then at most once per 5 minutes per tenant (random kids cannot make the App flood Entra); keys
// are fetched again after 24 hours. When a fetch fails, the keys already fetched go on verifying
// tokens and the next attempt backs off (1 s, doubling, at most 30 s); when none were ever fetched
// (a cold process during an outage), tokens are refused: fail closed. Each fetch is bounded (10
// s, 1 MB). With AdditionallyAllowedTenants "*", other tenants' keys live in a bounded cache
// (AppOptions.MaxTenants) and tenants never seen before are admitted at most 30 at once then 1 a
// second; beyond that their tokens are refused without a fetch. A new tenant's token is first
// checked with the App's tenant's key of its kid (Entra signs every tenant's tokens with the same
// keys): a forged one is refused before anything is fetched for its tenant, and a genuine one is
// admitted under a bound of its own, which forged tokens naming random tenants cannot use up. A
// tenant whose first fetch fails keeps no place in the cache: its next token is a new tenant's.
//
// Verification happens once per distinct token: CredentialFromRequest (and Middleware) verify
// under the request's context, Credential within at most 5 seconds; the result stays with the
// token's cache entry (keyed by the token's SHA-256), so later requests of the token cost no RSA
// verification.
//
// # Cache and isolation
//
// OBO tokens are cached per user assertion (SHA-256 of the user's token), tenant and scopes in one
// bounded LRU per App (AppOptions.MaxCachedUsers, default 10,000; at most MaxTokensPerUser of one
// user, so that one user's many tokens cannot push the others out); entries expire with their
// tokens, and concurrent requests of one user share one exchange. A credential is bound to one
// user assertion for its whole life: it can never return another user's token.
//
// # Shared cache across instances
//
// With AppOptions.SharedCache (package obo/rediscache: Redis), the instances of an app share the
// users' OBO tokens: a request that the App's own cache cannot answer looks in the shared cache
// within SharedCacheOptions.Timeout (75 ms), then exchanges; the token goes to the App's cache
// and, in the background, to the shared cache until it expires. Entries are AES-256-GCM
// encrypted with AppOptions.SharedCacheKeys under names that reveal no token and no user; any
// failure of the store is a miss, a circuit breaker stops calling a failing store for a while,
// and nothing fails because of it. App.SharedCacheStats counts what happened;
// App.FlushSharedCache waits for the pending writes at shutdown.
//
// # Step-up and consent
//
// When Entra needs the user to do more, GetToken returns an *InteractionRequiredError. For a
// step-up (MFA, conditional access) it carries Entra's claims challenge; WriteResponse answers API
// callers with 401 and WWW-Authenticate: Bearer realm="", authorization_uri="...",
// error="insufficient_claims", claims="...", and sends browsers through the Easy Auth login with
// the claims. When consent is missing (Consent reports true: AADSTS65001, no claims), API callers
// get 403 with error="insufficient_scope" and the scope to request with prompt=consent, and
// browsers go through the Easy Auth login with prompt=consent. A request with
// TokenRequestOptions.Claims (a resource's claims challenge) is never answered from the cache.
//
// # Refusals
//
// Middleware tells a refused client only what it can act on (RFC 6750: no error code when no
// token was sent, error="invalid_token" for a token that cannot be used); the reason, with the
// header or option to fix, goes to AppOptions.Logger.
//
// Tokens never appear in errors or logs.
//
// # Observability
//
// Traces: with AppOptions.ClientOptions.TracingProvider, each EasyAuthOBOCredential.GetToken is a
// span "EasyAuthOBOCredential.GetToken" (kind internal, az.namespace Microsoft.Entra, a child of the
// caller's span; suppressed inside an Azure SDK client's own span, as azidentity's are), whose
// azcredkit.cache attribute says which cache answered: memory (the App's own), shared
// (AppOptions.SharedCache) or none (an exchange, whose HTTP spans are its children), with
// azcredkit.refresh_reason and, on failure, the error status and azcredkit.aadsts. The shared
// cache's calls are made under the span's context (an exchange shared by several callers under
// context.WithoutCancel of the first one's), so a tracing Redis client's spans are its children.
// No span attribute names a tenant, user, scope or token.
//
// Logs: AppOptions.Logger gets the records of package credential (token acquired, refreshed,
// failed with its AADSTS code; at Debug, each GetToken answered from the cache), with the user's
// object ID and tenant, and the shared cache's warnings. Package azlog shows them to an azcore/log
// listener.
//
// Metrics: AppOptions.Metrics (package metrics) counts GetToken calls by source (memory, shared,
// entra), exchanges and their latency, refresh outcomes, the cache's size and evictions, and the
// shared cache's lookup latency, errors and breaker state, labelled EasyAuthOBOCredential.
package obo
