package obo

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/tracing"

	"github.com/azcredkit/azcredkit/internal/tracetest"
	"github.com/azcredkit/azcredkit/metrics"
)

// spanStore is a memStore that records the span of the context of each Get: the shared cache's
// lookups must be children of the GetToken span (a tracing Redis client would make its spans
// there).
type spanStore struct {
	*memStore
	mu   sync.Mutex
	gets []*tracetest.Span
}

func (s *spanStore) Get(ctx context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	s.gets = append(s.gets, tracetest.FromContext(ctx))
	s.mu.Unlock()
	return s.memStore.Get(ctx, key)
}

func (s *spanStore) lastGet() *tracetest.Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.gets) == 0 {
		return nil
	}
	return s.gets[len(s.gets)-1]
}

// TestOBOSpansAndMetrics: the OBO credential's GetToken is a span "EasyAuthOBOCredential.GetToken"
// (kind internal, az.namespace Microsoft.Entra, a child of the caller's span) that says which
// cache answered: none (an exchange, whose HTTP span is its child), memory, or shared (another
// instance's token; the store's Get ran under the span's context); an MFA step-up sets the error
// status and the AADSTS code. The metrics of the same run: each instance counts its requests by
// source, its exchanges, its shared cache lookups (miss, hit) and its cache size.
func TestOBOSpansAndMetrics(t *testing.T) {
	se := newSharedEnv(t)
	se.e.RequireMFA("https://vault.azure.net")
	store := &spanStore{memStore: newMemStore(t)}
	rec := &tracetest.Recorder{}
	var ma, mb metrics.Memory
	instance := func(m *metrics.Memory) *App {
		return se.app(t, store, [][]byte{testKey(1)}, func(o *AppOptions) {
			o.ClientOptions.TracingProvider = rec.Provider()
			o.Metrics = m
		})
	}
	a, b := instance(&ma), instance(&mb)
	_, _, ut := se.user(1)
	opts := policy.TokenRequestOptions{Scopes: []string{shScope}}
	call := func(app *App, o policy.TokenRequestOptions) (*tracetest.Span, *tracetest.Span, error) {
		t.Helper()
		rec.Reset()
		c, err := app.Credential(ut)
		if err != nil {
			t.Fatal(err)
		}
		ctx, caller := rec.Start(context.Background(), "handle request")
		defer caller.End()
		_, err = c.GetToken(ctx, o)
		spans := rec.Named("EasyAuthOBOCredential.GetToken")
		if len(spans) != 1 {
			t.Fatalf("%d GetToken spans:\n%s", len(spans), rec.Dump())
		}
		s := spans[0]
		if s.Kind != tracing.SpanKindInternal || s.Attr("az.namespace") != "Microsoft.Entra" || s.Parent != caller || !s.Ended() {
			t.Errorf("span %s, parent %v", s, s.Parent)
		}
		return s, caller, err
	}
	tokenRequests := func(s *tracetest.Span) int {
		n := 0
		for _, c := range rec.Children(s) {
			if c.Name == "HTTP POST" && c.Attr("az.namespace") == "Microsoft.Entra" {
				n++
			}
		}
		return n
	}

	// Instance A exchanges the user's token: cache none, the exchange and the lookup under the span.
	s, _, err := call(a, opts)
	if err != nil {
		t.Fatal(err)
	}
	if s.Attr("azcredkit.cache") != "none" || s.Attr("azcredkit.refresh_reason") != "no_token" || tokenRequests(s) != 1 {
		t.Errorf("exchange: %s\n%s", s, rec.Dump())
	}
	if got := store.lastGet(); got != s {
		t.Errorf("the shared cache lookup ran under span %v, want the GetToken span", got)
	}
	flush(t, a)
	// Again on A: its own cache.
	if s, _, err = call(a, opts); err != nil || s.Attr("azcredkit.cache") != "memory" || len(rec.Children(s)) != 0 {
		t.Errorf("cached: %v %s\n%s", err, s, rec.Dump())
	}
	// Instance B: the shared cache answers, under B's span; no exchange.
	s, _, err = call(b, opts)
	if err != nil {
		t.Fatal(err)
	}
	if s.Attr("azcredkit.cache") != "shared" || tokenRequests(s) != 0 {
		t.Errorf("shared: %s\n%s", s, rec.Dump())
	}
	if got := store.lastGet(); got != s {
		t.Errorf("B's lookup ran under span %v, want B's GetToken span", got)
	}
	if s, _, err = call(b, opts); err != nil || s.Attr("azcredkit.cache") != "memory" {
		t.Errorf("B cached: %v %s", err, s)
	}
	// MFA step-up: the error status and the AADSTS code.
	s, _, err = call(a, policy.TokenRequestOptions{Scopes: []string{shVault}})
	var ir *InteractionRequiredError
	if !errors.As(err, &ir) {
		t.Fatalf("step-up: %v", err)
	}
	if st, desc := s.Status(); st != tracing.SpanStatusError || s.Attr("azcredkit.aadsts") != 50076 || s.Attr("azcredkit.cache") != "none" {
		t.Errorf("step-up span %s (%q)", s, desc)
	}

	label := func(src metrics.Source, out metrics.Outcome) metrics.Labels {
		return metrics.Labels{Credential: "EasyAuthOBOCredential", Source: src, Outcome: out}
	}
	for _, c := range []struct {
		name string
		got  int64
		want int64
	}{
		{"A entra", ma.Count(metrics.TokenRequests, label(metrics.SourceEntra, metrics.Success)), 1},
		{"A memory", ma.Count(metrics.TokenRequests, label(metrics.SourceMemory, metrics.Success)), 1},
		{"A failed", ma.Count(metrics.TokenRequests, label(metrics.SourceEntra, metrics.Failure)), 1},
		{"A exchanges", ma.Total(metrics.TokenAcquisitions, metrics.Labels{Outcome: metrics.Success}), 1},
		{"A failed exchanges", ma.Total(metrics.TokenAcquisitions, metrics.Labels{Outcome: metrics.Failure}), 1},
		{"A lookups missed", ma.Histogram(metrics.SharedCacheDuration, metrics.Labels{Outcome: metrics.Miss}).Count, 2},
		{"B shared", mb.Count(metrics.TokenRequests, label(metrics.SourceShared, metrics.Success)), 1},
		{"B memory", mb.Count(metrics.TokenRequests, label(metrics.SourceMemory, metrics.Success)), 1},
		{"B exchanges", mb.Total(metrics.TokenAcquisitions, metrics.Labels{}), 0},
		{"B lookups hit", mb.Histogram(metrics.SharedCacheDuration, metrics.Labels{Outcome: metrics.Hit}).Count, 1},
		{"B shared cache errors", mb.Total(metrics.SharedCacheErrors, metrics.Labels{}), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.name, c.got, c.want)
		}
	}
	if n, ok := ma.Gauge(metrics.OBOCacheSize, metrics.Labels{Credential: "EasyAuthOBOCredential"}); !ok || n != 1 {
		t.Errorf("A's cache size gauge %v %v, want 1", n, ok)
	}
}

