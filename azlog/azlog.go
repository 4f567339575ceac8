// Package azlog shows azcredkit's log records to an azcore/log listener, where Azure SDK users
// look for azidentity's.
//
// azidentity writes its Authentication events (for example "ClientCertificateCredential.GetToken()
// acquired a token for scope ...") with the Azure SDK's internal log writer, which only Azure SDK
// modules can import: the public package azcore/log has SetListener and SetEvents, no writer.
// azcredkit therefore logs through log/slog (the Logger field of every credential's options and of
// obo.AppOptions), and its HTTP traffic reaches the azcore/log listener as usual (it goes through
// an azcore pipeline). NewHandler closes the gap: a slog.Handler that hands each record to the
// listener as an Authentication event, in one line of text, so that one listener sees
// azidentity's events, azcredkit's, and the HTTP traffic of both:
//
//	listener := func(e log.Event, msg string) { fmt.Printf("[%s] %s\n", e, msg) }
//	log.SetListener(listener) // azcore/log
//	logger := slog.New(azlog.NewHandler(listener, nil))
//	cred, err := credential.NewCertificateCredential(tenantID, clientID, data, "",
//		&credential.SignedAssertionCredentialOptions{Logger: logger})
//
// prints, for the first GetToken and a cached one,
//
//	[Authentication] CertificateCredential.GetToken() acquired a token for scope "https://vault.azure.net/.default" (client_id=... tenant=... source=entra expires_on=... refresh_at=...)
//	[Authentication] CertificateCredential.GetToken() acquired a token for scope "https://vault.azure.net/.default" (client_id=... tenant=... source=memory)
//
// at the moments azidentity writes its own (each successful GetToken; the cached ones are Debug
// records in slog), and more than azidentity says: failures with their AADSTS code, background
// refreshes, certificate loads, rotations and expiry warnings. No record holds a token.
//
// # Observability
//
// This package is the log side; spans go through azcore's ClientOptions.TracingProvider and
// metrics through package metrics (see package credential's documentation).
package azlog

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/log"
)

// EventAuthentication is the event class of the records: azidentity's EventAuthentication
// ("Authentication"). An azcore/log listener filtered with log.SetEvents still receives them:
// the filter applies to the SDK's own writer only.
const EventAuthentication log.Event = "Authentication"

// HandlerOptions configure NewHandler. nil means the defaults.
type HandlerOptions struct {
	// Level is the lowest level handed to the listener: nil means slog.LevelDebug, every record,
	// which matches azidentity (an event per successful GetToken, answered from the cache or
	// not); slog.LevelInfo leaves out the cached ones. Optional.
	Level slog.Leveler
}

// NewHandler returns a slog.Handler that hands each record to listener (the function given to
// azcore/log's SetListener) as an EventAuthentication event: "{Credential}.GetToken() acquired a
// token for scope %q" for the records of a token acquired or served and "EnvironmentCredential
// will authenticate with {Credential}" for the environment's choice, as azidentity words them, and
// "{credential}: {message}" for the others, followed by the other attributes as key=value;
// warnings and errors start with "warning: " and "error: ". A nil listener drops every record.
func NewHandler(listener func(log.Event, string), options *HandlerOptions) slog.Handler {
	h := &handler{listener: listener, level: slog.LevelDebug}
	if options != nil && options.Level != nil {
		h.level = options.Level
	}
	return h
}

type handler struct {
	listener func(log.Event, string)
	level    slog.Leveler
	attrs    []slog.Attr // from WithAttrs, keys already prefixed with their groups
	group    string      // the open groups, "a.b."
}

func (h *handler) Enabled(_ context.Context, l slog.Level) bool {
	return h.listener != nil && l >= h.level.Level()
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), prefixed(h.group, attrs)...)
	return &c
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.group = h.group + name + "."
	return &c
}

