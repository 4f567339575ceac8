package obo

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/azcredkit/azcredkit/internal/panics"
	"github.com/azcredkit/azcredkit/internal/userjwt"
)

type ctxKey struct{}

// Middleware stores the request's credential in the request context (see CredentialFromContext);
// requests without a usable user token get 401.
//
// The refusal tells the client only what it can act on; the full reason (which header or option
// is missing, what to configure) goes to AppOptions.Logger. A request that carries no user token
// gets 401 with "WWW-Authenticate: Bearer realm="", authorization_uri=..." and no error code (RFC
// 6750 section 3.1); a token that fails verification or cannot be used (a bad signature, another
// issuer or tenant, expired, for another API, an id token) gets 401 with error="invalid_token"
// and a short, fixed error_description, the handler is not run, and nothing is cached or sent to
// Entra for it; a malformed Easy Auth header gets 400 with error="invalid_request". The body is
// a short plain-text line (never a token). The request passed on is the original with a new
// context; it is not modified.
func (a *App) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, presented, err := a.fromRequest(r)
		if err != nil {
			a.refuse(w, r, presented, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, c)))
	})
}

// refuse answers a request that CredentialFromRequest refused with err; presented: the request
// carried a user token.
func (a *App) refuse(w http.ResponseWriter, r *http.Request, presented bool, err error) {
	status, code, desc := http.StatusUnauthorized, "", ""
	switch {
	case errors.Is(err, ErrMalformedHeader):
		status, code, desc = http.StatusBadRequest, "invalid_request", "malformed Easy Auth header"
	case !presented:
		desc = "no user access token in the request: sign in"
		if a.bearerOK {
			desc += `, or send an access token for this API as "Authorization: Bearer <token>"`
		}
	case errors.Is(err, ErrUserTokenExpired):
		code, desc = "invalid_token", "the access token has expired"
	case errors.Is(err, ErrNoUserToken):
		code, desc = "invalid_token", "the token is not an access token (an id token?)"
	default:
		code, desc = "invalid_token", invalidTokenDescription(err)
	}
	challenge := `Bearer realm="", authorization_uri=` + quote(a.authorizeURI(a.client.HomeTenant()))
	if code != "" {
		challenge += `, error=` + quote(code) + `, error_description=` + quote(desc)
	}
	w.Header().Set("WWW-Authenticate", challenge)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(desc + "\n"))
	if a.logger != nil {
		panics.Log(r.Context(), a.logger, slog.LevelInfo, "request without a usable user token", slog.String("credential", credName), slog.String("path", r.URL.Path), slog.Int("status", status), slog.String("error", err.Error()))
	}
}

// invalidTokenDescription is the error_description of a refused token: a fixed short text per
// kind of failure (the details, which may name tenants, keys or options, go to the log only).
func invalidTokenDescription(err error) string {
	var ve *userjwt.Error
	if errors.As(err, &ve) {
		switch ve.Reason {
		case userjwt.Audience:
			return "the access token is not for this API"
		case userjwt.TenantNotAllowed:
			return "the access token is from a tenant this API does not accept"
		case userjwt.NotYetValid:
			return "the access token is not valid yet"
		case userjwt.KeysUnavailable, userjwt.TooManyTenants:
			return "the access token cannot be verified at the moment; try again later"
		}
	}
	return "the access token is invalid"
}

// CredentialFromContext returns the credential Middleware stored in ctx.
func CredentialFromContext(ctx context.Context) (*EasyAuthOBOCredential, bool) {
	c, ok := ctx.Value(ctxKey{}).(*EasyAuthOBOCredential)
	return c, ok
}

func userAttrs(c userClaims) []slog.Attr {
	return []slog.Attr{slog.String("user_oid", c.OID), slog.String("user_tenant", c.TID)}
}
