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
// X-MS-TOKEN-AAD-ACCESS-TOKEN, principal from X-MS-CLIENT-PRINCIPAL), or the Bearer token alone
// (no principal). The user token is read locally before the exchange so that tokens that are not
// JWTs, expired, or for another audience fail at once; its signature is checked by Entra during
// the exchange.
//
// # Cache and isolation
//
// OBO tokens are cached per user assertion (SHA-256 of the user's token), tenant and scopes in one
// bounded LRU per App (AppOptions.MaxCachedUsers, default 10,000); entries expire with their
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
package obo
