package metrics

import "context"

// Recorder receives azcredkit's measurements: set it in the Metrics field of a credential's
// options or of obo.AppOptions. Package otelmetrics (a module of its own) implements it with
// OpenTelemetry; any other metrics library takes a few lines (see the example).
//
// The methods are called on the caller's goroutine, on every GetToken included (Add of
// TokenRequests): they must be safe for concurrent use, must not block, and should not allocate.
// A panic in them is recovered and dropped. ctx is the context of the GetToken call (or of the
// background work) that made the measurement, for exemplars; it carries no token.
type Recorder interface {
	// Add adds n (at least 1) to counter c.
	Add(ctx context.Context, c Counter, n int64, l Labels)
	// Record records value v of histogram h (seconds for durations).
	Record(ctx context.Context, h Histogram, v float64, l Labels)
	// Set sets gauge g to v.
	Set(ctx context.Context, g Gauge, v float64, l Labels)
}

// Labels are the only dimensions of a measurement: each field is one of a small fixed set of
// values (no tenant, client, user, scope or certificate), so a metric has a handful of series.
// Fields that do not apply to a measurement are empty.
type Labels struct {
	// Credential is the credential type: "SignedAssertionCredential", "CertificateCredential"
	// (NewCertificateCredential), "KeyVaultCertCredential", "HSMSignedAssertionCredential",
	// "ManagedHSMCredential", "FederatedCredential" or "EasyAuthOBOCredential" (an obo.App).
	Credential string
	// Source is what answered a token request: memory, shared or entra.
	Source Source
	// Outcome is how the measured operation ended.
	Outcome Outcome
}

// Source is what answered a token request.
type Source string

// The sources of a token.
const (
	// SourceMemory: the credential's own cache in this process.
	SourceMemory Source = "memory"
	// SourceShared: the shared cache of an obo.App (AppOptions.SharedCache, Redis).
	SourceShared Source = "shared"
	// SourceEntra: a request to Microsoft Entra ID (or, for a failure, no token from anywhere).
	SourceEntra Source = "entra"
)

// Outcome is how an operation ended.
type Outcome string

// The outcomes of operations.
const (
	Success Outcome = "success"
	Failure Outcome = "failure"
	// Hit and Miss: a lookup in the shared cache (SharedCacheDuration).
	Hit  Outcome = "hit"
	Miss Outcome = "miss"
	// Unreadable: an entry of the shared cache that did not decrypt or parse (SharedCacheErrors).
	Unreadable Outcome = "unreadable"
	// Dropped: a write to the shared cache that was not done (SharedCacheErrors).
	Dropped Outcome = "dropped"
)

// Counter is a monotonic count.
type Counter int

// The counters.
const (
	// TokenRequests counts GetToken calls, by credential, source and outcome: the hit ratio of
	// the caches is source memory (and shared) over all. A failed call has source entra.
	TokenRequests Counter = iota + 1
	// TokenAcquisitions counts the requests for a token sent to Microsoft Entra ID (one per
	// shared fetch, whatever the number of callers waiting for it; an On-Behalf-Of exchange for
	// an obo.App), by credential and outcome.
	TokenAcquisitions
	// TokenRefreshes counts the background refreshes of tokens due for refresh, by credential,
	// source (entra, or shared for an obo.App whose shared cache had a newer token) and outcome.
	TokenRefreshes
	// OBOCacheEvictions counts the users' entries an obo.App evicted from its bounded cache
	// (MaxCachedUsers, MaxTokensPerUser).
	OBOCacheEvictions
	// KeyVaultReads counts the reads that load or re-check a certificate in Key Vault or a key in
	// Managed HSM, by credential and outcome: the secret (KeyVaultCertCredential), the
	// certificate (HSMSignedAssertionCredential), the key and its certificate source
	// (ManagedHSMCredential).
	KeyVaultReads
	// SignOperations counts the keys/sign operations sent to Key Vault or Managed HSM (billed and
	// rate-limited), by credential and outcome.
	SignOperations
	// CertificateRotations counts the times a credential switched to a new certificate version.
	CertificateRotations
	// SharedCacheErrors counts what went wrong with an obo.App's shared cache, by outcome:
	// failure (a call that failed, timed out or panicked), unreadable (an entry that did not
	// decrypt or parse) or dropped (a write not done). Each is a miss, never an error of a
	// request.
	SharedCacheErrors
)

// Histogram is a distribution of values.
type Histogram int

// The histograms.
const (
	// TokenAcquisitionDuration is the time of a token request to Microsoft Entra ID in seconds
	// (with the client assertion it needs: a Key Vault read or a sign operation when one is
	// due), by credential and outcome.
	TokenAcquisitionDuration Histogram = iota + 1
	// SharedCacheDuration is the time of a lookup in an obo.App's shared cache in seconds, by
	// outcome (hit, miss, failure).
	SharedCacheDuration
)

// Gauge is a value that goes up and down.
type Gauge int

