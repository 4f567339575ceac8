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
	// ErrInvalidUserToken: the user token is not a JWT, is for another audience than this app,
	// or is otherwise unusable for On-Behalf-Of. The error says which.
	ErrInvalidUserToken = errors.New("the user token cannot be exchanged On-Behalf-Of")
	// ErrUserTokenExpired: the user token has expired: the client must sign in again or refresh.
	// It wraps ErrInvalidUserToken.
	ErrUserTokenExpired = fmt.Errorf("%w: it has expired", ErrInvalidUserToken)
	// ErrMalformedHeader: an Easy Auth header is malformed or too large.
	ErrMalformedHeader = errors.New("malformed Easy Auth header")
)

// InteractionRequiredError: Entra needs the user to do more (MFA, consent, conditional access).
// Claims is the claims challenge to send back to the client (WWW-Authenticate / login redirect).
// WriteResponse sends it. errors.As also finds the Entra error it wraps
// (*credential.AuthenticationError, *azidentity.AuthenticationFailedError).
type InteractionRequiredError struct {
	// Claims is the claims challenge exactly as Entra returned it (a JSON object as a string);
	// base64-encode it for a WWW-Authenticate header.
	Claims string
	// AADSTS is Entra's error code: 50076 (MFA), 50079 (MFA enrollment), 50158 (external
	// challenge), 65001 (consent)...
	AADSTS int
	// SubError is Entra's suberror, for example "basic_action".
	SubError string
	// Scopes that were requested.
	Scopes []string

	err *entra.Error
}

// Error implements error.
func (e *InteractionRequiredError) Error() string {
	return fmt.Sprintf("obo: the user must interact (AADSTS%d %s) before a token for %s can be issued on their behalf: send the claims challenge back to the client (InteractionRequiredError.WriteResponse): %v",
		e.AADSTS, e.SubError, strings.Join(e.Scopes, " "), e.err)
}

// Unwrap returns the Entra error.
func (e *InteractionRequiredError) Unwrap() error { return e.err }

// NonRetriable tells azcore's retry policy not to retry.
func (*InteractionRequiredError) NonRetriable() {}

// WWWAuthenticate returns the challenge for an API caller:
// Bearer error="insufficient_claims", claims="<base64 of Claims>".
func (e *InteractionRequiredError) WWWAuthenticate() string {
	return fmt.Sprintf(`Bearer error="insufficient_claims", claims="%s"`, base64.StdEncoding.EncodeToString([]byte(e.Claims)))
}

// LoginURL returns the Easy Auth login URL that sends a browser through Entra with the claims
// challenge and back to returnTo (a path on this site).
func (e *InteractionRequiredError) LoginURL(returnTo string) string {
	if returnTo == "" || !strings.HasPrefix(returnTo, "/") || strings.HasPrefix(returnTo, "//") {
		returnTo = "/"
	}
	q := url.Values{}
	q.Set("claims", e.Claims)
	q.Set("post_login_redirect_uri", returnTo)
	return "/.auth/login/aad?" + q.Encode()
}

// WriteResponse answers the request that needed the token: API callers (a Bearer header, or a
// request that does not accept HTML) get 401 with the WWW-Authenticate claims challenge and a
// JSON body; browsers get a redirect to the Easy Auth login with the claims, back to this page.
func (e *InteractionRequiredError) WriteResponse(w http.ResponseWriter, r *http.Request) {
	if isBrowser(r) {
		http.Redirect(w, r, e.LoginURL(r.URL.RequestURI()), http.StatusFound)
		return
	}
	w.Header().Set("WWW-Authenticate", e.WWWAuthenticate())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"error":             "insufficient_claims",
		"error_description": fmt.Sprintf("additional user interaction is required (AADSTS%d); acquire a new token with the claims in the WWW-Authenticate header", e.AADSTS),
		"claims":            e.Claims,
	})
}

func isBrowser(r *http.Request) bool {
	if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") || r.Header.Get("X-Requested-With") != "" {
		return false
	}
	return r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/html")
}

// fromEntra turns an Entra answer carrying a claims challenge into an *InteractionRequiredError.
func fromEntra(err error, scopes []string) error {
	var ee *entra.Error
	if errors.As(err, &ee) && ee.Claims != "" {
		return &InteractionRequiredError{Claims: ee.Claims, AADSTS: ee.AADSTS, SubError: ee.SubError, Scopes: append([]string(nil), scopes...), err: ee}
	}
	return err
}

// optionsError marks a configuration error (tenant, client ID, authority host, a tenant the
// options do not allow) so that errors.Is matches assertion.ErrInvalidOptions; the message is
// err's.
type optionsError struct{ error }

func (e optionsError) Unwrap() []error { return []error{e.error, assertion.ErrInvalidOptions} }
