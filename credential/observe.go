package credential

import (
	"context"
	"crypto/x509"
	"log/slog"
	"math"
	"time"

	"github.com/azcredkit/azcredkit/internal/entra"
	"github.com/azcredkit/azcredkit/internal/metering"
	"github.com/azcredkit/azcredkit/internal/tokencache"
	"github.com/azcredkit/azcredkit/metrics"
)

// CertificateExpiryWarning: a certificate that expires within this time when a credential loads
// it (at construction for a certificate file or chain, at each load and rotation from Key Vault
// or Managed HSM) gets a warning in the log, once per load.
const CertificateExpiryWarning = 30 * 24 * time.Hour

// daysLeft is the fractional number of days until c expires.
func daysLeft(c *x509.Certificate, now time.Time) float64 {
	return c.NotAfter.Sub(now).Hours() / 24
}

// certificateLoaded sets the days-to-expiry gauge for c and logs a warning when c expires within
// CertificateExpiryWarning. attrs say which certificate (Key Vault URL and version...).
func certificateLoaded(ctx context.Context, m metering.Meter, logger *slog.Logger, c *x509.Certificate, attrs ...slog.Attr) {
	if c == nil {
		return
	}
	now := time.Now()
	days := daysLeft(c, now)
	m.Set(ctx, metrics.CertificateDaysToExpiry, days)
	if c.NotAfter.Sub(now) >= CertificateExpiryWarning || logger == nil {
		return
	}
	defer func() { _ = recover() }()
	a := append([]slog.Attr{slog.String("event", entra.EventCertExpiring)}, attrs...)
	a = append(a, slog.String("subject", c.Subject.String()), slog.Time("not_after", c.NotAfter), slog.Float64("days_left", math.Round(days*10)/10))
	entra.Log(logger, slog.LevelWarn, m.Credential, "the certificate expires within 30 days: renew it and register the new certificate on the app (Key Vault can renew it automatically: lifetime action AutoRenew)", a...)
}

// observer returns the tokencache observer of one slot: the log records of entra.Observer and the
// refresh outcomes for metrics.
func (t *tokenClient) observer(tenant, scopes string) func(tokencache.Event) {
	return t.meter.Observer(entra.Observer(t.logger, t.client.Credential(), t.client.ClientID(), tenant, scopes))
}
