package otelmetrics_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/emulator"
	"github.com/azcredkit/azcredkit/metrics"
	"github.com/azcredkit/azcredkit/obo"
	"github.com/azcredkit/azcredkit/otelmetrics"
)

const (
	tenantID = "72f988bf-0000-4000-8000-000000000001"
	clientID = "5b1a3e9c-0000-4000-8000-0000000000a1"
	apiID    = "a1a1a1a1-0000-4000-8000-0000000000a1"
	vault    = "https://vault.azure.net/.default"
)

// newReader returns a manual reader and the meter provider it reads.
func newReader(t testing.TB) (*sdkmetric.ManualReader, *sdkmetric.MeterProvider) {
	t.Helper()
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return r, mp
}

// collect reads every metric of azcredkit's scope, by name.
func collect(t testing.TB, r *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != otelmetrics.ScopeName {
			t.Errorf("scope %q", sm.Scope.Name)
			continue
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// sum is the value of the counter's data point whose attributes include every one of want.
func sum(t testing.TB, m metricdata.Metrics, want ...attribute.KeyValue) int64 {
	t.Helper()
	s, ok := m.Data.(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("%s is %T, not an int64 sum", m.Name, m.Data)
	}
	if !s.IsMonotonic {
		t.Errorf("%s is not monotonic", m.Name)
	}
	var n int64
	for _, dp := range s.DataPoints {
		if has(dp.Attributes, want) {
			n += dp.Value
		}
	}
	return n
}

func has(set attribute.Set, want []attribute.KeyValue) bool {
	for _, kv := range want {
		if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
			return false
		}
	}
	return true
}

func newEmulator(t testing.TB) (*emulator.Emulator, *emulator.TestCertificate) {
	t.Helper()
	emu, err := emulator.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	cert, err := emulator.NewTestCertificate("otel-test")
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.RegisterApp(tenantID, clientID, cert.Certificate); err != nil {
		t.Fatal(err)
	}
	return emu, cert
}

// TestCredentialThroughTheSDK: a scripted run (N GetToken calls: N-1 from the cache, 1 request to
// Entra) read back with the OpenTelemetry SDK's manual reader: the counters by source and outcome,
// the acquisition's latency, the certificate's days to expiry, the constant attributes.
func TestCredentialThroughTheSDK(t *testing.T) {
	emu, cert := newEmulator(t)
	reader, mp := newReader(t)
	rec, err := otelmetrics.New(mp, &otelmetrics.Options{Attributes: []attribute.KeyValue{attribute.String("app", "payments")}})
	if err != nil {
		t.Fatal(err)
	}
	cred, err := credential.NewCertificateCredential(tenantID, clientID, cert.PEM(), "", &credential.SignedAssertionCredentialOptions{ClientOptions: emu.ClientOptions(), Metrics: rec})
	if err != nil {
		t.Fatal(err)
	}
	const n = 7
	for range n {
		if _, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vault}}); err != nil {
			t.Fatal(err)
		}
	}
	got := collect(t, reader)
	app := attribute.String("app", "payments")
	credAttr := otelmetrics.AttrCredential.String("CertificateCredential")
	requests := got["azcredkit.token.requests"]
	if requests.Unit != "{request}" || requests.Description == "" {
		t.Errorf("instrument %+v", requests)
	}
	if v := sum(t, requests, app, credAttr, otelmetrics.AttrSource.String("memory"), otelmetrics.AttrOutcome.String("success")); v != n-1 {
		t.Errorf("memory hits %d, want %d", v, n-1)
	}
	if v := sum(t, requests, app, credAttr, otelmetrics.AttrSource.String("entra"), otelmetrics.AttrOutcome.String("success")); v != 1 {
		t.Errorf("from Entra %d, want 1", v)
	}
	if v := sum(t, got["azcredkit.token.acquisitions"], credAttr, otelmetrics.AttrOutcome.String("success")); v != 1 {
		t.Errorf("acquisitions %d, want 1", v)
	}
	if c := emu.Counts().TokenRequests; c != 1 {
		t.Errorf("the emulator saw %d token requests", c)
	}
	h, ok := got["azcredkit.token.acquisition.duration"].Data.(metricdata.Histogram[float64])
	if !ok || len(h.DataPoints) != 1 || h.DataPoints[0].Count != 1 || h.DataPoints[0].Sum <= 0 || got["azcredkit.token.acquisition.duration"].Unit != "s" {
		t.Errorf("duration %+v", got["azcredkit.token.acquisition.duration"])
	}
	if len(h.DataPoints) == 1 && len(h.DataPoints[0].Bounds) != len(otelmetrics.DefaultDurationBuckets) {
		t.Errorf("buckets %v", h.DataPoints[0].Bounds)
	}
	g, ok := got["azcredkit.certificate.days_to_expiry"].Data.(metricdata.Gauge[float64])
	if !ok || len(g.DataPoints) != 1 || g.DataPoints[0].Value < 364 || g.DataPoints[0].Value > 366 || !has(g.DataPoints[0].Attributes, []attribute.KeyValue{credAttr, app}) {
		t.Errorf("days to expiry %+v", got["azcredkit.certificate.days_to_expiry"])
	}
	// Labels only from the fixed set: no tenant, client or scope anywhere.
	for name, m := range got {
		var buf bytes.Buffer
		for _, kv := range attrsOf(m) {
			buf.WriteString(string(kv.Key) + "=" + kv.Value.String() + " ")
			switch kv.Key {
			case otelmetrics.AttrCredential, otelmetrics.AttrSource, otelmetrics.AttrOutcome, "app":
			default:
				t.Errorf("%s: attribute %s", name, kv.Key)
			}
		}
		for _, bad := range []string{tenantID, clientID, "vault.azure.net"} {
			if bytes.Contains(buf.Bytes(), []byte(bad)) {
				t.Errorf("%s: %s in %s", name, bad, buf.String())
			}
		}
	}
}

