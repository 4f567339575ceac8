package obo

import (
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"time"
	"unsafe"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/internal/entra"
	"github.com/azcredkit/azcredkit/internal/metering"
	"github.com/azcredkit/azcredkit/internal/userjwt"
	"github.com/azcredkit/azcredkit/metrics"
)

const credName = "EasyAuthOBOCredential"

// AppOptions configures the middle-tier web app.
type AppOptions struct {
	azcore.ClientOptions
	AdditionallyAllowedTenants []string
	DisableInstanceDiscovery   bool
	// TrustEasyAuthHeaders trusts X-MS-TOKEN-AAD-* headers even when the process is not running
	// behind App Service / Container Apps authentication (which strips client-sent X-MS-* headers).
	// Leave false in production; set it for local development and tests.
	TrustEasyAuthHeaders bool
	// MaxCachedUsers bounds the per-user token cache; 0 means 10,000.
	MaxCachedUsers int

	// DisableBearerHeader stops CredentialFromRequest and Middleware from accepting the user's
	// token from "Authorization: Bearer" (API callers send it there). Optional; default false.
	DisableBearerHeader bool
	// Audiences are more audiences accepted for user tokens besides the client ID and
	// "api://{client ID}" (a custom App ID URI, for example). Optional.
	Audiences []string
	// MaxTenants bounds how many other tenants' signing keys are cached when
	// AdditionallyAllowedTenants holds "*" (the home tenant and listed tenants are always kept);
	// 0 means 1,000. Optional.
	MaxTenants int
	// Logger: as in credential.SignedAssertionCredentialOptions (never tokens). Optional.
	Logger *slog.Logger
	// Metrics receives the App's measurements, labelled with the credential type
	// EasyAuthOBOCredential: GetToken calls by source (memory, shared, entra: the hit ratios),
	// On-Behalf-Of exchanges and their latency, refresh outcomes, the cache's size and evictions,
	// and the shared cache's errors, latency and breaker state (see package metrics). The App's
	// own credential (NewAppWithAssertion's provider) measures its own token requests with the
	// Metrics of its options. Optional; nil measures nothing.
	Metrics metrics.Recorder

	// SharedCache, when set, shares OBO tokens between all instances of the app: a token that one
	// instance obtained serves the others and the processes that replace them after a restart.
	// When the store fails or is slow, the App goes on with its own cache and Entra.
	//
	// A token request that the App's own cache cannot answer looks in SharedCache (within
	// SharedCacheOptions.Timeout, 75 ms by default), then exchanges the user's token; the token
	// goes to the App's cache and, in the background, to SharedCache until it expires. Entries
	// are encrypted and authenticated; their names reveal no token and no user. Optional;
	// obo/rediscache implements it with Redis.
	SharedCache SharedCache
	// SharedCacheKeys encrypt and authenticate the shared entries (AES-256-GCM): 32-byte keys;
	// the first encrypts, every one decrypts (for rotation). Required with SharedCache: a missing
	// key or one of another length makes the constructor fail (so does a key given twice).
	//
	// Every instance must have the key that writes (the first) among its keys. To rotate: add the
	// new key last on every instance, then make it first, then, once the tokens written with the
	// old key have expired (a token lifetime: about 90 minutes, 28 hours with CAE), remove the old
	// key. An entry found under an older key is written again under the first.
	SharedCacheKeys [][]byte
	// SharedCacheOptions tune the use of SharedCache: time budget, circuit breaker, write queue.
	// Optional; the zero value is the default.
	SharedCacheOptions SharedCacheOptions
}

// App is the middle-tier application: its client credential plus one shared, bounded cache of
// per-user OBO tokens. Create one per process.
type App struct {
	client    *entra.Client
	verifier  *userjwt.Verifier
	clientID  string
	audiences []string
	trust     bool
	bearerOK  bool
	cache     *userCache
	shared    *sharedCache // nil without AppOptions.SharedCache
	logger    *slog.Logger
	meter     metering.Meter
	now       func() time.Time
	// authority is the cloud's authority host with a trailing slash
	// ("https://login.microsoftonline.com/"), for the authorization_uri of challenges.
	authority string
}