// TestOBOCacheAndSharedCacheMetrics: evictions and the size of the bounded cache, the shared
// cache's errors and its breaker state.
func TestOBOCacheAndSharedCacheMetrics(t *testing.T) {
	se := newSharedEnv(t)
	store := newMemStore(t)
	var m metrics.Memory
	a := se.app(t, store, [][]byte{testKey(1)}, func(o *AppOptions) {
		o.Metrics = &m
		o.MaxCachedUsers = 2
		o.SharedCacheOptions = SharedCacheOptions{Timeout: 50 * time.Millisecond, FailureThreshold: 2, Cooldown: time.Hour}
	})
	store.mode.Store(storeFail)
	for i := range 5 {
		_, _, ut := se.user(i)
		getToken(t, a, ut, shScope)
		flush(t, a) // the write after the exchange fails before the next lookup
	}
	all := metrics.Labels{Credential: "EasyAuthOBOCredential"}
	if n := m.Total(metrics.OBOCacheEvictions, metrics.Labels{}); n != 3 {
		t.Errorf("%d evictions, want 3 (5 users, room for 2)", n)
	}
	if n, _ := m.Gauge(metrics.OBOCacheSize, all); n != 2 || a.CachedUsers() != 2 {
		t.Errorf("cache size gauge %v (CachedUsers %d), want 2", n, a.CachedUsers())
	}
	failures := m.Count(metrics.SharedCacheErrors, metrics.Labels{Credential: "EasyAuthOBOCredential", Source: metrics.SourceShared, Outcome: metrics.Failure})
	if failures < 2 || failures != a.SharedCacheStats().Failures {
		t.Errorf("%d shared cache failures counted, stats say %d", failures, a.SharedCacheStats().Failures)
	}
	if v, ok := m.Gauge(metrics.SharedCacheBreakerOpen, all); !ok || v != 1 {
		t.Errorf("breaker gauge %v %v, want 1 (open)", v, ok)
	}
	// The first lookup fails; with the write after the exchange failing too, the breaker opens
	// and the next lookups are not made (misses).
	if n := m.Histogram(metrics.SharedCacheDuration, metrics.Labels{Outcome: metrics.Failure}).Count; n != 1 {
		t.Errorf("%d failed lookups timed, want 1", n)
	}
	if n := m.Histogram(metrics.SharedCacheDuration, metrics.Labels{Outcome: metrics.Miss}).Count; n != 4 {
		t.Errorf("%d missed lookups timed, want 4", n)
	}
	if n := m.Total(metrics.TokenRequests, metrics.Labels{Source: metrics.SourceEntra, Outcome: metrics.Success}); n != 5 {
		t.Errorf("%d requests answered by Entra, want 5", n)
	}
}

// countingRecorder counts with atomics: a Recorder that does not allocate.
type countingRecorder struct{ adds, records, sets atomic.Int64 }

func (r *countingRecorder) Add(context.Context, metrics.Counter, int64, metrics.Labels) {
	r.adds.Add(1)
}
func (r *countingRecorder) Record(context.Context, metrics.Histogram, float64, metrics.Labels) {
	r.records.Add(1)
}
func (r *countingRecorder) Set(context.Context, metrics.Gauge, float64, metrics.Labels) {
	r.sets.Add(1)
}

// TestOBOCachedGetTokenDoesNotAllocateWithMetrics: with a Recorder that does not allocate, the
// cached GetToken of the OBO credential still allocates nothing.
func TestOBOCachedGetTokenDoesNotAllocateWithMetrics(t *testing.T) {
	se := newSharedEnv(t)
	r := &countingRecorder{}
	a := se.app(t, newMemStore(t), [][]byte{testKey(1)}, func(o *AppOptions) { o.Metrics = r })
	_, _, ut := se.user(1)
	c, err := a.Credential(ut)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	opts := policy.TokenRequestOptions{Scopes: []string{shScope}}
	if _, err := c.GetToken(ctx, opts); err != nil {
		t.Fatal(err)
	}
	before := r.adds.Load()
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := c.GetToken(ctx, opts); err != nil {
			panic(err)
		}
	})
	if allocs != 0 {
		t.Errorf("a cached GetToken with a Recorder allocates %v times", allocs)
	}
	if n := r.adds.Load() - before; n < 1000 {
		t.Errorf("%d adds for 1001 cached calls", n)
	}
}
