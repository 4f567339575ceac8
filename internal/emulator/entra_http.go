package emulator

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	grantJWTBearer      = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	assertionTypeJWT    = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	maxFormBytes        = 1 << 20
	assertionMaxLife    = time.Hour
	assertionSkew       = 5 * time.Minute
	tokenBackdate       = 5 * time.Minute
	defaultDelegatedScp = "user_impersonation"
)

// route kinds of the Entra emulator.
const (
	routeNone = iota
	routeInstanceDiscovery
	routeOpenIDv2
	routeOpenIDv1
	routeKeys
	routeToken
)

// entraRoute classifies a request path and returns the tenant segment.
func entraRoute(path string) (kind int, tenantSeg string) {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(segs) < 3 || segs[0] == "" {
		return routeNone, ""
	}
	rest := strings.Join(segs[1:], "/")
	switch rest {
	case "discovery/instance":
		return routeInstanceDiscovery, segs[0]
	case "v2.0/.well-known/openid-configuration":
		return routeOpenIDv2, segs[0]
	case ".well-known/openid-configuration":
		return routeOpenIDv1, segs[0]
	case "discovery/v2.0/keys", "discovery/keys":
		return routeKeys, segs[0]
	case "oauth2/v2.0/token":
		return routeToken, segs[0]
	}
	return routeNone, ""
}

// isTokenRequest is the default match of Entra faults.
func isTokenRequest(r *http.Request) bool {
	kind, _ := entraRoute(r.URL.Path)
	return kind == routeToken
}

func (e *Entra) serveHTTP(w http.ResponseWriter, r *http.Request) {
	kind, tenantSeg := entraRoute(r.URL.Path)
	switch kind {
	case routeToken:
		e.srv.count("token")
	case routeInstanceDiscovery:
		e.srv.count("instance_discovery")
	case routeOpenIDv1, routeOpenIDv2:
		e.srv.count("openid_configuration")
	case routeKeys:
		e.srv.count("keys")
	}
	if e.srv.applyFault(w, r, isTokenRequest, func(status int) {
		if kind == routeToken {
			e.srv.count("token:failed")
		}
		e.writeEntraError(w, r, faultError(status))
	}) {
		return
	}
	if kind == routeNone {
		http.NotFound(w, r)
		return
	}
	if kind == routeToken {
		e.token(w, r, tenantSeg)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if kind == routeInstanceDiscovery {
		e.instanceDiscovery(w, r, tenantSeg)
		return
	}
	t := e.lookupTenant(tenantSeg)
	if t == nil {
		e.writeEntraError(w, r, errTenantNotFound(tenantSeg))
		return
	}
	switch kind {
	case routeOpenIDv2:
		e.openIDConfiguration(w, tenantSeg, t.id, true)
	case routeOpenIDv1:
		e.openIDConfiguration(w, tenantSeg, t.id, false)
	case routeKeys:
		e.jwks(w, r, t.id)
	}
}

// faultError is the body of an injected error status.
func faultError(status int) *ErrorResponse {
	switch {
	case status == http.StatusTooManyRequests:
		return entraError(status, "temporarily_unavailable", 0, "The service is throttling requests (injected fault). Retry later.")
	case status >= 500:
		return entraError(status, "temporarily_unavailable", 0, "The service is temporarily unavailable (injected fault). Retry later.")
	default:
		return entraError(status, "invalid_request", 0, "Injected fault.")
	}
}

func isWellKnownTenant(t string) bool {
	switch strings.ToLower(t) {
	case "common", "organizations", "consumers":
		return true
	}
	return false
}

func (e *Entra) instanceDiscovery(w http.ResponseWriter, r *http.Request, tenantSeg string) {
	if !isWellKnownTenant(tenantSeg) && e.lookupTenant(tenantSeg) == nil {
		e.writeEntraError(w, r, errTenantNotFound(tenantSeg))
		return
	}
	tenant := tenantSeg
	if ae := r.URL.Query().Get("authorization_endpoint"); ae != "" {
		t, ok := e.discoveryHostOK(ae)
		if !ok {
			e.writeEntraError(w, r, entraError(400, "invalid_instance", 50049, "Unknown or invalid instance."))
			return
		}
		if t != "" {
			tenant = t
		}
	}
	host := e.srv.host
	writeJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": e.AuthorityHost() + tenant + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata": []map[string]any{{
			"preferred_network": host,
			"preferred_cache":   host,
			"aliases":           []string{host},
		}},
	})
}

