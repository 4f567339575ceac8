package emulator

import (
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/golang-jwt/jwt/v5"

	"github.com/azcredkit/azcredkit/internal/testcerts"
)

// Entra emulates the Microsoft Entra ID token service (v2 endpoints) for one or more tenants.
// Create it with [NewEntra] and stop it with [Entra.Close]. All methods are safe for concurrent
// use.
//
// Routes: GET /{tenant}/discovery/instance (and /common/...), GET
// /{tenant}/v2.0/.well-known/openid-configuration, GET /{tenant}/discovery/v2.0/keys and POST
// /{tenant}/oauth2/v2.0/token (client_credentials and on-behalf-of).
//
// Access tokens have Entra's shapes: for Azure's own resources (https:// URIs such as Storage, Key
// Vault, ARM) v1 tokens (iss https://sts.windows.net/{tenant}/, ver "1.0", aud the resource URI,
// appid/appidacr, upn/unique_name); for an API registered as an app (named by its client ID or an
// App ID URI, see [App.AddIdentifierURI]) v2 tokens (aud = the API's client ID, azp/azpacr,
// preferred_username). A scope for an API that is not registered fails with AADSTS500011.
// Client assertions are verified as Entra does: RS256 with the certificate named by x5t, PS256
// (salt length 32) with the one named by x5t#S256, aud the tenant's token endpoint as one string.
// Tokens are signed RS256 with a key published in every tenant's jwks_uri (kid = x5t); see
// [Entra.RolloverSigningKey], [Entra.SetKeyEndpointOutage] and [KeysRequest] for key rollover and
// key-endpoint outages.
type Entra struct {
	srv      *server
	signKey  *rsa.PrivateKey
	signCert *x509.Certificate
	kid      string

	// keys are the published signing keys, the signing one last (see entra_keys.go); nil until
	// first used, then it starts with signKey.
	keysMu   sync.Mutex
	keys     []*signingKey
	keysDown atomic.Bool // SetKeyEndpointOutage

	mu        sync.Mutex
	tenants   map[string]*tenant // by lower-case id
	apps      map[string]*App    // by client id
	lifetime  time.Duration
	refreshIn time.Duration
	hook      func(*TokenRequest) *ErrorResponse
	mfa       map[string]bool // resources whose OBO tokens need MFA
	// fedPropagation delays new federated identity credentials (federated.go).
	fedPropagation time.Duration
}

type tenant struct {
	id    string
	users map[string]User // by object id
	sps   map[string]bool // client ids with a service principal here
}

// App is an application registration made by [Entra.RegisterApp]: its client ID, credentials
// (certificates and secrets) and the tenants it has a service principal in.
type App struct {
	e         *Entra
	clientID  string
	home      string
	certs     []*x509.Certificate
	secrets   []string
	roles     map[string][]string // resource -> app roles granted
	noConsent map[string]bool     // resources the app has no consent for (OBO answers AADSTS65001)
	uris      []string            // App ID URIs added to the default api://{client ID}
	fed       appFederation       // federated identity credentials (federated.go)
}

// User is a user account of a tenant, for [Entra.AddUser] and [Entra.UserToken].
type User struct {
	OID  string // object id
	Name string // display name
	UPN  string // user principal name
}

// UserTokenOptions shape a token made by [Entra.UserToken].
type UserTokenOptions struct {
	// MFA makes amr ["pwd","mfa"] instead of ["pwd"].
	MFA bool
	// Lifetime of the token; 0 means the emulator's token lifetime.
	Lifetime time.Duration
	// Expired makes a token that expired ten minutes ago: beyond the 5 minutes of clock skew
	// that verifiers of access tokens allow.
	Expired bool
	// IDToken makes an ID token instead: aud is the client ID, no scp.
	IDToken bool
	// ClientApp is the client the user signed in to (azp, or appid with V1); empty means a fixed
	// public client ID.
	ClientApp string
	// AppIDURI makes aud the API's App ID URI ("api://" + its client ID) instead of its client ID,
	// as some apps and v1 tokens have it.
	AppIDURI bool
	// V1 makes a v1 access token: iss https://sts.windows.net/{tenant}/, ver "1.0", aud the App ID
	// URI, appid/appidacr instead of azp/azpacr, upn and unique_name instead of
	// preferred_username. It does not apply to ID tokens.
	V1 bool
}

// userClientApp is the azp of user tokens when UserTokenOptions.ClientApp is empty.
const userClientApp = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"

var entraCount atomic.Uint64

// NewEntra starts an Entra emulator on https://127.0.0.1:PORT/ with no tenants.
func NewEntra() *Entra { return NewEntraOn(nil) }