// The gauges.
const (
	// OBOCacheSize is the number of user assertions in an obo.App's cache (App.CachedUsers).
	OBOCacheSize Gauge = iota + 1
	// SharedCacheBreakerOpen is 1 while an obo.App's circuit breaker keeps it from calling its
	// shared cache, else 0.
	SharedCacheBreakerOpen
	// CertificateDaysToExpiry is the number of days (fractional) until the certificate a
	// credential presents expires, by credential: set when the certificate is loaded and at each
	// token request to Entra. A warning is logged when it falls under 30 when loaded.
	CertificateDaysToExpiry
)

// info describes an instrument.
type info struct{ name, unit, desc string }

var counters = [...]info{
	TokenRequests:        {"azcredkit.token.requests", "{request}", "GetToken calls, by credential, source (memory, shared, entra) and outcome"},
	TokenAcquisitions:    {"azcredkit.token.acquisitions", "{request}", "token requests sent to Microsoft Entra ID, by credential and outcome"},
	TokenRefreshes:       {"azcredkit.token.refreshes", "{refresh}", "background refreshes of tokens due for refresh, by credential, source and outcome"},
	OBOCacheEvictions:    {"azcredkit.obo.cache.evictions", "{entry}", "user entries evicted from an obo.App's bounded cache"},
	KeyVaultReads:        {"azcredkit.keyvault.reads", "{read}", "Key Vault or Managed HSM reads that load or re-check a certificate or key, by credential and outcome"},
	SignOperations:       {"azcredkit.keyvault.sign_operations", "{operation}", "keys/sign operations sent to Key Vault or Managed HSM, by credential and outcome"},
	CertificateRotations: {"azcredkit.certificate.rotations", "{rotation}", "switches to a new certificate version, by credential"},
	SharedCacheErrors:    {"azcredkit.obo.shared_cache.errors", "{error}", "failed calls, unreadable entries and dropped writes of an obo.App's shared cache, by outcome"},
}

var histograms = [...]info{
	TokenAcquisitionDuration: {"azcredkit.token.acquisition.duration", "s", "time of a token request to Microsoft Entra ID, by credential and outcome"},
	SharedCacheDuration:      {"azcredkit.obo.shared_cache.duration", "s", "time of a lookup in an obo.App's shared cache, by outcome (hit, miss, failure)"},
}

var gauges = [...]info{
	OBOCacheSize:            {"azcredkit.obo.cache.size", "{entry}", "user assertions in an obo.App's cache"},
	SharedCacheBreakerOpen:  {"azcredkit.obo.shared_cache.breaker_open", "1", "1 while an obo.App's circuit breaker keeps it from calling its shared cache, else 0"},
	CertificateDaysToExpiry: {"azcredkit.certificate.days_to_expiry", "d", "days until the certificate a credential presents expires, by credential"},
}

func lookup(table []info, i int) info {
	if i > 0 && i < len(table) {
		return table[i]
	}
	return info{}
}

// Name is the counter's OpenTelemetry-style name, for example "azcredkit.token.requests"; "" for
// an unknown counter.
func (c Counter) Name() string { return lookup(counters[:], int(c)).name }

// Unit is the counter's unit in UCUM notation, for example "{request}".
func (c Counter) Unit() string { return lookup(counters[:], int(c)).unit }

// Description says what the counter counts.
func (c Counter) Description() string { return lookup(counters[:], int(c)).desc }

// String returns the counter's name.
func (c Counter) String() string { return c.Name() }

// Name is the histogram's OpenTelemetry-style name, for example
// "azcredkit.token.acquisition.duration"; "" for an unknown histogram.
func (h Histogram) Name() string { return lookup(histograms[:], int(h)).name }

// Unit is the histogram's unit in UCUM notation: "s".
func (h Histogram) Unit() string { return lookup(histograms[:], int(h)).unit }

// Description says what the histogram measures.
func (h Histogram) Description() string { return lookup(histograms[:], int(h)).desc }

// String returns the histogram's name.
func (h Histogram) String() string { return h.Name() }

// Name is the gauge's OpenTelemetry-style name, for example "azcredkit.obo.cache.size"; "" for an
// unknown gauge.
func (g Gauge) Name() string { return lookup(gauges[:], int(g)).name }

// Unit is the gauge's unit in UCUM notation.
func (g Gauge) Unit() string { return lookup(gauges[:], int(g)).unit }

// Description says what the gauge measures.
func (g Gauge) Description() string { return lookup(gauges[:], int(g)).desc }

// String returns the gauge's name.
func (g Gauge) String() string { return g.Name() }

// Counters returns every counter, for a Recorder that creates its instruments up front.
func Counters() []Counter {
	out := make([]Counter, 0, len(counters)-1)
	for i := 1; i < len(counters); i++ {
		out = append(out, Counter(i))
	}
	return out
}

// Histograms returns every histogram.
func Histograms() []Histogram {
	out := make([]Histogram, 0, len(histograms)-1)
	for i := 1; i < len(histograms); i++ {
		out = append(out, Histogram(i))
	}
	return out
}

// Gauges returns every gauge.
func Gauges() []Gauge {
	out := make([]Gauge, 0, len(gauges)-1)
	for i := 1; i < len(gauges); i++ {
		out = append(out, Gauge(i))
	}
	return out
}
