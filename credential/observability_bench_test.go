package credential_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/tracing"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/azcredkit/azcredkit/metrics"
)

// infoOnly is a logger at Info level writing to a buffer: the cached call's Debug record is not
// built.
func infoOnly() *slog.Logger {
	return slog.New(slog.NewTextHandler(&logBuffer{}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// countingProvider is a tracing provider that records what each span receives in atomic counters:
// the cheapest provider that still does something with every span (a real one, OpenTelemetry
// through azotel, costs more).
func countingProvider(spans, attrs *atomic.Int64) tracing.Provider {
	return tracing.NewProvider(func(string, string) tracing.Tracer {
		return tracing.NewTracer(func(ctx context.Context, _ string, o *tracing.SpanOptions) (context.Context, tracing.Span) {
			spans.Add(1)
			return ctx, tracing.NewSpan(tracing.SpanImpl{
				SetAttributes: func(a ...tracing.Attribute) { attrs.Add(int64(len(a))) },
				SetStatus:     func(tracing.SpanStatus, string) {},
				End:           func() {},
			})
		}, nil)
	}, nil)
}

// BenchmarkGetTokenCacheHitObservability measures a cached GetToken without observability, with a
// metrics Recorder (atomic counters; metrics.Memory), with slog at Info (the cached call's record
// is Debug), and with a TracingProvider (a span per call), against azidentity's certificate
// credential with the same provider.
//
//	go test -run '^$' -bench GetTokenCacheHitObservability -benchmem -count 6 ./credential/ > obs.txt
func BenchmarkGetTokenCacheHitObservability(b *testing.B) {
	e := newEnv(b)
	var spans, attrs atomic.Int64
	opts := policy.TokenRequestOptions{Scopes: []string{vaultRes}}
	traced := e.options()
	traced.ClientOptions.TracingProvider = countingProvider(&spans, &attrs)
	theirs, err := azidentity.NewClientCertificateCredential(tenantA, clientID, e.chain, e.key, &azidentity.ClientCertificateCredentialOptions{
		ClientOptions: traced.ClientOptions, DisableInstanceDiscovery: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		cred func() azcore.TokenCredential
	}{
		{"none", func() azcore.TokenCredential { return e.cred(b, nil) }},
		{"metrics-atomic", func() azcore.TokenCredential {
			o := e.options()
			o.Metrics = &countingRecorder{}
			return e.cred(b, o)
		}},
		{"metrics-memory", func() azcore.TokenCredential {
			o := e.options()
			o.Metrics = &metrics.Memory{}
			return e.cred(b, o)
		}},
		{"slog-info", func() azcore.TokenCredential {
			o := e.options()
			o.Logger = infoOnly()
			return e.cred(b, o)
		}},
		{"tracing", func() azcore.TokenCredential { return e.cred(b, traced) }},
		{"azidentity-tracing", func() azcore.TokenCredential { return theirs }},
	} {
		cred := c.cred()
		if _, err := cred.GetToken(context.Background(), opts); err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := cred.GetToken(ctx, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	if spans.Load() == 0 || attrs.Load() == 0 {
		b.Fatal("the traced credentials made no span")
	}
}
