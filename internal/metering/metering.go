// Package metering sends a credential's measurements to a metrics.Recorder: the credential and
// obo packages share it, so that both label their measurements alike, drop a panicking
// Recorder's panic alike, and count token requests and refreshes alike.
package metering

import (
	"context"
	"time"

	"github.com/azcredkit/azcredkit/internal/entra"
	"github.com/azcredkit/azcredkit/internal/tokencache"
	"github.com/azcredkit/azcredkit/metrics"
)

// Meter sends one credential's measurements to R, labelled with the credential type; the zero
// value (no Recorder) sends nothing. A panic in the Recorder is dropped.
type Meter struct {
	R metrics.Recorder
	// Credential is the credential type label (metrics.Labels.Credential).
	Credential string
}

// Add adds 1 to c.
func (m Meter) Add(ctx context.Context, c metrics.Counter, src metrics.Source, out metrics.Outcome) {
	if m.R == nil {
		return
	}
	defer func() { _ = recover() }()
	m.R.Add(ctx, c, 1, metrics.Labels{Credential: m.Credential, Source: src, Outcome: out})
}

// Record records v in h.
func (m Meter) Record(ctx context.Context, h metrics.Histogram, v float64, out metrics.Outcome) {
	if m.R == nil {
		return
	}
	defer func() { _ = recover() }()
	m.R.Record(ctx, h, v, metrics.Labels{Credential: m.Credential, Outcome: out})
}

// Set sets g to v.
func (m Meter) Set(ctx context.Context, g metrics.Gauge, v float64) {
	if m.R == nil {
		return
	}
	defer func() { _ = recover() }()
	m.R.Set(ctx, g, v, metrics.Labels{Credential: m.Credential})
}

// Acquired measures one token request sent to Entra that started at start and ended with err
// (TokenAcquisitions, TokenAcquisitionDuration).
func (m Meter) Acquired(ctx context.Context, start time.Time, err error) {
	out := Outcome(err)
	m.Add(ctx, metrics.TokenAcquisitions, "", out)
	m.Record(ctx, metrics.TokenAcquisitionDuration, time.Since(start).Seconds(), out)
}

// Observer returns the tokencache observer of one slot: logObs (nil for none) and the refresh
// outcomes (TokenRefreshes). Without a Recorder it is logObs itself.
func (m Meter) Observer(logObs func(tokencache.Event)) func(tokencache.Event) {
	if m.R == nil {
		return logObs
	}
	return func(ev tokencache.Event) {
		if logObs != nil {
			logObs(ev)
		}
		switch ev.Kind {
		case tokencache.Refreshed:
			m.Add(context.Background(), metrics.TokenRefreshes, Source(ev.Source), metrics.Success)
		case tokencache.RefreshFailed:
			m.Add(context.Background(), metrics.TokenRefreshes, metrics.SourceEntra, metrics.Failure)
		}
	}
}

// Outcome is the outcome of an operation that ended with err.
func Outcome(err error) metrics.Outcome {
	if err != nil {
		return metrics.Failure
	}
	return metrics.Success
}

// Source is the metrics source of a call served as s: the name the log records give it.
func Source(s tokencache.Source) metrics.Source {
	return metrics.Source(entra.SourceName(s))
}