func attrsOf(m metricdata.Metrics) []attribute.KeyValue {
	var out []attribute.KeyValue
	add := func(s attribute.Set) { out = append(out, s.ToSlice()...) }
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, dp := range d.DataPoints {
			add(dp.Attributes)
		}
	case metricdata.Histogram[float64]:
		for _, dp := range d.DataPoints {
			add(dp.Attributes)
		}
	case metricdata.Gauge[float64]:
		for _, dp := range d.DataPoints {
			add(dp.Attributes)
		}
	}
	return out
}

// store is an in-memory obo.SharedCache.
type store struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *store) Get(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.m[key]), nil
}

func (s *store) Set(_ context.Context, key string, value []byte, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = bytes.Clone(value)
	return nil
}

func (s *store) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

// TestOBOThroughTheSDK: two instances of an OBO middle tier sharing a cache, each with its own
// Recorder (Options.Attributes tells them apart) on one meter provider: instance A's request goes
// to Entra, its next to its memory; instance B's first is answered by the shared cache.
func TestOBOThroughTheSDK(t *testing.T) {
	emu, err := emulator.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	if err := emu.RegisterSecretApp(tenantID, apiID, "middle-tier-secret"); err != nil {
		t.Fatal(err)
	}
	reader, mp := newReader(t)
	shared := &store{m: map[string][]byte{}}
	key := bytes.Repeat([]byte{7}, 32)
	instance := func(name string) *obo.App {
		rec, err := otelmetrics.New(mp, &otelmetrics.Options{Attributes: []attribute.KeyValue{attribute.String("instance", name)}})
		if err != nil {
			t.Fatal(err)
		}
		a, err := obo.NewAppWithSecret(tenantID, apiID, "middle-tier-secret", &obo.AppOptions{
			ClientOptions: emu.ClientOptions(), SharedCache: shared, SharedCacheKeys: [][]byte{key}, Metrics: rec,
		})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a, b := instance("a"), instance("b")
	user := emu.UserToken(tenantID, apiID, emulator.User{ObjectID: "00000000-0000-4000-8000-0000000000e1", UserPrincipalName: "user@contoso.example"}, time.Hour)
	get := func(app *obo.App) {
		t.Helper()
		c, err := app.Credential(user)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/user_impersonation"}}); err != nil {
			t.Fatal(err)
		}
	}
	get(a)
	get(a)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.FlushSharedCache(ctx); err != nil {
		t.Fatal(err)
	}
	get(b)
	get(b)
	got := collect(t, reader)
	requests := got["azcredkit.token.requests"]
	obos := otelmetrics.AttrCredential.String("EasyAuthOBOCredential")
	for _, c := range []struct {
		instance, source string
		want             int64
	}{{"a", "entra", 1}, {"a", "memory", 1}, {"a", "shared", 0}, {"b", "entra", 0}, {"b", "shared", 1}, {"b", "memory", 1}} {
		if v := sum(t, requests, obos, attribute.String("instance", c.instance), otelmetrics.AttrSource.String(c.source)); v != c.want {
			t.Errorf("instance %s, source %s: %d, want %d", c.instance, c.source, v, c.want)
		}
	}
	if v := sum(t, got["azcredkit.token.acquisitions"], attribute.String("instance", "b")); v != 0 {
		t.Errorf("instance b exchanged %d times", v)
	}
	if c := emu.Counts().OBOExchanges; c != 1 {
		t.Errorf("%d exchanges", c)
	}
	sizes, _ := got["azcredkit.obo.cache.size"].Data.(metricdata.Gauge[float64])
	if len(sizes.DataPoints) != 2 {
		t.Errorf("cache size %+v", got["azcredkit.obo.cache.size"])
	}
	lookups, _ := got["azcredkit.obo.shared_cache.duration"].Data.(metricdata.Histogram[float64])
	var hits, misses uint64
	for _, dp := range lookups.DataPoints {
		switch {
		case has(dp.Attributes, []attribute.KeyValue{otelmetrics.AttrOutcome.String("hit")}):
			hits += dp.Count
		case has(dp.Attributes, []attribute.KeyValue{otelmetrics.AttrOutcome.String("miss")}):
			misses += dp.Count
		}
	}
	if hits != 1 || misses != 1 {
		t.Errorf("shared cache lookups: %d hits, %d misses", hits, misses)
	}
}

