package entra

import (
	"context"
	"errors"
	"log/slog"

	"github.com/azcredkit/azcredkit/internal/panics"
	"github.com/azcredkit/azcredkit/internal/tokencache"
)

// Observer returns a tokencache observer that logs through logger (nil: nothing is logged).
// It is the only place where token events become log records: it logs the credential, client,
// tenant, scopes, expiry and errors, never a token.
func Observer(logger *slog.Logger, credential, clientID, tenant, scopes string, attrs ...slog.Attr) func(tokencache.Event) {
	if logger == nil {
		return nil
	}
	base := append([]slog.Attr{
		slog.String("credential", credential),
		slog.String("client_id", clientID),
		slog.String("tenant", tenant),
		slog.String("scopes", scopes),
	}, attrs...)
	return func(ev tokencache.Event) {
		a := append([]slog.Attr(nil), base...)
		var level slog.Level
		var msg string
		switch ev.Kind {
		case tokencache.Acquired:
			level, msg = slog.LevelInfo, "token acquired"
			a = append(a, slog.Time("expires_on", ev.ExpiresOn), slog.Time("refresh_at", ev.RefreshAt))
		case tokencache.Refreshed:
			level, msg = slog.LevelInfo, "token refreshed ahead of expiry"
			a = append(a, slog.Time("expires_on", ev.ExpiresOn), slog.Time("refresh_at", ev.RefreshAt))
		case tokencache.RefreshFailed:
			level, msg = slog.LevelWarn, "token refresh failed; the cached token is still valid and is kept"
			a = append(a, slog.Time("expires_on", ev.ExpiresOn), slog.Time("next_try", ev.NextTry), slog.String("error", ev.Err.Error()))
			a = appendPanic(a, ev.Err)
		case tokencache.Failed:
			level, msg = slog.LevelError, "token request failed"
			a = append(a, slog.String("error", ev.Err.Error()))
			a = appendPanic(a, ev.Err)
		}
		panics.Log(context.Background(), logger, level, msg, a...)
	}
}

// appendPanic adds the stack of a recovered panic (function names, files and lines: where the bug
// is), so that a panic is never silent.
func appendPanic(a []slog.Attr, err error) []slog.Attr {
	var pe *panics.Error
	if errors.As(err, &pe) {
		a = append(a, slog.String("panic_stack", string(pe.Stack)))
	}
	return a
}

// Log writes one record with the credential's name (for events outside the token cache, such as
// certificate reloads). Callers must not pass secrets in attrs.
func Log(logger *slog.Logger, level slog.Level, credential, msg string, attrs ...slog.Attr) {
	if logger == nil {
		return
	}
	panics.Log(context.Background(), logger, level, msg, append([]slog.Attr{slog.String("credential", credential)}, attrs...)...)
}