func (e *Entra) openIDConfiguration(w http.ResponseWriter, tenantSeg, tid string, v2 bool) {
	base := e.AuthorityHost() + tenantSeg
	doc := map[string]any{
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "token id_token", "token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"request_uri_parameter_supported":       false,
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"claims_supported":                      []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "name", "tid", "ver", "at_hash", "c_hash", "email"},
		"tenant_region_scope":                   "WW",
		"cloud_instance_name":                   "microsoftonline.com",
		"cloud_graph_host_name":                 "graph.windows.net",
		"msgraph_host":                          "graph.microsoft.com",
		"rbac_url":                              "https://pas.windows.net",
	}
	if v2 {
		doc["token_endpoint"] = base + "/oauth2/v2.0/token"
		doc["authorization_endpoint"] = base + "/oauth2/v2.0/authorize"
		doc["device_authorization_endpoint"] = base + "/oauth2/v2.0/devicecode"
		doc["end_session_endpoint"] = base + "/oauth2/v2.0/logout"
		doc["jwks_uri"] = base + "/discovery/v2.0/keys"
		doc["issuer"] = e.issuer(tid, false)
		doc["userinfo_endpoint"] = "https://graph.microsoft.com/oidc/userinfo"
	} else {
		doc["token_endpoint"] = base + "/oauth2/token"
		doc["authorization_endpoint"] = base + "/oauth2/authorize"
		doc["device_authorization_endpoint"] = base + "/oauth2/devicecode"
		doc["end_session_endpoint"] = base + "/oauth2/logout"
		doc["jwks_uri"] = base + "/discovery/keys"
		doc["issuer"] = e.issuer(tid, true)
		doc["userinfo_endpoint"] = base + "/openid/userinfo"
	}
	writeJSON(w, http.StatusOK, doc)
}

