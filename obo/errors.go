package obo

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/internal/entra"
)

var (
	// ErrNoUserToken: the request carries no user access token (id tokens are not accepted).
	ErrNoUserToken = errors.New("no user access token in the request")
	// ErrUntrustedHeaders: Easy Auth headers present, but not behind App Service auth and not trusted.
	ErrUntrustedHeaders = errors.New("the Easy Auth (X-MS-*) headers are not trusted here: the process is not running behind App Service authentication (WEBSITE_AUTH_ENABLED is not True) and AppOptions.TrustEasyAuthHeaders is false, so a client could have forged them")
	// ErrInvalidUserToken: the user token failed verification (not a JWT, not signed RS256 by
	// one of its tenant's keys, another issuer, a tenant the App does not accept, another
	// audience, not yet valid, expired), its signing keys could not be had (fail closed), or it
	// is unusable for On-Behalf-Of (an app-only token). The error says which.
	ErrInvalidUserToken = errors.New("the user access token was refused")
	// ErrUserTokenExpired: the user token has expired (beyond 5 minutes of clock skew): the
	// client must sign in again or refresh. It wraps ErrInvalidUserToken.
	ErrUserTokenExpired = fmt.Errorf("%w: it has expired", ErrInvalidUserToken)
	// ErrMalformedHeader: an Easy Auth header is malformed or too large.
	ErrMalformedHeader = errors.New("malformed Easy Auth header")
)

// InteractionRequiredError: Entra needs the user to do more (MFA, consent, conditional access).
// Claims is the claims challenge to send back to the client (WWW-Authenticate / login redirect).
// WriteResponse sends it. errors.As also finds the Entra error it wraps
// (*credential.AuthenticationError, *azidentity.AuthenticationFailedError).
//
// There are two kinds, told apart by Consent:
//   - a step-up (MFA, conditional access: AADSTS50076, 50079, 50158...): Entra sent a claims
//     challenge (Claims) that the client must satisfy in a new sign-in;
//   - consent (AADSTS65001, suberror consent_required): the user or an administrator has not
//     consented to this app's permission for Scopes, and there are no claims: the client must
//     sign the user in again with prompt=consent (or an administrator must grant consent).
type InteractionRequiredError struct {
	// Claims is the claims challenge exactly as Entra returned it (a JSON object as a string);
	// base64-encode it for a WWW-Authenticate header. Empty when Entra asks only for consent.
	Claims string
	// AADSTS is Entra's error code: 50076 (MFA), 50079 (MFA enrollment), 50158 (external
	// challenge), 65001 (consent)...
	AADSTS int
	// SubError is Entra's suberror, for example "basic_action" or "consent_required".
	SubError string
	// Scopes that were requested.
	Scopes []string
	// AuthorizationURI is the authorization endpoint where the client must sign the user in
	// again: {authority host}/{tenant}/oauth2/v2.0/authorize, on the App's cloud
	// (AppOptions.ClientOptions.Cloud) in the tenant of the exchange. GetToken fills it.
	AuthorizationURI string

	err *entra.Error
}

// Error implements error.
func (e *InteractionRequiredError) Error() string {
	if e.consentOnly() {
		return fmt.Sprintf("obo: the user or an administrator must consent (AADSTS%d %s) to this app's permission for %s before a token can be issued on the user's behalf: ask the client to sign in again with prompt=consent (InteractionRequiredError.WriteResponse): %v",
			e.AADSTS, e.SubError, strings.Join(e.Scopes, " "), e.err)
	}
	return fmt.Sprintf("obo: the user must interact (AADSTS%d %s) before a token for %s can be issued on their behalf: send the claims challenge back to the client (InteractionRequiredError.WriteResponse): %v",
		e.AADSTS, e.SubError, strings.Join(e.Scopes, " "), e.err)
}

// Unwrap returns the Entra error.
func (e *InteractionRequiredError) Unwrap() error { return e.err }

// NonRetriable tells azcore's retry policy not to retry.
func (*InteractionRequiredError) NonRetriable() {}

// Consent reports whether Entra asks for consent (AADSTS65001 or suberror consent_required)
// rather than a step-up. A consent answer usually carries no Claims.
func (e *InteractionRequiredError) Consent() bool {
	return isConsent(e.AADSTS, e.SubError)
}

// consentOnly: consent is missing and there is no claims challenge to send.
func (e *InteractionRequiredError) consentOnly() bool { return e.Claims == "" && e.Consent() }

func isConsent(aadsts int, subError string) bool {
	return aadsts == 65001 || subError == "consent_required"
}

// consentScope is the scope of this app that the client should request with prompt=consent: its
// ".default" scope, so that the consent covers the permissions the app needs downstream
// (combined consent, when the client is one of the app's knownClientApplications).
func (e *InteractionRequiredError) consentScope() string {
	if e.err == nil || e.err.ClientID == "" {
		return ""
	}
	return e.err.ClientID + "/.default"
}

// StatusCode is the HTTP status WriteResponse gives an API caller: 401 for a claims challenge,
// 403 when only consent is missing (the caller's token is valid; RFC 6750 insufficient_scope).
func (e *InteractionRequiredError) StatusCode() int {
	if e.consentOnly() {
		return http.StatusForbidden
	}
	return http.StatusUnauthorized
}