// NewEntraOn is [NewEntra] serving on ln (a 127.0.0.1 listener; nil picks a port).
func NewEntraOn(ln net.Listener) *Entra {
	n := entraCount.Add(1)
	key := testcerts.RSA(2048, int(n%testcerts.Keys2048))
	cert := testcerts.Cert(key, testcerts.Options{CommonName: "azcredkit emulator token signing"})
	sum := sha1.Sum(cert.Raw)
	e := &Entra{
		signKey:  key,
		signCert: cert,
		kid:      base64.RawURLEncoding.EncodeToString(sum[:]),
		tenants:  map[string]*tenant{},
		apps:     map[string]*App{},
		lifetime: time.Hour,
		mfa:      map[string]bool{},
	}
	e.srv = newServerOn(ln, http.HandlerFunc(e.serveHTTP))
	registerEntraHost(e.srv.host, true)
	return e
}

// Close stops the emulator and waits for requests in progress to end.
func (e *Entra) Close() {
	registerEntraHost(e.srv.host, false)
	e.srv.close()
}

// AuthorityHost returns "https://127.0.0.1:PORT/", the value for
// cloud.Configuration.ActiveDirectoryAuthorityHost.
func (e *Entra) AuthorityHost() string { return "https://" + e.srv.host + "/" }

// TokenEndpoint returns the token endpoint of a tenant: AuthorityHost + tenant +
// "/oauth2/v2.0/token" (also the aud a client assertion must have).
func (e *Entra) TokenEndpoint(tenant string) string {
	return e.AuthorityHost() + tenant + "/oauth2/v2.0/token"
}

// ClientOptions returns Azure SDK client options for credentials using this emulator: its
// authority host and [HTTPClient] as the transport.
func (e *Entra) ClientOptions() azcore.ClientOptions {
	return azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: e.AuthorityHost()},
		Transport: HTTPClient(),
	}
}

// tenantLocked returns the tenant, creating it when create is set. e.mu must be held.
func (e *Entra) tenantLocked(id string, create bool) *tenant {
	t := e.tenants[strings.ToLower(id)]
	if t == nil && create {
		t = &tenant{id: id, users: map[string]User{}, sps: map[string]bool{}}
		e.tenants[strings.ToLower(id)] = t
	}
	return t
}

func (e *Entra) lookupTenant(id string) *tenant {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tenantLocked(id, false)
}

// AddTenant creates a tenant (a directory). Adding an existing tenant does nothing.
func (e *Entra) AddTenant(tenantID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tenantLocked(tenantID, true)
}

// RegisterApp registers an application with a service principal in homeTenant (created if
// needed) and returns it. Registering a client ID again returns the existing app.
func (e *Entra) RegisterApp(homeTenant, clientID string) *App {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tenantLocked(homeTenant, true).sps[clientID] = true
	if a := e.apps[clientID]; a != nil {
		return a
	}
	a := &App{e: e, clientID: clientID, home: homeTenant, roles: map[string][]string{}, noConsent: map[string]bool{}}
	e.apps[clientID] = a
	return a
}

// ClientID returns the app's client (application) ID.
func (a *App) ClientID() string { return a.clientID }

// AddServicePrincipal provisions the (multi-tenant) app in another tenant, created if needed.
func (a *App) AddServicePrincipal(tenantID string) {
	a.e.mu.Lock()
	defer a.e.mu.Unlock()
	a.e.tenantLocked(tenantID, true).sps[a.clientID] = true
}

// AddCertificate registers a certificate credential (its public key).
func (a *App) AddCertificate(cert *x509.Certificate) {
	a.e.mu.Lock()
	defer a.e.mu.Unlock()
	for _, c := range a.certs {
		if c.Equal(cert) {
			return
		}
	}
	a.certs = append(a.certs, cert)
}

// RemoveCertificate removes a certificate credential.
func (a *App) RemoveCertificate(cert *x509.Certificate) {
	a.e.mu.Lock()
	defer a.e.mu.Unlock()
	for i, c := range a.certs {
		if c.Equal(cert) {
			a.certs = append(a.certs[:i:i], a.certs[i+1:]...)
			return
		}
	}
}

// AddSecret registers a client secret.
func (a *App) AddSecret(secret string) {
	a.e.mu.Lock()
	defer a.e.mu.Unlock()
	a.secrets = append(a.secrets, secret)
}

// GrantRoles grants the app application permissions (app roles) on a resource, such as
// "https://storage.azure.com"; its app-only tokens for that resource carry them in roles.
func (a *App) GrantRoles(resource string, roles ...string) {
	a.e.mu.Lock()
	defer a.e.mu.Unlock()
	r := normResource(resource)
	a.roles[r] = append(a.roles[r], roles...)
}

