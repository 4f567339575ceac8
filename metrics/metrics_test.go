package metrics_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/azcredkit/azcredkit/metrics"
)

// TestInstrumentNames: every instrument has a unique name under azcredkit., a unit and a
// description; unknown values have none.
func TestInstrumentNames(t *testing.T) {
	seen := map[string]bool{}
	check := func(name, unit, desc string) {
		t.Helper()
		if !strings.HasPrefix(name, "azcredkit.") || unit == "" || desc == "" || seen[name] {
			t.Errorf("instrument %q unit %q desc %q (seen %v)", name, unit, desc, seen[name])
		}
		seen[name] = true
	}
	for _, c := range metrics.Counters() {
		check(c.Name(), c.Unit(), c.Description())
		if c.String() != c.Name() {
			t.Error(c)
		}
	}
	for _, h := range metrics.Histograms() {
		check(h.Name(), h.Unit(), h.Description())
		if h.Unit() != "s" {
			t.Errorf("%s: durations are in seconds", h)
		}
	}
	for _, g := range metrics.Gauges() {
		check(g.Name(), g.Unit(), g.Description())
	}
	if len(seen) != 8+2+3 {
		t.Errorf("%d instruments", len(seen))
	}
	if metrics.Counter(0).Name() != "" || metrics.Counter(99).Name() != "" || metrics.Gauge(-1).Unit() != "" || metrics.Histogram(42).Description() != "" {
		t.Error("unknown instruments have no name")
	}
}

func TestMemory(t *testing.T) {
	var m metrics.Memory
	ctx := context.Background()
	a := metrics.Labels{Credential: "A", Source: metrics.SourceMemory, Outcome: metrics.Success}
	b := metrics.Labels{Credential: "B", Source: metrics.SourceEntra, Outcome: metrics.Failure}
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.Add(ctx, metrics.TokenRequests, 1, a)
			m.Add(ctx, metrics.TokenRequests, 2, b)
			m.Record(ctx, metrics.TokenAcquisitionDuration, 0.5, b)
		}()
	}
	wg.Wait()
	m.Record(ctx, metrics.TokenAcquisitionDuration, 0.1, a)
	m.Record(ctx, metrics.TokenAcquisitionDuration, 2, a)
	m.Set(ctx, metrics.OBOCacheSize, 3, a)
	m.Set(ctx, metrics.OBOCacheSize, 4, a)
	if m.Count(metrics.TokenRequests, a) != 10 || m.Count(metrics.TokenRequests, b) != 20 || m.Total(metrics.TokenRequests, metrics.Labels{}) != 30 {
		t.Error("counts")
	}
	if m.Total(metrics.TokenRequests, metrics.Labels{Outcome: metrics.Failure}) != 20 || m.Total(metrics.TokenRequests, metrics.Labels{Credential: "A", Source: metrics.SourceEntra}) != 0 {
		t.Error("filters")
	}
	s := m.Histogram(metrics.TokenAcquisitionDuration, metrics.Labels{})
	if s.Count != 12 || s.Min != 0.1 || s.Max != 2 || s.Sum < 7.09 || s.Sum > 7.11 {
		t.Errorf("summary %+v", s)
	}
	if v, ok := m.Gauge(metrics.OBOCacheSize, a); !ok || v != 4 {
		t.Errorf("gauge %v %v", v, ok)
	}
	if _, ok := m.Gauge(metrics.OBOCacheSize, b); ok {
		t.Error("a gauge never set")
	}
	allocs := testing.AllocsPerRun(100, func() { m.Add(ctx, metrics.TokenRequests, 1, a) })
	if allocs != 0 {
		t.Errorf("Memory.Add of a known series allocates %v", allocs)
	}
	m.Reset()
	if m.Total(metrics.TokenRequests, metrics.Labels{}) != 0 || m.Histogram(metrics.TokenAcquisitionDuration, metrics.Labels{}).Count != 0 {
		t.Error("Reset")
	}
}