func prefixed(group string, attrs []slog.Attr) []slog.Attr {
	out := make([]slog.Attr, 0, len(attrs))
	for _, a := range attrs {
		a.Value = a.Value.Resolve()
		if a.Equal(slog.Attr{}) {
			continue
		}
		if a.Value.Kind() == slog.KindGroup {
			g := group
			if a.Key != "" {
				g += a.Key + "."
			}
			out = append(out, prefixed(g, a.Value.Group())...)
			continue
		}
		a.Key = group + a.Key
		out = append(out, a)
	}
	return out
}

func (h *handler) Handle(_ context.Context, r slog.Record) error {
	if h.listener == nil {
		return nil
	}
	attrs := append([]slog.Attr(nil), h.attrs...)
	var recAttrs []slog.Attr
	r.Attrs(func(a slog.Attr) bool {
		recAttrs = append(recAttrs, a)
		return true
	})
	attrs = append(attrs, prefixed(h.group, recAttrs)...)

	var credential, scopes, event string
	rest := attrs[:0:0]
	for _, a := range attrs {
		switch a.Key {
		case "credential":
			if credential == "" {
				credential = a.Value.String()
				continue
			}
		case "scopes":
			if scopes == "" {
				scopes = a.Value.String()
				continue
			}
		case "event":
			if event == "" {
				event = a.Value.String()
				continue
			}
		}
		rest = append(rest, a)
	}
	var sb strings.Builder
	switch {
	case r.Level >= slog.LevelError:
		sb.WriteString("error: ")
	case r.Level >= slog.LevelWarn:
		sb.WriteString("warning: ")
	}
	switch {
	case (event == "acquired" || event == "cached") && credential != "":
		// azidentity's words: "%s.GetToken() acquired a token for scope %q".
		fmt.Fprintf(&sb, "%s.GetToken() acquired a token for scope %q", credential, scopes)
	case event == "credential_chosen" && credential != "" && chosen(rest) != "":
		// azidentity's words: "EnvironmentCredential will authenticate with %s".
		fmt.Fprintf(&sb, "%s will authenticate with %s", credential, chosen(rest))
		rest = without(rest, "chosen")
	case event == "refreshed" && credential != "":
		fmt.Fprintf(&sb, "%s refreshed the token for scope %q ahead of its expiry", credential, scopes)
	default:
		if credential != "" {
			sb.WriteString(credential)
			sb.WriteString(": ")
		}
		sb.WriteString(r.Message)
		if scopes != "" {
			rest = append([]slog.Attr{slog.String("scopes", scopes)}, rest...)
		}
		if event != "" {
			rest = append(rest, slog.String("event", event))
		}
	}
	if len(rest) > 0 {
		sb.WriteString(" (")
		for i, a := range rest {
			if i > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(a.Key)
			sb.WriteByte('=')
			sb.WriteString(value(a.Value))
		}
		sb.WriteByte(')')
	}
	h.listener(EventAuthentication, sb.String())
	return nil
}

// chosen is the value of the "chosen" attribute among attrs.
func chosen(attrs []slog.Attr) string {
	for _, a := range attrs {
		if a.Key == "chosen" {
			return a.Value.String()
		}
	}
	return ""
}

// without returns attrs without the attributes named key.
func without(attrs []slog.Attr, key string) []slog.Attr {
	out := attrs[:0:0]
	for _, a := range attrs {
		if a.Key != key {
			out = append(out, a)
		}
	}
	return out
}

// value formats v as slog's text handler does: times in RFC 3339, strings quoted when needed.
func value(v slog.Value) string {
	var s string
	switch v.Kind() {
	case slog.KindTime:
		s = v.Time().Format(time.RFC3339Nano)
	case slog.KindDuration:
		s = v.Duration().String()
	default:
		s = v.String()
	}
	if s == "" || strings.ContainsAny(s, " =\"()\t\r\n") || !strconv.CanBackquote(s) {
		return strconv.Quote(s)
	}
	return s
}