// TestNewErrors: a nil provider is an error; unknown instruments are ignored.
func TestNewErrors(t *testing.T) {
	if _, err := otelmetrics.New(nil, nil); err == nil {
		t.Error("a nil MeterProvider")
	}
	reader, mp := newReader(t)
	rec, err := otelmetrics.New(mp, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec.Add(context.Background(), metrics.Counter(0), 1, metrics.Labels{})
	rec.Add(context.Background(), metrics.Counter(1000), 1, metrics.Labels{})
	rec.Record(context.Background(), metrics.Histogram(-1), 1, metrics.Labels{})
	rec.Set(context.Background(), metrics.Gauge(77), 1, metrics.Labels{})
	if got := collect(t, reader); len(got) != 0 {
		t.Errorf("unknown instruments reported: %v", got)
	}
}

// TestCachedGetTokenAllocations: the cached GetToken with the OpenTelemetry SDK behind the
// Recorder allocates nothing.
func TestCachedGetTokenAllocations(t *testing.T) {
	emu, cert := newEmulator(t)
	_, mp := newReader(t)
	rec, err := otelmetrics.New(mp, nil)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := credential.NewCertificateCredential(tenantID, clientID, cert.PEM(), "", &credential.SignedAssertionCredentialOptions{ClientOptions: emu.ClientOptions(), Metrics: rec})
	if err != nil {
		t.Fatal(err)
	}
	opts := policy.TokenRequestOptions{Scopes: []string{vault}}
	for range 2 {
		if _, err := cred.GetToken(context.Background(), opts); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := cred.GetToken(context.Background(), opts); err != nil {
			panic(err)
		}
	})
	t.Logf("allocations per cached GetToken with the OpenTelemetry SDK: %v", allocs)
	if allocs != 0 {
		t.Errorf("a cached GetToken allocates %v times with the OpenTelemetry SDK", allocs)
	}
}

// BenchmarkCachedGetToken measures the cached GetToken without metrics, with metrics.Memory and
// with this package over the OpenTelemetry SDK.
//
//	go test -run '^$' -bench CachedGetToken -benchmem -count 6 ./otelmetrics/
func BenchmarkCachedGetToken(b *testing.B) {
	emu, cert := newEmulator(b)
	_, mp := newReader(b)
	otel, err := otelmetrics.New(mp, nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		rec  metrics.Recorder
	}{{"none", nil}, {"memory", &metrics.Memory{}}, {"otel", otel}} {
		var cred azcore.TokenCredential
		cred, err := credential.NewCertificateCredential(tenantID, clientID, cert.PEM(), "", &credential.SignedAssertionCredentialOptions{ClientOptions: emu.ClientOptions(), Metrics: c.rec})
		if err != nil {
			b.Fatal(err)
		}
		opts := policy.TokenRequestOptions{Scopes: []string{vault}}
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
}