// token serves POST /{tenant}/oauth2/v2.0/token.
func (e *Entra) token(w http.ResponseWriter, r *http.Request, tenantSeg string) {
	fail := func(er *ErrorResponse) {
		e.srv.count("token:failed")
		e.writeEntraError(w, r, er)
	}
	if r.Method != http.MethodPost {
		fail(entraError(400, "invalid_request", 900561, "The endpoint only accepts POST, OPTIONS requests. Received a "+r.Method+" request."))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		fail(errMissingParam("grant_type"))
		return
	}
	form := r.PostForm
	tr := &TokenRequest{
		Tenant:    tenantSeg,
		GrantType: form.Get("grant_type"),
		ClientID:  form.Get("client_id"),
		Scopes:    strings.Fields(form.Get("scope")),
		Form:      form,
		Header:    r.Header,
	}
	var ca *jws
	if s := form.Get("client_assertion"); s != "" {
		if j, err := parseJWS(s); err == nil {
			ca = j
			tr.AssertionHeader, tr.AssertionClaims = j.header, j.claims
		}
	}
	e.mu.Lock()
	hook := e.hook
	e.mu.Unlock()
	if hook != nil {
		hr := *tr
		hr.Form = cloneValues(form)
		hr.Header = r.Header.Clone()
		hr.Scopes = append([]string(nil), tr.Scopes...)
		hr.AssertionHeader = cloneMap(tr.AssertionHeader)
		hr.AssertionClaims = cloneMap(tr.AssertionClaims)
		if er := hook(&hr); er != nil {
			fail(er)
			return
		}
	}
	t := e.lookupTenant(tenantSeg)
	if t == nil {
		fail(errTenantNotFound(tenantSeg))
		return
	}
	var (
		body map[string]any
		er   *ErrorResponse
	)
	switch tr.GrantType {
	case "":
		er = errMissingParam("grant_type")
	case "client_credentials":
		e.srv.count("token:client_credentials")
		body, er = e.clientCredentials(tr, t, ca)
	case grantJWTBearer:
		if form.Get("requested_token_use") != "on_behalf_of" {
			er = errMissingParam("requested_token_use")
			break
		}
		e.srv.count("token:obo")
		body, er = e.onBehalfOf(tr, t, ca)
	default:
		er = entraError(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type '"+tr.GrantType+"'.")
	}
	if er != nil {
		fail(er)
		return
	}
	if edit := e.srv.takeTokenEdit(r, isTokenRequest); edit != nil {
		edit(body)
	}
	writeJSON(w, http.StatusOK, body)
}

// appInTenant returns the app when it has a service principal in t.
func (e *Entra) appInTenant(clientID string, t *tenant) *App {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !t.sps[clientID] {
		return nil
	}
	return e.apps[clientID]
}

// dropOIDCScopes removes the OpenID Connect scopes MSAL adds.
func dropOIDCScopes(scopes []string) []string {
	var out []string
	for _, s := range scopes {
		switch s {
		case "openid", "profile", "offline_access":
			continue
		}
		out = append(out, s)
	}
	return out
}

func (e *Entra) clientCredentials(tr *TokenRequest, t *tenant, ca *jws) (map[string]any, *ErrorResponse) {
	if tr.ClientID == "" {
		return nil, errMissingParam("client_id")
	}
	scopes := dropOIDCScopes(tr.Scopes)
	if len(scopes) == 0 {
		return nil, errMissingParam("scope")
	}
	if len(scopes) != 1 || !strings.HasSuffix(scopes[0], "/.default") || scopes[0] == "/.default" {
		return nil, errClientCredentialsScope(strings.Join(scopes, " "))
	}
	resource := normResource(strings.TrimSuffix(scopes[0], "/.default"))
	app := e.appInTenant(tr.ClientID, t)
	if app == nil {
		return nil, errAppNotFound(tr.ClientID, tr.Tenant)
	}
	acr, er := e.authenticateClient(tr, app, ca)
	if er != nil {
		return nil, er
	}
	res, er := e.resolveResource(resource, t)
	if er != nil {
		return nil, er
	}
	e.mu.Lock()
	lifetime, refreshIn := e.lifetime, e.refreshIn
	var roles []string
	for _, k := range res.keys {
		roles = append(roles, app.roles[k]...)
	}
	e.mu.Unlock()

	oid := spObjectID(app.clientID, t.id)
	claims := e.accessTokenClaims(t.id, res, app.clientID, acr, lifetime)
	claims["oid"], claims["sub"], claims["idtyp"] = oid, oid, "app"
	if res.v1 {
		claims["idp"] = e.issuer(t.id, true)
	}
	if len(roles) > 0 {
		claims["roles"] = roles
	}
	e.addManagedIdentityClaims(app, claims)
	return tokenBody(e.sign(claims), lifetime, refreshIn), nil
}

// resource is the resource a token is issued for.
type resource struct {
	aud  string   // the token's aud
	v1   bool     // v1 token
	keys []string // the names of the resource that GrantRoles, RequireMFA and RequireConsent may use
}

// resolveResource finds the resource a scope names. Azure's own resources (https:// URIs such as
// Storage, Key Vault, ARM) take v1 tokens whose aud is the URI. Any other resource is an app
// registered in the emulator with a service principal in t, named by its client ID or an App ID
// URI; its tokens are v2, aud = its client ID. Other names fail as in Entra (AADSTS500011).
func (e *Entra) resolveResource(name string, t *tenant) (resource, *ErrorResponse) {
	if isV1Resource(name) {
		return resource{aud: name, v1: true, keys: []string{name}}, nil
	}
	if r, ok := tokenExchangeResource(name); ok {
		return r, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, a := range e.apps {
		if t.sps[id] && a.namesLocked(name) {
			return resource{aud: a.clientID, keys: a.aliasesLocked()}, nil
		}
	}
	return resource{}, errResourceNotFound(name, t.id)
}

// accessTokenClaims are the claims every access token for res carries, issued in tenant to the
// app clientID authenticated as acr ("1" secret, "2" certificate); callers add the subject.
func (e *Entra) accessTokenClaims(tenant string, res resource, clientID, acr string, lifetime time.Duration) jwt.MapClaims {
	now := time.Now()
	claims := jwt.MapClaims{
		"aud": res.aud,
		"iss": e.issuer(tenant, res.v1),
		"iat": now.Add(-tokenBackdate).Unix(),
		"nbf": now.Add(-tokenBackdate).Unix(),
		"exp": now.Add(lifetime).Unix(),
		"tid": tenant,
		"uti": randomUTI(),
		"ver": tokenVersion(res.v1),
	}
	setClient(claims, res.v1, clientID, acr)
	return claims
}

// setClient names the client app a token was issued to and how it authenticated: appid and
// appidacr in v1 tokens, azp and azpacr in v2 tokens (never both).
func setClient(claims jwt.MapClaims, v1 bool, clientID, acr string) {
	if v1 {
		claims["appid"], claims["appidacr"] = clientID, acr
	} else {
		claims["azp"], claims["azpacr"] = clientID, acr
	}
}

func tokenVersion(v1 bool) string {
	if v1 {
		return "1.0"
	}
	return "2.0"
}

// MinOBOTokenLifetime is the shortest lifetime of On-Behalf-Of tokens, whatever SetTokenLifetime says.
const MinOBOTokenLifetime = 10 * time.Minute

func tokenBody(token string, lifetime, refreshIn time.Duration) map[string]any {
	secs := int64(lifetime / time.Second)
	body := map[string]any{
		"token_type":     "Bearer",
		"expires_in":     secs,
		"ext_expires_in": secs,
		"access_token":   token,
	}
	if refreshIn > 0 {
		body["refresh_in"] = int64((refreshIn + time.Second - 1) / time.Second)
	}
	return body
}

// authenticateClient checks the client secret or client assertion and returns the
// authentication context class ("1" secret, "2" certificate).
func (e *Entra) authenticateClient(tr *TokenRequest, app *App, ca *jws) (string, *ErrorResponse) {
	e.mu.Lock()
	certs := append([]*x509Certs(nil), toCertList(app.certs)...)
	secrets := append([]string(nil), app.secrets...)
	e.mu.Unlock()

	if assertion := tr.Form.Get("client_assertion"); assertion != "" {
		if tr.Form.Get("client_assertion_type") != assertionTypeJWT {
			return "", errMissingParam("client_assertion_type")
		}
		if ca == nil {
			return "", errMalformedJWT()
		}
		if isFederatedAssertion(tr, ca) {
			return "2", e.checkFederatedAssertion(tr, app, ca)
		}
		return "2", e.checkClientAssertion(tr, app, ca, certs)
	}
	if secret := tr.Form.Get("client_secret"); secret != "" {
		for _, s := range secrets {
			if subtle.ConstantTimeCompare([]byte(s), []byte(secret)) == 1 {
				return "1", nil
			}
		}
		return "", errBadSecret(app.clientID)
	}
	return "", errNoClientAuth()
}

func (e *Entra) checkClientAssertion(tr *TokenRequest, app *App, ca *jws, certs []*x509Certs) *ErrorResponse {
	alg, _ := ca.header["alg"].(string)
	if alg != "RS256" && alg != "PS256" {
		if alg == "" {
			return errMalformedJWT()
		}
		return errAssertionAlg(alg)
	}
	// Entra finds the certificate of a PS256 assertion by its SHA-256 thumbprint (x5t#S256) and
	// of an RS256 one by its SHA-1 thumbprint (x5t); the other header is not looked at (an RS256
	// assertion with only x5t#S256 gets "key not found").
	var tp []byte
	var match func(c *x509Certs) bool
	if alg == "PS256" {
		s, _ := ca.header["x5t#S256"].(string)
		tp = decodeThumbprint(s)
		match = func(c *x509Certs) bool {
			return len(tp) == sha256.Size && subtle.ConstantTimeCompare(c.s256[:], tp) == 1
		}
	} else {
		s, _ := ca.header["x5t"].(string)
		tp = decodeThumbprint(s)
		match = func(c *x509Certs) bool { return len(tp) == sha1.Size && subtle.ConstantTimeCompare(c.s1[:], tp) == 1 }
	}
	thumb := strings.ToUpper(hex.EncodeToString(tp))
	var cert *x509Certs
	for _, c := range certs {
		if match(c) {
			cert = c
			break
		}
	}
	if cert == nil {
		return errAssertionSignature("The key was not found.", thumb, app.clientID, "")
	}
	found := "Start=" + cert.cert.NotBefore.UTC().Format("01/02/2006 15:04:05") + ", End=" + cert.cert.NotAfter.UTC().Format("01/02/2006 15:04:05")
	pub, isRSA := cert.cert.PublicKey.(*rsa.PublicKey)
	if !isRSA || verifyRSA(alg, ca.signingInput, ca.signature, pub) != nil {
		return errAssertionSignature("The provided signature value did not match the expected signature value.", thumb, app.clientID, found)
	}
	now := time.Now()
	if now.Before(cert.cert.NotBefore) || now.After(cert.cert.NotAfter) {
		return errAssertionSignature("The key used is expired.", thumb, app.clientID, found)
	}
	iss, _ := ca.claims["iss"].(string)
	sub, _ := ca.claims["sub"].(string)
	if iss != tr.ClientID || sub != tr.ClientID {
		return errAssertionSubject()
	}
	// aud is one string: Entra refuses an array as malformed even when it holds the endpoint.
	if _, isList := ca.claims["aud"].([]any); isList {
		return errMalformedJWT()
	}
	if aud, _ := ca.claims["aud"].(string); !strings.EqualFold(aud, e.TokenEndpoint(tr.Tenant)) {
		return errAssertionAudience()
	}
	if jti, _ := ca.claims["jti"].(string); jti == "" {
		return errMalformedJWT()
	}
	exp, okExp := numericDate(ca.claims["exp"])
	if !okExp {
		return errMalformedJWT()
	}
	nbf, okNbf := numericDate(ca.claims["nbf"])
	if !okNbf {
		nbf = exp.Add(-10 * time.Minute)
	}
	// Valid from nbf (less the clock skew) to exp; an assertion that expires before it becomes
	// valid never is.
	if now.After(exp) || now.Before(nbf.Add(-assertionSkew)) || !exp.After(nbf) || (okNbf && exp.Sub(nbf) > assertionMaxLife) {
		return errAssertionTime(now, nbf, exp)
	}
	return nil
}

// verifyRSA checks an RS256 or PS256 JWS signature. It is written against crypto/rsa rather than
// golang-jwt because golang-jwt verifies PS256 with rsa.PSSSaltLengthAuto and so accepts any salt
// length, where RFC 7518 section 3.5 (and Entra, openssl, PyJWT) require the hash length, 32.
func verifyRSA(alg, signingInput string, sig []byte, pub *rsa.PublicKey) error {
	digest := sha256.Sum256([]byte(signingInput))
	switch alg {
	case "RS256":
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
	case "PS256":
		return rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256})
	}
	return errors.New("unsupported algorithm " + alg)
}

