package obo

import (
	"context"

	"github.com/azcredkit/azcredkit/internal/entra"
	"github.com/azcredkit/azcredkit/internal/tokencache"
	"github.com/azcredkit/azcredkit/metrics"
)

// meter sends an App's measurements to a metrics.Recorder, labelled with the credential type
// EasyAuthOBOCredential; the zero value (no Recorder) sends nothing. A panic in the Recorder is
// dropped.
type meter struct {
	r metrics.Recorder
}

func (m meter) add(ctx context.Context, c metrics.Counter, src metrics.Source, out metrics.Outcome) {
	if m.r == nil {
		return
	}
	defer func() { _ = recover() }()
	m.r.Add(ctx, c, 1, metrics.Labels{Credential: credName, Source: src, Outcome: out})
}

func (m meter) record(ctx context.Context, h metrics.Histogram, v float64, out metrics.Outcome) {
	if m.r == nil {
		return
	}
	defer func() { _ = recover() }()
	m.r.Record(ctx, h, v, metrics.Labels{Credential: credName, Outcome: out})
}

func (m meter) set(ctx context.Context, g metrics.Gauge, v float64) {
	if m.r == nil {
		return
	}
	defer func() { _ = recover() }()
	m.r.Set(ctx, g, v, metrics.Labels{Credential: credName})
}

func outcome(err error) metrics.Outcome {
	if err != nil {
		return metrics.Failure
	}
	return metrics.Success
}

// source is the metrics source of a call served as s.
func source(s tokencache.Source) metrics.Source {
	switch s {
	case tokencache.SourceCache:
		return metrics.SourceMemory
	case tokencache.SourceShared:
		return metrics.SourceShared
	}
	return metrics.SourceEntra
}

// observer returns the tokencache observer of one user's slot: entra.Observer's log records and
// the refresh outcomes for metrics.
func (a *App) observer(logObs func(tokencache.Event)) func(tokencache.Event) {
	if a.meter.r == nil {
		return logObs
	}
	m := a.meter
	return func(ev tokencache.Event) {
		if logObs != nil {
			logObs(ev)
		}
		switch ev.Kind {
		case tokencache.Refreshed:
			m.add(context.Background(), metrics.TokenRefreshes, source(ev.Source), metrics.Success)
		case tokencache.RefreshFailed:
			m.add(context.Background(), metrics.TokenRefreshes, metrics.SourceEntra, metrics.Failure)
		}
	}
}

// spanName is the name of the OBO credential's GetToken spans.
var spanName = entra.SpanName(credName)