// RequireConsent withdraws consent for the app's delegated permissions on resource (for example
// "https://storage.azure.com"), in every tenant: on-behalf-of requests of the app for that resource
// fail as Entra's do when neither the user nor an administrator consented: 400 invalid_grant,
// AADSTS65001, suberror consent_required and no claims. Client credentials requests are not
// affected. [App.GrantConsent] gives the consent back.
func (a *App) RequireConsent(resource string) {
	a.e.mu.Lock()
	defer a.e.mu.Unlock()
	a.noConsent[normResource(resource)] = true
}

// GrantConsent records consent for the app's delegated permissions on resource, undoing
// [App.RequireConsent] (as an administrator's consent would). Apps have consent by default.
func (a *App) GrantConsent(resource string) {
	a.e.mu.Lock()
	defer a.e.mu.Unlock()
	delete(a.noConsent, normResource(resource))
}

// IdentifierURI returns "api://" + client ID, the app's default App ID URI. Scopes of the app as
// a resource may name it by this URI, by any added with [App.AddIdentifierURI] or by its bare
// client ID; its v2 access tokens have aud = the client ID whichever was used.
func (a *App) IdentifierURI() string { return "api://" + a.clientID }

// AddIdentifierURI adds an App ID URI (for example "api://contoso.example/files") by which
// scopes may name the app as a resource and which an on-behalf-of user assertion may carry as
// aud. Entra keeps App ID URIs unique; give each URI to one app only (with two, either may be
// taken).
func (a *App) AddIdentifierURI(uri string) {
	a.e.mu.Lock()
	defer a.e.mu.Unlock()
	uri = normResource(uri)
	for _, u := range a.uris {
		if strings.EqualFold(u, uri) {
			return
		}
	}
	a.uris = append(a.uris, uri)
}

// namesLocked reports whether resource (normalized) names the app: its client ID or one of its
// App ID URIs, compared case-insensitively. a.e.mu must be held.
func (a *App) namesLocked(resource string) bool {
	if strings.EqualFold(resource, a.clientID) || strings.EqualFold(resource, a.IdentifierURI()) {
		return true
	}
	for _, u := range a.uris {
		if strings.EqualFold(resource, u) {
			return true
		}
	}
	return false
}

// aliasesLocked returns every name of the app as a resource. a.e.mu must be held.
func (a *App) aliasesLocked() []string {
	return append([]string{a.clientID, a.IdentifierURI()}, a.uris...)
}

// SetTokenLifetime sets the lifetime of the tokens issued from now on (default 1h; at least
// 1s). expires_in is in whole seconds.
func (e *Entra) SetTokenLifetime(d time.Duration) {
	if d < time.Second {
		d = time.Second
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lifetime = d.Truncate(time.Second)
}

// SetRefreshIn sets the refresh_in of token responses (whole seconds); 0, the default, leaves
// it out.
func (e *Entra) SetRefreshIn(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.refreshIn = d
}

// Inject adds a fault. By default it applies to token endpoint requests.
func (e *Entra) Inject(f Fault) { e.srv.inject(f) }

// Count returns a counter: "token" (every token request), "token:client_credentials",
// "token:obo", "token:failed" (error answers, injected ones included), "instance_discovery",
// "openid_configuration", "keys" (JWKS requests).
func (e *Entra) Count(name string) int64 { return e.srv.get(name) }

// ResetCounts sets every counter to 0.
func (e *Entra) ResetCounts() { e.srv.resetCounts() }

// OnToken sets a hook called for each token request after it is parsed and before it is
// validated. A non-nil result is sent as the error answer; nil lets the request proceed. The
// hook runs on the server's goroutines; nil removes it.
func (e *Entra) OnToken(hook func(*TokenRequest) *ErrorResponse) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.hook = hook
}

// RequireMFA makes on-behalf-of requests for resource (for example "https://storage.azure.com")
// fail with an MFA step-up (AADSTS50076 with claims) unless the user's token has amr "mfa".
func (e *Entra) RequireMFA(resource string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mfa[normResource(resource)] = true
}

// AddUser adds (or replaces) a user of a tenant, created if needed.
func (e *Entra) AddUser(tenant string, u User) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tenantLocked(tenant, true).users[u.OID] = u
}