// NewAppWithSecret authenticates the app with a client secret. Prefer NewAppWithAssertion with a
// certificate credential: it needs no secret.
func NewAppWithSecret(tenantID, clientID, secret string, options *AppOptions) (*App, error) {
	if secret == "" {
		err := fmt.Errorf("obo: NewAppWithSecret: %w: the secret is empty", assertion.ErrInvalidOptions)
		if idErr := entra.CheckIDs("obo: NewAppWithSecret", tenantID, clientID); idErr != nil {
			// Every problem at once, not one per attempt.
			err = fmt.Errorf("%w; and %w", optionsError{idErr}, err)
		}
		return nil, err
	}
	cred, err := confidential.NewCredFromSecret(secret)
	if err != nil {
		return nil, fmt.Errorf("obo: %w", err)
	}
	return newApp(tenantID, clientID, entra.Config{Cred: cred}, options)
}

// NewAppWithAssertion authenticates the app with assertions from provider — for example a
// *credential.KeyVaultCertCredential or *credential.HSMSignedAssertionCredential.
//
// When provider implements assertion.RejectionHandler (both of those do), a token exchange that
// Entra refuses because of the assertion's certificate (AADSTS700027 after a rotation, for
// example) is reported to it and, when it has a newer certificate, sent once more: the App follows
// the rotation of its Key Vault certificate as the credential does.
func NewAppWithAssertion(tenantID, clientID string, provider assertion.Provider, options *AppOptions) (*App, error) {
	if provider == nil {
		return nil, fmt.Errorf("obo: NewAppWithAssertion: %w: the assertion provider is nil", assertion.ErrInvalidOptions)
	}
	auth := entra.Config{Assertion: provider.Assertion}
	if h, ok := provider.(assertion.RejectionHandler); ok {
		auth.AssertionRejected = h.AssertionRejected
	}
	return newApp(tenantID, clientID, auth, options)
}

// newApp builds the App; auth carries how the app authenticates (entra.Config's Cred, or
// Assertion and AssertionRejected).
func newApp(tenantID, clientID string, auth entra.Config, options *AppOptions) (*App, error) {
	var o AppOptions
	if options != nil {
		o = *options
	}
	if o.MaxCachedUsers < 0 {
		return nil, fmt.Errorf("obo: %w: MaxCachedUsers is %d; use 0 for the default (%d) or a positive bound", assertion.ErrInvalidOptions, o.MaxCachedUsers, DefaultMaxCachedUsers)
	}
	c, err := entra.NewClient(entra.Config{
		Credential: credName, TenantID: tenantID, ClientID: clientID,
		Cred: auth.Cred, Assertion: auth.Assertion, AssertionRejected: auth.AssertionRejected, Logger: o.Logger,
		ClientOptions: o.ClientOptions, AdditionallyAllowedTenants: o.AdditionallyAllowedTenants,
		DisableInstanceDiscovery: o.DisableInstanceDiscovery,
		// MSAL's own OBO cache keeps every user's token; a fresh MSAL client every
		// MaxCachedUsers exchanges keeps it within the same bound as ours.
		RecycleAfter: int64(cmp.Or(o.MaxCachedUsers, DefaultMaxCachedUsers)),
	})
	if err != nil {
		return nil, optionsError{fmt.Errorf("obo: %w", err)}
	}
	authority, err := entra.AuthorityHost(o.ClientOptions.Cloud) // NewClient accepted it
	if err != nil {
		return nil, optionsError{fmt.Errorf("obo: %w", err)}
	}
	if o.MaxTenants < 0 {
		return nil, fmt.Errorf("obo: %w: MaxTenants is %d; use 0 for the default (%d) or a positive bound", assertion.ErrInvalidOptions, o.MaxTenants, userjwt.DefaultMaxTenants)
	}
	m := metering.Meter{R: o.Metrics, Credential: credName}
	shared, err := newSharedCache(&o, clientID, authority)
	if err != nil {
		return nil, err
	}
	a := &App{
		client:    c,
		clientID:  clientID,
		audiences: append([]string{clientID, "api://" + clientID}, o.Audiences...),
		trust:     o.TrustEasyAuthHeaders || behindPlatformAuth(),
		bearerOK:  !o.DisableBearerHeader,
		cache:     newUserCache(o.MaxCachedUsers),
		shared:    shared,
		logger:    o.Logger,
		meter:     m,
		now:       time.Now,
		authority: authority,
	}
	a.cache.meter = m
	// The verifier reads the clock through a.now, so that tests moving a.now move it too.
	a.verifier, err = userjwt.New(userjwt.Config{
		AuthorityHost: authority, ClientOptions: o.ClientOptions,
		HomeTenant: tenantID, AllowedTenants: o.AdditionallyAllowedTenants,
		Audiences: a.audiences, MaxTenants: o.MaxTenants,
		Now: func() time.Time { return a.now() }, Logger: o.Logger, Credential: credName,
	})
	if err != nil {
		return nil, optionsError{fmt.Errorf("obo: %w", err)}
	}
	return a, nil
}

