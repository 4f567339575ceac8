package credential

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/internal/entra"
	"github.com/azcredkit/azcredkit/keyvault"
)

// DefaultRotationCheckInterval is how often an unpinned Key Vault certificate is checked for a
// new version (one Key Vault read per period, made only while tokens are being requested).
const DefaultRotationCheckInterval = time.Hour

// minReloadAfterRejection keeps a certificate that Entra keeps rejecting (one never registered
// on the app, say) from turning every token request into a Key Vault read: after a rejection the
// vault is read at once, then at most once per this interval.
const minReloadAfterRejection = 10 * time.Second

// loaded is one version of a Key Vault certificate with the builder that signs for it.
type loaded struct {
	version    string
	thumbprint string
	notAfter   time.Time
	builder    *assertion.Builder
}

// rotatingProvider is the assertion.Provider of the Key Vault credentials: it loads the
// certificate lazily (one load for all concurrent callers), re-reads an unpinned certificate in
// the background once per interval (only when assertions are needed, so no goroutine outlives a
// request), reloads at once when Entra rejects the certificate, and keeps the loaded certificate
// when the vault cannot be reached.
type rotatingProvider struct {
	name     string
	url      keyvault.ObjectURL
	interval time.Duration
	logger   *slog.Logger
	// read reads the certificate from the vault and builds its builder; reuse is the version in
	// use, whose builder read may return when the version did not change.
	read func(ctx context.Context, current *loaded) (*loaded, error)

	state     atomic.Pointer[loaded]
	nextCheck atomic.Int64 // unix nanoseconds
	// lastRejectReload is when the vault was last read because Entra rejected the certificate
	// (unix nanoseconds).
	lastRejectReload atomic.Int64
	refreshing       atomic.Bool
	flight           singleflight.Group
}

// Assertion implements assertion.Provider.
func (p *rotatingProvider) Assertion(ctx context.Context, audience string) (string, error) {
	st, err := p.current(ctx)
	if err != nil {
		return "", err
	}
	return st.builder.Assertion(ctx, audience)
}

func (p *rotatingProvider) current(ctx context.Context) (*loaded, error) {
	st := p.state.Load()
	if st == nil {
		return p.load(ctx)
	}
	if !p.url.Pinned() && p.interval > 0 && time.Now().UnixNano() >= p.nextCheck.Load() && p.refreshing.CompareAndSwap(false, true) {
		go func() {
			defer p.refreshing.Store(false)
			bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			_, _ = p.load(bctx)
		}()
	}
	return st, nil
}

// load reads the vault once for all concurrent callers. On failure with a certificate already
// loaded, it keeps that one (and logs a warning); the error is returned either way.
func (p *rotatingProvider) load(ctx context.Context) (*loaded, error) {
	ch := p.flight.DoChan("", func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		old := p.state.Load()
		next, err := p.read(lctx, old)
		now := time.Now()
		if err != nil {
			if old != nil {
				p.nextCheck.Store(now.Add(min(p.interval, 5*time.Minute)).UnixNano())
				entra.Log(p.logger, slog.LevelWarn, p.name, "could not read the certificate from Key Vault; still using the loaded version",
					slog.String("certificate", p.url.String()), slog.String("version", old.version), slog.String("error", err.Error()))
			}
			return nil, err
		}
		p.nextCheck.Store(now.Add(p.interval).UnixNano())
		if old != nil && old.version == next.version {
			return old, nil
		}
		p.state.Store(next)
		attrs := []slog.Attr{slog.String("certificate", p.url.String()), slog.String("version", next.version),
			slog.String("thumbprint", next.thumbprint), slog.Time("not_after", next.notAfter)}
		if old == nil {
			entra.Log(p.logger, slog.LevelInfo, p.name, "certificate loaded from Key Vault", attrs...)
		} else {
			entra.Log(p.logger, slog.LevelInfo, p.name, "certificate rotated: new version in use", append(attrs, slog.String("previous_version", old.version))...)
		}
		return next, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*loaded), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// reloadAfterRejection is the tokenClient's reload hook: after Entra rejected the certificate,
// read the latest version at once and report whether it differs.
func (p *rotatingProvider) reloadAfterRejection(ctx context.Context) (bool, error) {
	old := p.state.Load()
	if p.url.Pinned() || old == nil {
		return false, nil
	}
	now := time.Now().UnixNano()
	last := p.lastRejectReload.Load()
	if now-last < int64(minReloadAfterRejection) || !p.lastRejectReload.CompareAndSwap(last, now) {
		return false, nil
	}
	next, err := p.load(ctx)
	if err != nil {
		return false, err
	}
	return next.version != old.version, nil
}

// newLoaded builds the state for one certificate version.
func newLoaded(version string, b *assertion.Builder) *loaded {
	c := b.Certificate()
	return &loaded{version: version, thumbprint: assertion.Thumbprint(c), notAfter: c.NotAfter, builder: b}
}

func rotationInterval(d time.Duration) time.Duration {
	if d == 0 {
		return DefaultRotationCheckInterval
	}
	return d // negative: never
}

// checkLifetime validates the assertion lifetime when the constructor cannot build the builder yet.
func checkLifetime(o *assertion.BuilderOptions) error {
	if l := o.Lifetime; l != 0 && (l < assertion.MinLifetime || l > assertion.MaxLifetime) {
		return fmt.Errorf("%w: AssertionLifetime %v is outside %v..%v", assertion.ErrInvalidOptions, l, assertion.MinLifetime, assertion.MaxLifetime)
	}
	return nil
}
