package entra

import (
	"context"
	"errors"
	"log/slog"

	"github.com/azcredkit/azcredkit/internal/panics"
	"github.com/azcredkit/azcredkit/internal/tokencache"
)

// Log record attributes shared by every token event (see Observer).
const (
	// AttrEvent is a stable, machine-readable name of what happened: one of the Event* values.
	AttrEvent = "event"
	// AttrSource says what answered: "entra", "shared" (an obo.App's shared cache) or "memory".
	AttrSource = "source"
)

// Values of AttrEvent.
const (
	EventAcquired       = "acquired"       // a token was acquired (for an empty or expired slot, or a claims challenge)
	EventRefreshed      = "refreshed"      // a token due for refresh was replaced in the background
	EventCached         = "cached"         // a GetToken was answered from the credential's cache (Debug)
	EventFailed         = "failed"         // a token request failed and no valid token was left
	EventRefreshFailed  = "refresh_failed" // a background refresh failed; the valid token is kept
	EventCertLoaded     = "certificate_loaded"
	EventCertRotated    = "certificate_rotated"
	EventCertExpiring   = "certificate_expires_soon"
	EventCertReadFailed = "certificate_read_failed"
)

// Messages of the token events.
const (
	MsgAcquired      = "token acquired"
	MsgRefreshed     = "token refreshed ahead of expiry"
	MsgCached        = "token served from the cache"
	MsgFailed        = "token request failed"
	MsgRefreshFailed = "token refresh failed; the cached token is still valid and is kept"
)

// Observer returns a tokencache observer that logs through logger (nil: nothing is logged).
// It is the only place where token events become log records: it logs the credential, client,
// tenant, scopes, where the token came from, expiry, and errors with their AADSTS code, never a
// token. These are the facts (and the moments) of azidentity's Authentication events: azidentity
// writes "{Credential}.GetToken() acquired a token for scope ..." whenever GetToken succeeds;
// Observer writes MsgAcquired when a token comes from Entra (or a shared cache) and Cached
// writes MsgCached (at Debug) when the cache answers.
func Observer(logger *slog.Logger, credential, clientID, tenant, scopes string, attrs ...slog.Attr) func(tokencache.Event) {
	if logger == nil {
		return nil
	}
	base := append(baseAttrs(credential, clientID, tenant, scopes), attrs...)
	return func(ev tokencache.Event) {
		a := append([]slog.Attr(nil), base...)
		var level slog.Level
		var msg string
		switch ev.Kind {
		case tokencache.Acquired:
			level, msg = slog.LevelInfo, MsgAcquired
			a = append(a, slog.String(AttrEvent, EventAcquired), slog.String(AttrSource, SourceName(ev.Source)),
				slog.Time("expires_on", ev.ExpiresOn), slog.Time("refresh_at", ev.RefreshAt))
		case tokencache.Refreshed:
			level, msg = slog.LevelInfo, MsgRefreshed
			a = append(a, slog.String(AttrEvent, EventRefreshed), slog.String(AttrSource, SourceName(ev.Source)),
				slog.Time("expires_on", ev.ExpiresOn), slog.Time("refresh_at", ev.RefreshAt))
		case tokencache.RefreshFailed:
			level, msg = slog.LevelWarn, MsgRefreshFailed
			a = append(a, slog.String(AttrEvent, EventRefreshFailed), slog.Time("expires_on", ev.ExpiresOn), slog.Time("next_try", ev.NextTry))
			a = appendError(a, ev.Err)
		case tokencache.Failed:
			level, msg = slog.LevelError, MsgFailed
			a = append(a, slog.String(AttrEvent, EventFailed))
			a = appendError(a, ev.Err)
		}
		panics.Log(context.Background(), logger, level, msg, a...)
	}
}

func baseAttrs(credential, clientID, tenant, scopes string) []slog.Attr {
	return []slog.Attr{
		slog.String("credential", credential),
		slog.String("client_id", clientID),
		slog.String("tenant", tenant),
		slog.String("scopes", scopes),
	}
}

// Cached logs, at Debug, that the cache answered a GetToken for tenant and scopes: azidentity
// writes an Authentication event for each successful GetToken, cached ones included. It costs
// one Enabled call when Debug is off; callers check logger != nil first (the hot path).
func Cached(ctx context.Context, logger *slog.Logger, credential, clientID, tenant, scopes string, attrs ...slog.Attr) {
	if !logger.Enabled(ctx, slog.LevelDebug) {
		return
	}
	defer func() { _ = recover() }() // a panicking handler must not fail a GetToken
	a := append(baseAttrs(credential, clientID, tenant, scopes), attrs...)
	a = append(a, slog.String(AttrEvent, EventCached), slog.String(AttrSource, "memory"))
	logger.LogAttrs(ctx, slog.LevelDebug, MsgCached, a...)
}

// SourceName names what answered a call served as s, in log records and metric labels alike:
// memory, shared or entra.
func SourceName(s tokencache.Source) string {
	switch s {
	case tokencache.SourceShared:
		return "shared"
	case tokencache.SourceCache:
		return "memory"
	}
	return "entra"
}

// appendError adds the error, its AADSTS code when Entra refused the request, and the stack of a
// recovered panic (function names, files and lines: where the bug is), so that a panic is never
// silent.
func appendError(a []slog.Attr, err error) []slog.Attr {
	a = append(a, slog.String("error", err.Error()))
	var ee *Error
	if errors.As(err, &ee) && ee.AADSTS != 0 {
		a = append(a, slog.Int("aadsts", ee.AADSTS))
	}
	var pe *panics.Error
	if errors.As(err, &pe) {
		a = append(a, slog.String("panic_stack", string(pe.Stack)))
	}
	return a
}

// Log writes one record with the credential's name (for events outside the token cache, such as
// certificate reloads). Callers must not pass secrets in attrs. A panic in the handler is
// dropped: it must not take a token request or a certificate load with it.
func Log(logger *slog.Logger, level slog.Level, credential, msg string, attrs ...slog.Attr) {
	if logger == nil {
		return
	}
	panics.Log(context.Background(), logger, level, msg, append([]slog.Attr{slog.String("credential", credential)}, attrs...)...)
}
