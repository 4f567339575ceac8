// Package metrics is the hook through which azcredkit reports measurements to the user's metrics
// library: set a Recorder in the Metrics field of a credential's options
// (credential.SignedAssertionCredentialOptions, embedded in every credential's) or of
// obo.AppOptions. This package has no dependency: package otelmetrics (the module
// github.com/azcredkit/azcredkit/otelmetrics) adapts it to OpenTelemetry, Memory keeps the
// figures in memory, and any other library takes a few lines.
//
// # What is measured
//
// Counters: TokenRequests (every GetToken, by source: memory, shared or entra, which gives the
// cache hit ratio), TokenAcquisitions (requests sent to Microsoft Entra ID), TokenRefreshes
// (background refreshes), OBOCacheEvictions, KeyVaultReads, SignOperations, CertificateRotations,
// SharedCacheErrors. Histograms: TokenAcquisitionDuration, SharedCacheDuration. Gauges:
// OBOCacheSize, SharedCacheBreakerOpen, CertificateDaysToExpiry.
//
// Labels come from a small fixed set (Labels: the credential type, the source, the outcome):
// never a tenant, client, user, scope or certificate, so every metric has a handful of series and
// says nothing about who asked for what. To tell two credentials of one type apart, give each its
// own Recorder (otelmetrics.Options.Attributes adds constant attributes).
//
// # Cost
//
// Without a Recorder nothing is measured and the cached GetToken allocates nothing. With one, a
// cached GetToken makes one Add call: a Recorder that does not allocate (an atomic counter, or
// Memory after the first call of a series) keeps the cached GetToken free of allocations.
//
// # Observability
//
// Metrics are one of three signals: spans go through azcore's ClientOptions.TracingProvider (a
// span "{Credential}.GetToken" per call, as azidentity's), logs through log/slog (the Logger
// options; package azlog forwards them to an azcore/log listener).
package metrics