// CredentialFromRequest returns a credential that acts as the request's signed-in user: it takes
// the user's access token from X-MS-TOKEN-AAD-ACCESS-TOKEN (Easy Auth) and exchanges it OBO.
//
// The user token and the principal always come from one source, never from two:
//   - With trusted Easy Auth headers (behind App Service authentication, or
//     AppOptions.TrustEasyAuthHeaders) and an X-MS-TOKEN-AAD-ACCESS-TOKEN header, the token is that
//     header and Principal comes from the X-MS-CLIENT-PRINCIPAL headers, all set by the platform.
//   - Otherwise the token is the request's "Authorization: Bearer" token (unless
//     AppOptions.DisableBearerHeader) and Principal returns nil, even when trusted
//     X-MS-CLIENT-PRINCIPAL headers are present: they may describe another user than the Bearer
//     token (App Service sets them for API callers whose Bearer token it validated, but nothing
//     here could prove that they match). Use UserObjectID and UserName, which come from the token.
//   - Untrusted Easy Auth headers with no Bearer token get ErrUntrustedHeaders; no token at all, or
//     only an id token, gets ErrNoUserToken (with what to configure).
//
// The user token is verified before anything else happens with it (see the package
// documentation, "Verification"), under r.Context(): a token that fails gets an error wrapping
// ErrInvalidUserToken (ErrUserTokenExpired when it has expired). Behind Easy Auth, the principal
// headers must name the token's user (X-MS-CLIENT-PRINCIPAL-ID and the principal's object ID
// claim equal to the token's oid, its tenant claim to the token's tid): otherwise the request is
// refused with ErrInvalidUserToken. The first request of a token costs one RSA verification
// (and, for the first token of a tenant, one fetch of its OpenID configuration and keys); later
// requests of the same token are answered from the App's cache.
func (a *App) CredentialFromRequest(r *http.Request) (*EasyAuthOBOCredential, error) {
	c, _, err := a.fromRequest(r)
	return c, err
}

