package entra

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/tracing"

	"github.com/azcredkit/azcredkit/internal/tokencache"
)

// Span names, kinds and attributes, as azidentity's: a span per GetToken named
// "{CredentialType}.GetToken", kind internal, with az.namespace=Microsoft.Entra (set on the tracer,
// so the HTTP spans of the token requests have it too).
const (
	TraceNamespace     = "Microsoft.Entra"
	AttrNamespace      = "az.namespace"
	traceOpGetToken    = "GetToken"
	AttrCache          = "azcredkit.cache"          // memory, shared or none
	AttrRefreshReason  = "azcredkit.refresh_reason" // no_token, expired, stale, claims_challenge
	AttrAADSTS         = "azcredkit.aadsts"         // Entra's AADSTS code of a failure
	cacheMemory        = "memory"
	cacheShared        = "shared"
	cacheNone          = "none"
	maxStatusDescBytes = 300
)

// Tracer starts the GetToken spans of one credential through ClientOptions.TracingProvider. The
// zero value (no provider) starts none, and costs one bool test.
type Tracer struct {
	tr      tracing.Tracer
	enabled bool
}

// NewTracer returns the Tracer of provider for this module, with az.namespace=Microsoft.Entra on
// every span it starts (as azcore.NewClient does with TracingOptions.Namespace).
func NewTracer(provider tracing.Provider) Tracer {
	inner := provider.NewTracer(module, version)
	if !inner.Enabled() {
		return Tracer{}
	}
	inner.SetAttributes(tracing.Attribute{Key: AttrNamespace, Value: TraceNamespace})
	// The tracer handed to runtime.StartSpan wraps the provider's: it also gives the span it
	// starts for a GetToken back to that call (see capture), so that attributes known only at the
	// end (the cache that answered) can be set. runtime.StartSpan does the rest as for every Azure
	// SDK client: it puts the tracer in the context (the HTTP spans of the token requests are the
	// span's children), and suppresses the span inside another SDK method's span (a GetToken
	// called by an azsecrets client's bearer token policy, for example), as azidentity's are.
	wrapped := tracing.NewTracer(func(ctx context.Context, name string, o *tracing.SpanOptions) (context.Context, tracing.Span) {
		sctx, sp := inner.Start(ctx, name, o)
		if c, ok := ctx.Value(captureKey{}).(*capture); ok && c.taken.CompareAndSwap(false, true) {
			c.span = sp
		}
		return sctx, sp
	}, &tracing.TracerOptions{SpanFromContext: inner.SpanFromContext})
	return Tracer{tr: wrapped, enabled: true}
}

// Enabled reports whether spans are started.
func (t *Tracer) Enabled() bool { return t.enabled }

// SpanName is the name of credential's GetToken spans.
func SpanName(credential string) string { return credential + "." + traceOpGetToken }

// captureKey is the context key of a GetToken's *capture.
type captureKey struct{}

// capture is the context of one Start: the first span started under it (the GetToken span, by
// runtime.StartSpan on this goroutine) is kept; spans started later under contexts derived from
// it (HTTP spans, possibly on other goroutines) find it taken.
type capture struct {
	context.Context
	taken atomic.Bool
	span  tracing.Span
}

func (c *capture) Value(k any) any {
	if _, ok := k.(captureKey); ok {
		return c
	}
	return c.Context.Value(k)
}

// Span is one GetToken span; the zero value (no tracing, or suppressed) does nothing.
type Span struct {
	c *capture
}

// Start starts the span name (SpanName) as a child of ctx's span, kind internal, and returns the
// context to do the work under.
func (t *Tracer) Start(ctx context.Context, name string) (context.Context, Span) {
	c := &capture{Context: ctx}
	sctx, _ := runtime.StartSpan(c, name, t.tr, nil)
	if !c.taken.Load() {
		return sctx, Span{}
	}
	return sctx, Span{c}
}

// End sets the attributes of how the call was served, or on failure the error status and
// Entra's AADSTS code, and ends the span. The attributes say nothing of tenant, user, scopes or
// token.
func (s Span) End(served tokencache.Served, err error) {
	if s.c == nil {
		return
	}
	sp := s.c.span
	attrs := make([]tracing.Attribute, 0, 2)
	switch served.Source {
	case tokencache.SourceCache:
		attrs = append(attrs, tracing.Attribute{Key: AttrCache, Value: cacheMemory})
	case tokencache.SourceShared:
		attrs = append(attrs, tracing.Attribute{Key: AttrCache, Value: cacheShared})
	default:
		attrs = append(attrs, tracing.Attribute{Key: AttrCache, Value: cacheNone})
	}
	if r := ReasonName(served.Reason); r != "" {
		attrs = append(attrs, tracing.Attribute{Key: AttrRefreshReason, Value: r})
	}
	if err != nil {
		var ee *Error
		if errors.As(err, &ee) && ee.AADSTS != 0 {
			attrs = append(attrs, tracing.Attribute{Key: AttrAADSTS, Value: ee.AADSTS})
		}
		sp.SetAttributes(attrs...)
		sp.SetStatus(tracing.SpanStatusError, StatusDescription(err))
	} else {
		sp.SetAttributes(attrs...)
	}
	sp.End()
}

// ReasonName is the refresh_reason attribute of r ("" for none).
func ReasonName(r tokencache.Reason) string {
	switch r {
	case tokencache.ReasonEmpty:
		return "no_token"
	case tokencache.ReasonExpired:
		return "expired"
	case tokencache.ReasonStale:
		return "stale"
	case tokencache.ReasonClaims:
		return "claims_challenge"
	}
	return ""
}

// StatusDescription describes a failed GetToken for its span's error status in azcore's shape
// ("{error type}:\n{text}"), but without the error's text, which names the tenant, client and
// scopes: Entra's refusal becomes its HTTP status, error and AADSTS code; a context's end its
// error; anything else the type of the innermost error that is not a wrapper of ours.
func StatusDescription(err error) string {
	var ee *Error
	switch {
	case errors.As(err, &ee):
		var sb strings.Builder
		sb.WriteString("*azidentity.AuthenticationFailedError:\nMicrosoft Entra ID refused the token request")
		if ee.StatusCode != 0 {
			fmt.Fprintf(&sb, ": HTTP %d", ee.StatusCode)
		}
		if ee.Code != "" {
			fmt.Fprintf(&sb, " %s", clip(ee.Code, 64))
		}
		if ee.AADSTS != 0 {
			fmt.Fprintf(&sb, " AADSTS%d", ee.AADSTS)
		}
		return sb.String()
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("%T:\n%v", context.DeadlineExceeded, context.DeadlineExceeded)
	case errors.Is(err, context.Canceled):
		return fmt.Sprintf("%T:\n%v", context.Canceled, context.Canceled)
	}
	return clip(fmt.Sprintf("%T", innermost(err)), maxStatusDescBytes)
}

// innermost unwraps err through single-error wrappers down to the first error that is not one
// of this package's markers or an fmt wrapper.
func innermost(err error) error {
	for {
		switch err.(type) {
		case *nonRetriable, *prefixed:
		default:
			if t := fmt.Sprintf("%T", err); t != "*fmt.wrapError" {
				return err
			}
		}
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}
