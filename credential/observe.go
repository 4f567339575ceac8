package credential

import (
	"context"
	"crypto/x509"
	"log/slog"
	"math"
	"time"

	"github.com/azcredkit/azcredkit/internal/entra"
	"github.com/azcredkit/azcredkit/internal/tokencache"
	"github.com/azcredkit/azcredkit/metrics"
)

// CertificateExpiryWarning: a certificate that expires within this time when a credential loads
// it (at construction for a certificate file or chain, at each load and rotation from Key Vault
// or Managed HSM) gets a warning in the log, once per load.
const CertificateExpiryWarning = 30 * 24 * time.Hour

// meter sends one credential's measurements to a metrics.Recorder; the zero value (no Recorder)
// sends nothing. A panic in the Recorder is dropped.
type meter struct {
	r    metrics.Recorder
	cred string
}

func (m meter) add(ctx context.Context, c metrics.Counter, src metrics.Source, out metrics.Outcome) {
	if m.r == nil {
		return
	}
	defer func() { _ = recover() }()
	m.r.Add(ctx, c, 1, metrics.Labels{Credential: m.cred, Source: src, Outcome: out})
}

func (m meter) record(ctx context.Context, h metrics.Histogram, v float64, out metrics.Outcome) {
	if m.r == nil {
		return
	}
	defer func() { _ = recover() }()
	m.r.Record(ctx, h, v, metrics.Labels{Credential: m.cred, Outcome: out})
}

func (m meter) set(ctx context.Context, g metrics.Gauge, v float64) {
	if m.r == nil {
		return
	}
	defer func() { _ = recover() }()
	m.r.Set(ctx, g, v, metrics.Labels{Credential: m.cred})
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

// daysLeft is the fractional number of days until c expires.
func daysLeft(c *x509.Certificate, now time.Time) float64 {
	return c.NotAfter.Sub(now).Hours() / 24
}

// certificateLoaded sets the days-to-expiry gauge for c and logs a warning when c expires within
// CertificateExpiryWarning. attrs say which certificate (Key Vault URL and version...).
func (m meter) certificateLoaded(ctx context.Context, logger *slog.Logger, c *x509.Certificate, attrs ...slog.Attr) {
	if c == nil {
		return
	}
	now := time.Now()
	days := daysLeft(c, now)
	m.set(ctx, metrics.CertificateDaysToExpiry, days)
	if c.NotAfter.Sub(now) >= CertificateExpiryWarning || logger == nil {
		return
	}
	defer func() { _ = recover() }()
	a := append([]slog.Attr{slog.String("event", entra.EventCertExpiring)}, attrs...)
	a = append(a, slog.String("subject", c.Subject.String()), slog.Time("not_after", c.NotAfter), slog.Float64("days_left", math.Round(days*10)/10))
	entra.Log(logger, slog.LevelWarn, m.cred, "the certificate expires within 30 days: renew it and register the new certificate on the app (Key Vault can renew it automatically: lifetime action AutoRenew)", a...)
}

// observer returns the tokencache observer of one slot: the log records of entra.Observer and the
// refresh outcomes for metrics.
func (t *tokenClient) observer(tenant, scopes string) func(tokencache.Event) {
	logObs := entra.Observer(t.logger, t.client.Credential(), t.client.ClientID(), tenant, scopes)
	if t.meter.r == nil {
		return logObs
	}
	m := t.meter
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