// fromRequest is CredentialFromRequest; presented reports whether the request carried a user
// token to try (one that CredentialFromRequest refused is then an invalid token, not a missing
// one).
func (a *App) fromRequest(r *http.Request) (_ *EasyAuthOBOCredential, presented bool, _ error) {
	h := r.Header
	var principal *Principal
	tok := ""
	switch {
	case hasEasyAuthHeaders(h) && a.trust && h.Get(keyAccessToken) != "":
		var err error
		if principal, err = principalFromHeaders(h); err != nil {
			return nil, false, err
		}
		tok = h.Get(keyAccessToken)
	case a.bearerOK && bearer(h) != "":
		// Only what the caller presents itself (verified like any user token); any principal
		// headers are left out: they are another source.
		tok = bearer(h)
	case hasEasyAuthHeaders(h) && a.trust:
		if h.Get(keyIDToken) != "" {
			return nil, false, fmt.Errorf("%w: Easy Auth passed only an id token (%s), which cannot be exchanged. Add this app's scope to Easy Auth's login parameters (scope=openid profile offline_access api://%s/user_impersonation) so that it stores an access token", ErrNoUserToken, HeaderIDToken, a.clientID)
		}
		return nil, false, fmt.Errorf("%w: no %s header: is the token store enabled in App Service authentication?", ErrNoUserToken, HeaderAccessToken)
	case hasEasyAuthHeaders(h):
		return nil, false, ErrUntrustedHeaders
	default:
		hint := "sign in through App Service authentication"
		if a.bearerOK {
			hint += ", or send the user's access token as \"Authorization: Bearer <token>\""
		}
		return nil, false, fmt.Errorf("%w: %s", ErrNoUserToken, hint)
	}
	c, err := a.credential(r.Context(), false, tok, principal)
	if err != nil {
		return nil, true, err
	}
	c.principal = principal
	return c, true, nil
}

// credentialTimeout bounds the verification of a user token in Credential, which has no context:
// the first token of a tenant may need its signing keys fetched.
const credentialTimeout = 5 * time.Second

// Credential is the same for a user access token obtained any other way (e.g. a Bearer header).
//
// The token is verified first, exactly as in CredentialFromRequest; Credential has no context,
// so a verification that needs the tenant's signing keys fetched waits for them at most 5
// seconds (use CredentialFromRequest, or Middleware, to bound it by the request's context).
func (a *App) Credential(userAccessToken string) (*EasyAuthOBOCredential, error) {
	return a.credential(context.Background(), true, userAccessToken, nil)
}

// credential returns the credential for token, verifying it under ctx unless the cache holds it
// (only verified tokens are ever cached); principal, when set, must describe the token's user.
// bound adds credentialTimeout to ctx, only when the token must be verified (the cached path
// allocates nothing for it).
func (a *App) credential(ctx context.Context, bound bool, token string, principal *Principal) (*EasyAuthOBOCredential, error) {
	if token == "" {
		return nil, fmt.Errorf("%w: the user access token is empty", ErrNoUserToken)
	}
	k := keyOf(token)
	e := a.cache.get(k)
	if e == nil {
		if bound {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, credentialTimeout)
			defer cancel()
		}
		claims, err := a.verify(ctx, token)
		if err != nil {
			return nil, err
		}
		if err := principal.matches(claims); err != nil {
			return nil, err
		}
		e = a.cache.add(k, claims)
	} else {
		if !a.now().Before(e.claims.Expires.Add(userjwt.Skew)) {
			a.cache.remove(k)
			return nil, fmt.Errorf("%w (at %s): the client must sign in again or refresh its token", ErrUserTokenExpired, e.claims.Expires.UTC().Format(time.RFC3339))
		}
		if err := principal.matches(e.claims); err != nil {
			return nil, err
		}
	}
	return &EasyAuthOBOCredential{app: a, userToken: token, entry: e}, nil
}

// keyOf hashes the user token without copying it (a token is about 1.5 KB; the copy was half the
// cost of a cached request).
func keyOf(token string) userKey {
	return userKey(sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token))))
}

// acquire sends one On-Behalf-Of exchange to Entra, measuring it (TokenAcquisitions,
// TokenAcquisitionDuration).
func (a *App) acquire(ctx context.Context, r entra.Request) (azcore.AccessToken, error) {
	if a.meter.R == nil {
		return a.client.Acquire(ctx, r)
	}
	start := time.Now()
	tok, err := a.client.Acquire(ctx, r)
	a.meter.Acquired(ctx, start, err)
	return tok, err
}

// CachedUsers returns how many user assertions the App's token cache holds (at most
// MaxCachedUsers).
func (a *App) CachedUsers() int { return a.cache.len() }
