package credential

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/internal/entra"
	"github.com/azcredkit/azcredkit/internal/metering"
	"github.com/azcredkit/azcredkit/internal/panics"
	"github.com/azcredkit/azcredkit/keyvault"
	"github.com/azcredkit/azcredkit/metrics"
)

// DefaultRotationCheckInterval is how often an unpinned Key Vault certificate is checked for a
// new version (one Key Vault read per period, made only while tokens are being requested).
const DefaultRotationCheckInterval = time.Hour

// loadTimeout bounds a shared certificate load that no caller can cancel (it goes on for the
// others when one gives up): the Key Vault requests with the pipeline's retries and the parse
// (whose work keyvault.ParseCertificate bounds itself). A vault that does not answer in this time
// fails the load, and the next caller tries again.
const loadTimeout = 30 * time.Second

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
// request), reloads at once when Entra rejects the certificate (assertion.RejectionHandler, for
// the credential's own requests and for any other consumer such as an OBO App), and keeps the
// loaded certificate when the vault cannot be reached.
type rotatingProvider struct {
	name     string
	url      keyvault.ObjectURL
	interval time.Duration
	logger   *slog.Logger
	meter    metering.Meter
	// read reads the certificate from the vault and builds its builder; reuse is the version in
	// use, whose builder read may return when the version did not change.
	read func(ctx context.Context, current *loaded) (*loaded, error)

	state      atomic.Pointer[loaded]
	nextCheck  atomic.Int64 // unix nanoseconds
	refreshing atomic.Bool
	flight     singleflight.Group

	// lastReject is the last vault read made because Entra rejected the certificate: rejections
	// within minReloadAfterRejection of it wait for it instead of reading again.
	rejectMu   sync.Mutex
	lastReject *rejectReload
}

// rejectReload is one vault read after a rejection; done is closed when it has ended.
type rejectReload struct {
	at   int64 // unix nanoseconds (wall clock: the interval goes on while the machine sleeps)
	done chan struct{}
	err  error
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
	ch := p.flight.DoChan("", func() (v any, err error) {
		defer func() {
			if v := recover(); v != nil {
				pe := panics.New("loading the certificate "+p.url.String(), v)
				entra.Log(p.logger, slog.LevelError, p.name, "loading the certificate from Key Vault panicked",
					slog.String("certificate", p.url.String()), slog.String("error", pe.Error()), slog.String("panic_stack", string(pe.Stack)))
				err = pe
			}
		}()
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
		defer cancel()
		old := p.state.Load()
		next, err := p.read(lctx, old)
		p.meter.Add(lctx, metrics.KeyVaultReads, "", metering.Outcome(err))
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
			slog.String("thumbprint", next.thumbprint)}
		if old == nil {
			entra.Log(p.logger, slog.LevelInfo, p.name, "certificate loaded from Key Vault",
				append([]slog.Attr{slog.String(entra.AttrEvent, entra.EventCertLoaded)}, append(attrs, slog.Time("not_after", next.notAfter))...)...)
		} else {
			p.meter.Add(lctx, metrics.CertificateRotations, "", "")
			entra.Log(p.logger, slog.LevelInfo, p.name, "certificate rotated: new version in use",
				append([]slog.Attr{slog.String(entra.AttrEvent, entra.EventCertRotated)}, append(attrs, slog.Time("not_after", next.notAfter), slog.String("previous_version", old.version))...)...)
		}
		certificateLoaded(lctx, p.meter, p.logger, next.builder.Certificate(), attrs...)
		return next, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			if pc, ok := r.Err.(interface{ ForCaller() error }); ok && r.Shared {
				return nil, pc.ForCaller() // each waiter its own copy (*keyvault.Error)
			}
			return nil, r.Err
		}
		return r.Val.(*loaded), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Certificate returns the certificate in use (nil before the first load), for the
// days-to-expiry gauge.
func (p *rotatingProvider) Certificate() *x509.Certificate {
	if st := p.state.Load(); st != nil {
		return st.builder.Certificate()
	}
	return nil
}

// AssertionRejected implements assertion.RejectionHandler: Entra rejected assertion because of
// its certificate. When the assertion was signed with an older version than the one in use (a
// rotation that another request already picked up), the request may be retried at once, without
// reading the vault. When it was signed with the version in use, the vault is read (at once, then
// at most once per minReloadAfterRejection; concurrent rejections share that read) and the
// request is retried when the vault now holds another certificate. A pinned version never changes.
func (p *rotatingProvider) AssertionRejected(ctx context.Context, assertion string, _ error) (bool, error) {
	cur := p.state.Load()
	if cur == nil {
		return false, nil
	}
	if !cur.builder.Owns(assertion) {
		return true, nil
	}
	if p.url.Pinned() {
		return false, nil
	}
	if err := p.reloadAfterRejection(ctx); err != nil {
		return false, err
	}
	return !p.state.Load().builder.Owns(assertion), nil
}

// reloadAfterRejection reads the vault for the latest version, or waits for such a read that
// started less than minReloadAfterRejection ago.
func (p *rotatingProvider) reloadAfterRejection(ctx context.Context) error {
	now := time.Now().UnixNano()
	p.rejectMu.Lock()
	r := p.lastReject
	if r == nil || now-r.at >= int64(minReloadAfterRejection) {
		r = &rejectReload{at: now, done: make(chan struct{})}
		p.lastReject = r
		p.rejectMu.Unlock()
		_, r.err = p.load(ctx)
		close(r.done)
		return r.err
	}
	p.rejectMu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
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