// UserToken returns a v2 access token of a tenant's user for the API audienceApp (a client ID), as
// Entra issues it to the client app the user signed in to: aud is the API's client ID (its App ID
// URI with opts.AppIDURI), azp the client app and azpacr "0" (a public client), scp
// "user_impersonation", amr ["pwd"] (["pwd","mfa"] with opts.MFA), preferred_username and upn.
// opts.V1 makes the v1 shape instead (see [UserTokenOptions]). With opts.IDToken it is an ID token
// (aud = client ID, no scp, no azp). The user need not have been added; name and upn come from
// [Entra.AddUser] if it was.
func (e *Entra) UserToken(tenant, userOID, audienceApp string, opts UserTokenOptions) string {
	e.mu.Lock()
	lifetime := e.lifetime
	var u User
	if t := e.tenantLocked(tenant, false); t != nil {
		u = t.users[userOID]
	}
	e.mu.Unlock()
	if opts.Lifetime > 0 {
		lifetime = opts.Lifetime
	}
	now := time.Now()
	iat := now
	if opts.Expired {
		iat = now.Add(-lifetime - 10*time.Minute)
	}
	amr := []string{"pwd"}
	if opts.MFA {
		amr = append(amr, "mfa")
	}
	v1 := opts.V1 && !opts.IDToken
	claims := jwt.MapClaims{
		"iss": e.issuer(tenant, v1),
		"iat": iat.Unix(),
		"nbf": iat.Unix(),
		"exp": iat.Add(lifetime).Unix(),
		"tid": tenant,
		"oid": userOID,
		"sub": pairwiseID(userOID, audienceApp),
		"ver": tokenVersion(v1),
		"uti": randomUTI(),
		"amr": amr,
	}
	if u.Name != "" {
		claims["name"] = u.Name
	}
	if u.UPN != "" {
		claims["upn"] = u.UPN
		if v1 {
			claims["unique_name"] = u.UPN
		} else {
			claims["preferred_username"] = u.UPN
		}
	}
	if opts.IDToken {
		claims["aud"] = audienceApp
		return e.sign(claims)
	}
	client := opts.ClientApp
	if client == "" {
		client = userClientApp
	}
	claims["aud"] = audienceApp
	if opts.AppIDURI || v1 {
		claims["aud"] = "api://" + audienceApp
	}
	claims["scp"] = "user_impersonation"
	setClient(claims, v1, client, "0")
	return e.sign(claims)
}

// sign signs claims as an RS256 JWT with the emulator's current signing key.
func (e *Entra) sign(claims jwt.MapClaims) string {
	k := e.currentKey()
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = k.kid
	t.Header["x5t"] = k.kid
	s, err := t.SignedString(k.key)
	if err != nil {
		panic("emulator: signing a token: " + err.Error())
	}
	return s
}

var errUnknownKey = errors.New("token not signed by this emulator")

// Verify checks that token is a JWT issued by this emulator (RS256 signature with one of its
// published signing keys, found by kid; exp and nbf) and returns its claims. It does not check
// aud, iss or tid.
func (e *Entra) Verify(token string) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if pub := e.publicKey(kid); pub != nil {
			return pub, nil
		}
		return nil, errUnknownKey
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithExpirationRequired())
	if err != nil {
		return nil, err
	}
	return claims, nil
}

// normResource drops a trailing slash so "https://storage.azure.com/" and
// "https://storage.azure.com" are the same resource.
func normResource(r string) string {
	if strings.HasSuffix(r, "/") && !strings.HasSuffix(r, "//") {
		return strings.TrimSuffix(r, "/")
	}
	return r
}

// stableID derives a UUID-shaped id from parts (object ids that stay the same across runs).
func stableID(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}

// pairwiseID is the sub of a user's token for an app.
func pairwiseID(userOID, app string) string {
	sum := sha256.Sum256([]byte("sub\x00" + userOID + "\x00" + app))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// spObjectID is the object id of an app's service principal in a tenant.
func spObjectID(clientID, tenantID string) string {
	return stableID("sp", strings.ToLower(clientID), strings.ToLower(tenantID))
}

func randomUTI() string {
	return base64.RawURLEncoding.EncodeToString(randomBytes(16))
}

// isV1Resource reports whether tokens for resource are v1: Azure first-party resources
// (https:// URIs such as Storage, Key Vault, ARM, Event Hubs).
func isV1Resource(resource string) bool { return strings.HasPrefix(resource, "https://") }

// issuer returns the iss of a token of the given version for a tenant.
func (e *Entra) issuer(tid string, v1 bool) string {
	if v1 {
		return "https://sts.windows.net/" + tid + "/"
	}
	return e.AuthorityHost() + tid + "/v2.0"
}

// discoveryHostOK reports whether an authorization endpoint URL is this emulator's.
func (e *Entra) discoveryHostOK(authorizationEndpoint string) (tenant string, ok bool) {
	u, err := url.Parse(authorizationEndpoint)
	if err != nil || !strings.EqualFold(u.Host, e.srv.host) {
		return "", false
	}
	segs := strings.Split(strings.Trim(u.Path, "/"), "/")
	return segs[0], true
}