// x509Certs is a registered certificate with its thumbprints.
type x509Certs struct {
	cert *x509.Certificate
	s1   [sha1.Size]byte
	s256 [sha256.Size]byte
}

func toCertList(certs []*x509.Certificate) []*x509Certs {
	out := make([]*x509Certs, len(certs))
	for i, c := range certs {
		out[i] = &x509Certs{cert: c, s1: sha1.Sum(c.Raw), s256: sha256.Sum256(c.Raw)}
	}
	return out
}

// decodeThumbprint decodes a JOSE thumbprint in base64url (RFC 7515) or standard base64,
// padded or not; nil when it is neither.
func decodeThumbprint(s string) []byte {
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.StdEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b
		}
	}
	return nil
}

// numericDate reads a JWT NumericDate claim.
func numericDate(v any) (time.Time, bool) {
	var f float64
	switch n := v.(type) {
	case float64:
		f = n
	case json.Number:
		var err error
		if f, err = n.Float64(); err != nil {
			return time.Time{}, false
		}
	default:
		return time.Time{}, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e12 {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// jws is a compact JWS decoded without verification.
type jws struct {
	header       map[string]any
	claims       map[string]any
	signingInput string
	signature    []byte
}

var errBadJWS = errors.New("malformed JWS")

func parseJWS(s string) (*jws, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return nil, errBadJWS
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, errBadJWS
	}
	j := &jws{signingInput: parts[0] + "." + parts[1], signature: sig}
	if json.Unmarshal(hb, &j.header) != nil || json.Unmarshal(cb, &j.claims) != nil || j.header == nil || j.claims == nil {
		return nil, errBadJWS
	}
	return j, nil
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// onBehalfOf serves the on-behalf-of grant.
func (e *Entra) onBehalfOf(tr *TokenRequest, t *tenant, ca *jws) (map[string]any, *ErrorResponse) {
	if tr.ClientID == "" {
		return nil, errMissingParam("client_id")
	}
	assertion := tr.Form.Get("assertion")
	if assertion == "" {
		return nil, errMissingParam("assertion")
	}
	scopes := dropOIDCScopes(tr.Scopes)
	if len(scopes) == 0 {
		return nil, errMissingParam("scope")
	}
	resource, scp, granted, er := oboScopes(scopes)
	if er != nil {
		return nil, er
	}
	app := e.appInTenant(tr.ClientID, t)
	if app == nil {
		return nil, errAppNotFound(tr.ClientID, tr.Tenant)
	}
	acr, er := e.authenticateClient(tr, app, ca)
	if er != nil {
		return nil, er
	}
	user, er := e.checkUserAssertion(assertion, app, t)
	if er != nil {
		return nil, er
	}
	res, er := e.resolveResource(resource, t)
	if er != nil {
		return nil, er
	}
	e.mu.Lock()
	lifetime, refreshIn := e.lifetime, e.refreshIn
	needMFA, noConsent := false, false
	for _, k := range res.keys {
		needMFA = needMFA || e.mfa[k]
		noConsent = noConsent || app.noConsent[k]
	}
	// Entra's access tokens live at least 10 minutes (the shortest configurable lifetime), and
	// MSAL Go refuses an On-Behalf-Of token with less than 5 minutes left: short test lifetimes
	// apply to app tokens only.
	lifetime = max(lifetime, MinOBOTokenLifetime)
	e.mu.Unlock()
	if noConsent {
		return nil, errConsentRequired(app.clientID)
	}
	amr := stringList(user["amr"])
	if needMFA && !contains(amr, "mfa") {
		return nil, &ErrorResponse{
			Status:      400,
			Error:       "invalid_grant",
			Code:        50076,
			Description: "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '" + resource + "'.",
			SubError:    "basic_action",
			Claims:      `{"access_token":{"capolids":{"essential":true,"values":["` + stableID("capolid", resource) + `"]}}}`,
		}
	}
	v1 := res.v1
	userOID, _ := user["oid"].(string)
	claims := e.accessTokenClaims(t.id, res, app.clientID, acr, lifetime)
	claims["oid"], claims["sub"], claims["scp"] = userOID, pairwiseID(userOID, resource), scp
	if len(amr) > 0 {
		claims["amr"] = amr
	}
	if name, _ := user["name"].(string); name != "" {
		claims["name"] = name
	}
	upn, _ := user["upn"].(string)
	if upn == "" {
		upn, _ = user["preferred_username"].(string)
	}
	if upn != "" {
		claims["upn"] = upn
		if v1 {
			claims["unique_name"] = upn
		} else {
			claims["preferred_username"] = upn
		}
	}
	if v1 {
		claims["idp"] = e.issuer(t.id, true)
	}
	body := tokenBody(e.sign(claims), lifetime, refreshIn)
	body["scope"] = granted
	return body, nil
}

// oboScopes returns the one resource the delegated scopes are for, the scp claim and the scope
// of the answer.
func oboScopes(scopes []string) (resource, scp, granted string, er *ErrorResponse) {
	var names, full []string
	for _, s := range scopes {
		var res, name string
		switch {
		case strings.HasSuffix(s, "/.default"):
			res, name = strings.TrimSuffix(s, "/.default"), defaultDelegatedScp
		case strings.Contains(s, "/"):
			i := strings.LastIndex(s, "/")
			res, name = s[:i], s[i+1:]
		default:
			res, name = "https://graph.microsoft.com", s
		}
		res = normResource(res)
		if res == "" || name == "" {
			return "", "", "", entraError(400, "invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid. The scope "+strings.Join(scopes, " ")+" is not valid.")
		}
		if resource != "" && res != resource {
			return "", "", "", entraError(400, "invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid. The scope "+strings.Join(scopes, " ")+" is not valid: it names more than one resource.")
		}
		resource = res
		if !contains(names, name) {
			names = append(names, name)
			full = append(full, res+"/"+name)
		}
		if strings.HasSuffix(s, "/.default") && !contains(full, s) {
			// Entra lists the requested /.default scope among the granted ones (MSAL
			// treats a requested scope missing from the answer as declined).
			full = append(full, s)
		}
	}
	return resource, strings.Join(names, " "), strings.Join(full, " "), nil
}

// checkUserAssertion validates the user token of an on-behalf-of request.
func (e *Entra) checkUserAssertion(assertion string, app *App, t *tenant) (jwt.MapClaims, *ErrorResponse) {
	claims, err := e.Verify(assertion)
	if err != nil {
		switch {
		case errors.Is(err, jwt.ErrTokenExpired):
			exp := time.Time{}
			if j, perr := parseJWS(assertion); perr == nil {
				exp, _ = numericDate(j.claims["exp"])
			}
			f := "2006-01-02T15:04:05.0000000Z"
			return nil, entraError(400, "invalid_grant", 500133, "Assertion is not within its valid time range. Ensure that the access token is not expired before using it for user assertion, or request a new token. Current time: "+time.Now().UTC().Format(f)+", expiry time of assertion "+exp.UTC().Format(f)+".")
		case errors.Is(err, jwt.ErrTokenMalformed):
			return nil, entraError(400, "invalid_grant", 50027, "JWT token is invalid or malformed.")
		default:
			return nil, entraError(400, "invalid_grant", 50013, "Assertion failed signature validation. [Reason - The key was not found.]")
		}
	}
	if _, ok := claims["scp"]; !ok {
		_, azp := claims["azp"]
		_, appid := claims["appid"]
		if !azp && !appid {
			return nil, entraError(400, "invalid_grant", 240002, "Input id_token cannot be used as '"+grantJWTBearer+"' grant.")
		}
		return nil, entraError(400, "invalid_grant", 50013, "Assertion is not a user token: it has no scp (an app-only token cannot be used for on-behalf-of).")
	}
	aud, _ := claims["aud"].(string)
	e.mu.Lock()
	ours := aud != "" && app.namesLocked(aud)
	e.mu.Unlock()
	if !ours {
		return nil, entraError(400, "invalid_grant", 500131, "Assertion audience does not match the Client app presenting the assertion. The audience in the assertion was '"+aud+"' and the expected audience is '"+app.clientID+"' or one of the Application Uris of this application with App ID '"+app.clientID+"'("+app.clientID+"). The downstream client must request a token for the expected audience (the application that made the OBO request) and this application should use that token as the assertion.")
	}
	tid, _ := claims["tid"].(string)
	if !strings.EqualFold(tid, t.id) {
		return nil, entraError(400, "invalid_grant", 50013, "Assertion is invalid: it was issued by tenant '"+tid+"', not by tenant '"+t.id+"'.")
	}
	return claims, nil
}

func stringList(v any) []string {
	switch a := v.(type) {
	case []any:
		var out []string
		for _, x := range a {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return a
	case string:
		return []string{a}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