// WWWAuthenticate returns the challenge for an API caller. With claims (a step-up), as Entra's
// claims challenge documentation specifies:
//
//	Bearer realm="", authorization_uri="{AuthorizationURI}", error="insufficient_claims", claims="<base64 of Claims>"
//
// When only consent is missing (RFC 6750 insufficient_scope, with the scope of this app to
// request with prompt=consent):
//
//	Bearer realm="", authorization_uri="{AuthorizationURI}", error="insufficient_scope", error_description="...", scope="{client ID}/.default"
//
// authorization_uri is left out when AuthorizationURI is empty.
func (e *InteractionRequiredError) WWWAuthenticate() string {
	var sb strings.Builder
	sb.WriteString(`Bearer realm=""`)
	if e.AuthorizationURI != "" {
		fmt.Fprintf(&sb, `, authorization_uri=%s`, quote(e.AuthorizationURI))
	}
	if e.consentOnly() {
		sb.WriteString(`, error="insufficient_scope", error_description="consent required: sign the user in again with prompt=consent, or have an administrator grant consent"`)
		if s := e.consentScope(); s != "" {
			fmt.Fprintf(&sb, `, scope=%s`, quote(s))
		}
		return sb.String()
	}
	fmt.Fprintf(&sb, `, error="insufficient_claims", claims="%s"`, base64.StdEncoding.EncodeToString([]byte(e.Claims)))
	return sb.String()
}

// quote makes s an RFC 9110 quoted-string.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// LoginURL returns the Easy Auth login URL that sends a browser through Entra again and back to
// returnTo (a path on this site): with the claims challenge (claims=...) for a step-up, with
// prompt=consent when consent is missing. Easy Auth passes such parameters on to Entra's
// authorization endpoint.
func (e *InteractionRequiredError) LoginURL(returnTo string) string {
	if returnTo == "" || !strings.HasPrefix(returnTo, "/") || strings.HasPrefix(returnTo, "//") {
		returnTo = "/"
	}
	q := url.Values{}
	if e.Claims != "" {
		q.Set("claims", e.Claims)
	}
	if e.Consent() {
		q.Set("prompt", "consent")
	}
	q.Set("post_login_redirect_uri", returnTo)
	return "/.auth/login/aad?" + q.Encode()
}

// WriteResponse answers the request that needed the token. API callers (a Bearer header, or a
// request that does not accept HTML) get a JSON body and the WWW-Authenticate challenge: 401 with
// the claims challenge for a step-up, 403 with error="insufficient_scope" and the scope to request
// with prompt=consent when consent is missing. Browsers get a redirect to the Easy Auth login
// (LoginURL), back to this page.
func (e *InteractionRequiredError) WriteResponse(w http.ResponseWriter, r *http.Request) {
	if isBrowser(r) {
		http.Redirect(w, r, e.LoginURL(r.URL.RequestURI()), http.StatusFound)
		return
	}
	w.Header().Set("WWW-Authenticate", e.WWWAuthenticate())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.StatusCode())
	body := map[string]any{}
	if e.AuthorizationURI != "" {
		body["authorization_uri"] = e.AuthorizationURI
	}
	if e.consentOnly() {
		body["error"] = "insufficient_scope"
		body["suberror"] = "consent_required"
		body["error_description"] = fmt.Sprintf("the user or an administrator must consent to this app's permission for %s (AADSTS%d): sign the user in again requesting scope with prompt=consent, or have an administrator grant consent", strings.Join(e.Scopes, " "), e.AADSTS)
		body["scope"] = e.consentScope()
		body["consent_scopes"] = e.Scopes
	} else {
		body["error"] = "insufficient_claims"
		body["error_description"] = fmt.Sprintf("additional user interaction is required (AADSTS%d); acquire a new token with the claims in the WWW-Authenticate header", e.AADSTS)
		body["claims"] = e.Claims
	}
	_ = json.NewEncoder(w).Encode(body)
}

func isBrowser(r *http.Request) bool {
	if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") || r.Header.Get("X-Requested-With") != "" {
		return false
	}
	return r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/html")
}

// fromEntra turns an Entra answer that needs the user (a claims challenge, or missing consent)
// into an *InteractionRequiredError.
func fromEntra(err error, scopes []string) error {
	var ee *entra.Error
	if errors.As(err, &ee) && (ee.Claims != "" || isConsent(ee.AADSTS, ee.SubError)) {
		return &InteractionRequiredError{Claims: ee.Claims, AADSTS: ee.AADSTS, SubError: ee.SubError, Scopes: append([]string(nil), scopes...), err: ee}
	}
	return err
}

// forCaller returns err, or when it is an *InteractionRequiredError, a copy of it for this caller
// (the one error of a shared exchange reaches every waiting caller) naming the authorization
// endpoint of the exchange's tenant.
func (a *App) forCaller(err error) error {
	ir, ok := err.(*InteractionRequiredError)
	if !ok {
		return err
	}
	cp := *ir
	cp.Scopes = append([]string(nil), ir.Scopes...)
	if ir.err != nil && ir.err.Tenant != "" {
		cp.AuthorizationURI = a.authorizeURI(ir.err.Tenant)
	}
	return &cp
}

// authorizeURI is the v2 authorization endpoint of tenant on the App's cloud.
func (a *App) authorizeURI(tenant string) string {
	return a.authority + tenant + "/oauth2/v2.0/authorize"
}

// optionsError marks a configuration error (tenant, client ID, authority host, a tenant the
// options do not allow) so that errors.Is matches assertion.ErrInvalidOptions; the message is
// err's.
type optionsError struct{ error }

func (e optionsError) Unwrap() []error { return []error{e.error, assertion.ErrInvalidOptions} }
