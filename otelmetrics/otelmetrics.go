// Package otelmetrics reports azcredkit's measurements to OpenTelemetry: New returns a
// metrics.Recorder whose instruments live on a meter of the caller's metric.MeterProvider. Set it
// in the Metrics field of a credential's options or of obo.AppOptions:
//
//	rec, err := otelmetrics.New(otel.GetMeterProvider(), nil)
//	cred, err := credential.NewKeyVaultCertCredential(tenantID, clientID, certURL, mi,
//		&credential.KeyVaultCertCredentialOptions{SignedAssertionCredentialOptions: credential.SignedAssertionCredentialOptions{Metrics: rec}})
//
// It is a module of its own (github.com/azcredkit/azcredkit/otelmetrics), so that a service that
// does not use OpenTelemetry does not get its modules with azcredkit's.
//
// # Instruments
//
// One instrument per metrics.Counter (an Int64Counter), metrics.Histogram (a Float64Histogram
// in seconds) and metrics.Gauge (a Float64Gauge), named as they are (for example
// "azcredkit.token.requests"), on the meter of instrumentation scope ScopeName. Their attributes
// are metrics.Labels' fields, when set: azcredkit.credential, azcredkit.source and
// azcredkit.outcome (never a tenant, client, user, scope or certificate), plus
// Options.Attributes. The cache hit ratio of a credential is
// azcredkit.token.requests{azcredkit.source="memory"} over azcredkit.token.requests.
//
// # Cost
//
// The attribute set of each combination of labels is built once: a measurement is one call of
// the OpenTelemetry instrument, which allocates nothing with the OpenTelemetry SDK's meter, so
// the cached GetToken stays free of allocations (see the module's benchmarks).
//
// # Observability
//
// Spans come from azcore's ClientOptions.TracingProvider (for OpenTelemetry, the Azure SDK's
// azotel adapter), logs from the Logger options (log/slog).
package otelmetrics

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/azcredkit/azcredkit/metrics"
)

// ScopeName is the instrumentation scope of the meter: azcredkit's module path.
const ScopeName = "github.com/azcredkit/azcredkit"

// Attribute keys of the labels.
const (
	AttrCredential = attribute.Key("azcredkit.credential")
	AttrSource     = attribute.Key("azcredkit.source")
	AttrOutcome    = attribute.Key("azcredkit.outcome")
)

// DefaultDurationBuckets are the histograms' bucket boundaries in seconds, from a shared cache
// lookup on loopback (under a millisecond) to a token request retried after throttling.
var DefaultDurationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// Options configure New. nil means the defaults.
type Options struct {
	// Attributes are added to every measurement, for example attribute.String("app", "payments")
	// to tell apart two credentials of one type (give each its own Recorder). Optional.
	Attributes []attribute.KeyValue
	// DurationBuckets are the histograms' explicit bucket boundaries in seconds: nil means
	// DefaultDurationBuckets. Optional.
	DurationBuckets []float64
}

// maxLabelSets bounds the cached attribute sets: azcredkit's labels make a few dozen
// combinations; beyond the bound (a caller inventing labels) the set is built for each call.
const maxLabelSets = 512

// Recorder is a metrics.Recorder on OpenTelemetry instruments. It is safe for concurrent use.
type Recorder struct {
	counters   []metric.Int64Counter
	histograms []metric.Float64Histogram
	gauges     []metric.Float64Gauge
	base       []attribute.KeyValue

	sets atomic.Pointer[map[metrics.Labels]*labelSet] // copy on write
	mu   sync.Mutex                                   // serializes writers of sets
}

// labelSet holds the options of one combination of labels, built once.
type labelSet struct {
	add    []metric.AddOption
	record []metric.RecordOption
}

// New creates azcredkit's instruments on provider's meter for ScopeName (a nil provider is an
// error) and returns the Recorder that feeds them.
func New(provider metric.MeterProvider, options *Options) (*Recorder, error) {
	if provider == nil {
		return nil, errors.New("otelmetrics: the MeterProvider is nil: pass otel.GetMeterProvider() or your SDK's provider")
	}
	var o Options
	if options != nil {
		o = *options
	}
	buckets := o.DurationBuckets
	if buckets == nil {
		buckets = DefaultDurationBuckets
	}
	m := provider.Meter(ScopeName)
	r := &Recorder{base: append([]attribute.KeyValue(nil), o.Attributes...)}
	var errs []error
	cs := metrics.Counters()
	r.counters = make([]metric.Int64Counter, len(cs)+1)
	for _, c := range cs {
		inst, err := m.Int64Counter(c.Name(), metric.WithUnit(c.Unit()), metric.WithDescription(c.Description()))
		errs = append(errs, err)
		r.counters[c] = inst
	}
	hs := metrics.Histograms()
	r.histograms = make([]metric.Float64Histogram, len(hs)+1)
	for _, h := range hs {
		inst, err := m.Float64Histogram(h.Name(), metric.WithUnit(h.Unit()), metric.WithDescription(h.Description()), metric.WithExplicitBucketBoundaries(buckets...))
		errs = append(errs, err)
		r.histograms[h] = inst
	}
	gs := metrics.Gauges()
	r.gauges = make([]metric.Float64Gauge, len(gs)+1)
	for _, g := range gs {
		inst, err := m.Float64Gauge(g.Name(), metric.WithUnit(g.Unit()), metric.WithDescription(g.Description()))
		errs = append(errs, err)
		r.gauges[g] = inst
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("otelmetrics: creating the instruments: %w", err)
	}
	return r, nil
}

// set returns the options of labels l, building them once.
func (r *Recorder) set(l metrics.Labels) *labelSet {
	if m := r.sets.Load(); m != nil {
		if s, ok := (*m)[l]; ok {
			return s
		}
	}
	s := r.build(l)
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.sets.Load()
	if old != nil {
		if cur, ok := (*old)[l]; ok {
			return cur
		}
		if len(*old) >= maxLabelSets {
			return s
		}
	}
	next := make(map[metrics.Labels]*labelSet, 1)
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	next[l] = s
	r.sets.Store(&next)
	return s
}

func (r *Recorder) build(l metrics.Labels) *labelSet {
	kv := append([]attribute.KeyValue(nil), r.base...)
	if l.Credential != "" {
		kv = append(kv, AttrCredential.String(l.Credential))
	}
	if l.Source != "" {
		kv = append(kv, AttrSource.String(string(l.Source)))
	}
	if l.Outcome != "" {
		kv = append(kv, AttrOutcome.String(string(l.Outcome)))
	}
	opt := metric.WithAttributeSet(attribute.NewSet(kv...))
	return &labelSet{add: []metric.AddOption{opt}, record: []metric.RecordOption{opt}}
}

// Add implements metrics.Recorder.
func (r *Recorder) Add(ctx context.Context, c metrics.Counter, n int64, l metrics.Labels) {
	if c <= 0 || int(c) >= len(r.counters) {
		return
	}
	r.counters[c].Add(ctx, n, r.set(l).add...)
}

// Record implements metrics.Recorder.
func (r *Recorder) Record(ctx context.Context, h metrics.Histogram, v float64, l metrics.Labels) {
	if h <= 0 || int(h) >= len(r.histograms) {
		return
	}
	r.histograms[h].Record(ctx, v, r.set(l).record...)
}

// Set implements metrics.Recorder.
func (r *Recorder) Set(ctx context.Context, g metrics.Gauge, v float64, l metrics.Labels) {
	if g <= 0 || int(g) >= len(r.gauges) {
		return
	}
	r.gauges[g].Record(ctx, v, r.set(l).record...)
}

var _ metrics.Recorder = (*Recorder)(nil)
