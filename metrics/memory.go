package metrics

import (
	"context"
	"sync"
)

// Memory is a Recorder that keeps the measurements in memory: for tests (assert what a scripted
// run measured), and for a process that reads its own figures. The zero value is ready to use; it
// is safe for concurrent use. After the first measurement of a series it allocates nothing.
type Memory struct {
	mu     sync.Mutex
	counts map[counterKey]int64
	hists  map[histKey]Summary
	gauges map[gaugeKey]float64
}

type counterKey struct {
	c Counter
	l Labels
}

type histKey struct {
	h Histogram
	l Labels
}

type gaugeKey struct {
	g Gauge
	l Labels
}

// Summary sums up the values recorded in a histogram series.
type Summary struct {
	// Count is the number of values, Sum their sum; Min and Max the extremes.
	Count         int64
	Sum, Min, Max float64
}

// Add implements Recorder.
func (m *Memory) Add(_ context.Context, c Counter, n int64, l Labels) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.counts == nil {
		m.counts = map[counterKey]int64{}
	}
	m.counts[counterKey{c, l}] += n
}

// Record implements Recorder.
func (m *Memory) Record(_ context.Context, h Histogram, v float64, l Labels) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.hists == nil {
		m.hists = map[histKey]Summary{}
	}
	k := histKey{h, l}
	s := m.hists[k]
	if s.Count == 0 || v < s.Min {
		s.Min = v
	}
	if s.Count == 0 || v > s.Max {
		s.Max = v
	}
	s.Count++
	s.Sum += v
	m.hists[k] = s
}

// Set implements Recorder.
func (m *Memory) Set(_ context.Context, g Gauge, v float64, l Labels) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gauges == nil {
		m.gauges = map[gaugeKey]float64{}
	}
	m.gauges[gaugeKey{g, l}] = v
}

// Count returns the count of counter c for exactly the labels l.
func (m *Memory) Count(c Counter, l Labels) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counts[counterKey{c, l}]
}

// Total returns the count of counter c summed over every series whose labels match filter: an
// empty field of filter matches any value. Total(TokenRequests, Labels{}) counts every GetToken.
func (m *Memory) Total(c Counter, filter Labels) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for k, v := range m.counts {
		if k.c == c && filter.match(k.l) {
			n += v
		}
	}
	return n
}

// Histogram returns the summary of histogram h over every series whose labels match filter (an
// empty field matches any value).
func (m *Memory) Histogram(h Histogram, filter Labels) Summary {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out Summary
	for k, s := range m.hists {
		if k.h != h || !filter.match(k.l) || s.Count == 0 {
			continue
		}
		if out.Count == 0 || s.Min < out.Min {
			out.Min = s.Min
		}
		if out.Count == 0 || s.Max > out.Max {
			out.Max = s.Max
		}
		out.Count += s.Count
		out.Sum += s.Sum
	}
	return out
}

// Gauge returns the last value of gauge g for exactly the labels l, and whether it was ever set.
func (m *Memory) Gauge(g Gauge, l Labels) (float64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.gauges[gaugeKey{g, l}]
	return v, ok
}

// Reset forgets every measurement.
func (m *Memory) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.counts, m.hists, m.gauges = nil, nil, nil
}

func (f Labels) match(l Labels) bool {
	return (f.Credential == "" || f.Credential == l.Credential) &&
		(f.Source == "" || f.Source == l.Source) &&
		(f.Outcome == "" || f.Outcome == l.Outcome)
}

var _ Recorder = (*Memory)(nil)
