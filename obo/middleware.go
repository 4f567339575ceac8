package obo

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
)

type ctxKey struct{}

// Middleware stores the request's credential in the request context (see CredentialFromContext);
// requests without a usable user token get 401.
//
// The 401 carries "WWW-Authenticate: Bearer" and a plain-text body saying what is missing (never
// the token). The request passed on is the original with a new context; it is not modified.
func (a *App) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := a.CredentialFromRequest(r)
		if err != nil {
			status := http.StatusUnauthorized
			if errors.Is(err, ErrMalformedHeader) {
				status = http.StatusBadRequest
			}
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(err.Error() + "\n"))
			if a.logger != nil {
				a.logger.LogAttrs(r.Context(), slog.LevelInfo, "request without a usable user token", slog.String("credential", credName), slog.String("path", r.URL.Path), slog.String("error", err.Error()))
			}
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, c)))
	})
}

// CredentialFromContext returns the credential Middleware stored in ctx.
func CredentialFromContext(ctx context.Context) (*EasyAuthOBOCredential, bool) {
	c, ok := ctx.Value(ctxKey{}).(*EasyAuthOBOCredential)
	return c, ok
}

func userAttrs(c userClaims) []slog.Attr {
	return []slog.Attr{slog.String("user_oid", c.OID), slog.String("user_tenant", c.TID)}
}
