// Package tokencache is the token cache in front of every credential of azcredkit: one Slot per
// token (tenant + scopes + CAE for an app; user + tenant + scopes for On-Behalf-Of).
//
// A Slot is in one of three states, as in cloud.google.com/go/auth:
//
//   - fresh: the token is returned at once (an atomic load: no lock, no allocation);
//   - stale: the token is still valid but due for refresh: it is returned at once and one
//     caller starts a background refresh (under a context detached from the caller's);
//   - expired (or empty): callers wait for one shared fetch (singleflight), each until its own
//     context ends; the fetch goes on for the others.
//
// A failed background refresh keeps the token and retries after a backoff. Errors are never
// cached: an expired slot fetches again on the next call.
//
// Freshness and expiry are judged on both clocks: the monotonic clock (immune to the wall clock
// being set back) and the wall clock (the monotonic clock stops while a laptop sleeps or a VM is
// suspended, the wall clock does not, and token expiry is wall time). A token is fresh only while
// both say so.
//
// A panic in a fetch becomes an error (wrapping panics.ErrPanic) for every caller waiting on it:
// singleflight would re-panic it where nothing can recover it.
package tokencache

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"golang.org/x/sync/singleflight"

	"github.com/azcredkit/azcredkit/internal/panics"
)

// Refresh and expiry windows.
const (
	// MaxRefreshWindow: a token without refresh_in is refreshed when 5 minutes remain, or when
	// half of its lifetime remains if that is shorter (short-lived tokens).
	MaxRefreshWindow = 5 * time.Minute
	// MaxExpiryMargin: a token is not handed out when less than this (or a tenth of its
	// lifetime, if shorter) remains, so that it does not expire in flight.
	MaxExpiryMargin = 30 * time.Second
	// MaxBackoff after a failed background refresh (temporal.Resource's figure; Entra tokens
	// live about an hour). Shorter tokens back off a quarter of their remaining validity.
	MaxBackoff = 30 * time.Second
	minBackoff = 50 * time.Millisecond
	// FetchTimeout bounds a shared fetch that no caller waits for any more.
	FetchTimeout = 2 * time.Minute
)

// ErrExpiredOnArrival is returned when the service answers with a token that is already expired.
var ErrExpiredOnArrival = errors.New("the token service returned a token that is already expired (check expires_in and the clock)")

// Fetch acquires a new token from the service.
type Fetch func(ctx context.Context) (azcore.AccessToken, error)

// PerCaller is implemented by errors that hold state a reader changes, such as an *http.Response
// whose Body is read (azidentity's AuthenticationFailedError.Error reads it). When a fetch shared
// by several callers fails with such an error, each caller receives its own ForCaller copy, so
// that no two goroutines share it.
type PerCaller interface {
	ForCaller() error
}

// forCaller returns err, or its own copy of it when it was shared with other callers.
func forCaller(err error, shared bool) error {
	if c, ok := err.(PerCaller); ok && shared {
		return c.ForCaller()
	}
	return err
}

// EventKind says what happened to a Slot.
type EventKind int

// The events reported to Policy.Observe.
const (
	Acquired      EventKind = iota // a token was fetched for an empty or expired slot
	Refreshed                      // a stale token was replaced in the background
	Failed                         // a fetch failed and no valid token was left
	RefreshFailed                  // a background refresh failed; the valid token is kept
)

// Event describes a fetch for Policy.Observe. It never holds the token itself.
type Event struct {
	Kind EventKind
	// Source is where the fetched token came from (Acquired, Refreshed): SourceService, or
	// SourceShared when the fetch found it in a shared cache (MarkShared).
	Source    Source
	ExpiresOn time.Time // the token's expiry (Acquired, Refreshed, RefreshFailed: the kept token's)
	RefreshAt time.Time // when the token becomes stale (Acquired, Refreshed)
	NextTry   time.Time // RefreshFailed: when the refresh is tried again
	Err       error     // Failed, RefreshFailed
}

// Source says where a token came from.
type Source uint8

// The sources of a token.
const (
	// SourceNone: no token (the call failed).
	SourceNone Source = iota
	// SourceCache: the Slot's own token.
	SourceCache
	// SourceShared: a fetch that found the token in a shared cache (it called MarkShared).
	SourceShared
	// SourceService: a fetch from the token service.
	SourceService
)

// Reason says why a call fetched a token, or started a background refresh.
type Reason uint8

// The reasons for a fetch.
const (
	// ReasonNone: no fetch was needed (a fresh token).
	ReasonNone Reason = iota
	// ReasonEmpty: the Slot had no token.
	ReasonEmpty
	// ReasonExpired: the Slot's token was expired (or about to: within its expiry margin).
	ReasonExpired
	// ReasonStale: the token was due for refresh (its refresh_in, or its refresh window): this
	// call returned it and started the background refresh.
	ReasonStale
	// ReasonClaims: a claims challenge (Replace).
	ReasonClaims
)

// Served says how one call was answered: for traces and metrics.
type Served struct {
	Source Source
	Reason Reason
}

// originKey is the context key of the *origin of one fetch.
type originKey struct{}

// origin records, for one fetch, whether a shared cache answered it.
type origin struct{ shared atomic.Bool }

func withOrigin(ctx context.Context) (context.Context, *origin) {
	o := &origin{}
	return context.WithValue(ctx, originKey{}, o), o
}

func (o *origin) source() Source {
	if o.shared.Load() {
		return SourceShared
	}
	return SourceService
}

// MarkShared tells the Slot whose fetch runs under ctx that the token it is about to return
// comes from a shared cache, not from the token service (for traces, metrics and logs).
func MarkShared(ctx context.Context) {
	if o, ok := ctx.Value(originKey{}).(*origin); ok {
		o.shared.Store(true)
	}
}

// fetched is the result of a shared fetch: the token and where it came from.
type fetched struct {
	tok azcore.AccessToken
	src Source
}

// Policy holds what Slots share: clock, randomness, and an observer. The zero value is usable.
type Policy struct {
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Jitter returns a number in [0, 1); nil means math/rand/v2.
	Jitter func() float64
	// Observe is told about fetches; nil means nobody listens. It must not block.
	Observe func(Event)
}

func (p *Policy) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Policy) jitter() float64 {
	if p.Jitter != nil {
		return p.Jitter()
	}
	return rand.Float64()
}

// observe tells the observer (a logger, in the end the user's slog handler) about e; a panic there
// is dropped, it must not take a fetch or a background refresh with it.
func (p *Policy) observe(e Event) {
	if p.Observe != nil {
		defer func() { _ = recover() }()
		p.Observe(e)
	}
}

// Slot caches one token. The zero value is an empty slot. A Slot must not be copied.
type Slot struct {
	cur        atomic.Pointer[entry]
	refreshing atomic.Bool
	flight     singleflight.Group
}

type entry struct {
	tok azcore.AccessToken
	// Wall-clock times (no monotonic reading).
	refreshAt time.Time // stale from here
	expireAt  time.Time // not handed out from here
	nextTry   time.Time // no background refresh before this
	// refreshAtWall is refreshAt in Unix nanoseconds, for FreshNow.
	refreshAtWall int64
	// refreshAtMono and expireAtMono are refreshAt and expireAt on the monotonic clock (time since
	// clockBase).
	refreshAtMono, expireAtMono time.Duration
}

// clockBase anchors the monotonic clock of the entries.
var clockBase = time.Now()

// Elapsed reads the monotonic clock: time since clockBase.
func Elapsed() time.Duration { return time.Since(clockBase) }

// FreshNow is Fresh at the current time: the hot path of every GetToken. It reads the clock once
// (time.Now gives the wall and the monotonic clock together) and checks both: the monotonic
// clock stops during a suspend, after which only the wall clock knows that the token is due. It
// takes no lock and allocates nothing.
func (s *Slot) FreshNow() (azcore.AccessToken, bool) {
	if e := s.cur.Load(); e != nil {
		now := time.Now()
		if now.Sub(clockBase) < e.refreshAtMono && now.UnixNano() < e.refreshAtWall {
			return e.tok, true
		}
	}
	return azcore.AccessToken{}, false
}

// Fresh returns the token if it is fresh at now (wall clock). It takes no lock and allocates
// nothing.
func (s *Slot) Fresh(now time.Time) (azcore.AccessToken, bool) {
	if e := s.cur.Load(); e != nil && now.UnixNano() < e.refreshAtWall {
		return e.tok, true
	}
	return azcore.AccessToken{}, false
}

// Current returns the cached token, fresh, stale or expired; false when the slot is empty.
func (s *Slot) Current() (azcore.AccessToken, bool) {
	if e := s.cur.Load(); e != nil {
		return e.tok, true
	}
	return azcore.AccessToken{}, false
}

// Get returns a usable token: the cached one when fresh or stale (starting one background
// refresh when stale), otherwise the result of one fetch shared by all concurrent callers.
// ctx bounds only this caller's wait.
func (s *Slot) Get(ctx context.Context, p *Policy, fetch Fetch) (azcore.AccessToken, error) {
	tok, _, err := s.GetServed(ctx, p, fetch)
	return tok, err
}

// GetServed is Get, and also says how the call was answered: from the Slot (fresh, or stale with
// ReasonStale when this call started the refresh) or by a fetch (ReasonEmpty or ReasonExpired;
// the source the fetch reported, for the callers that shared it too).
func (s *Slot) GetServed(ctx context.Context, p *Policy, fetch Fetch) (azcore.AccessToken, Served, error) {
	now := p.now()
	e := s.cur.Load()
	if e != nil && e.usable(now) {
		served := Served{Source: SourceCache}
		if e.stale(now) && !now.Before(e.nextTry) && s.refreshing.CompareAndSwap(false, true) {
			served.Reason = ReasonStale
			go s.refresh(context.WithoutCancel(ctx), p, fetch)
		}
		return e.tok, served, nil
	}
	reason := ReasonEmpty
	if e != nil {
		reason = ReasonExpired
	}
	if err := ctx.Err(); err != nil {
		return azcore.AccessToken{}, Served{Reason: reason}, err
	}
	ch := s.flight.DoChan("", func() (v any, err error) {
		defer panics.Recover("the token cache", &err)
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), FetchTimeout)
		defer cancel()
		// Another flight may have filled the slot while this one was being set up.
		if e := s.cur.Load(); e != nil && e.usable(p.now()) {
			return fetched{e.tok, SourceCache}, nil
		}
		fctx, o := withOrigin(fctx)
		tok, err := s.fetchAndStore(fctx, p, fetch)
		if err != nil {
			p.observe(Event{Kind: Failed, Err: err})
			return nil, err
		}
		e := s.cur.Load()
		src := o.source()
		p.observe(Event{Kind: Acquired, Source: src, ExpiresOn: tok.ExpiresOn, RefreshAt: e.refreshAt})
		return fetched{tok, src}, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return azcore.AccessToken{}, Served{Reason: reason}, forCaller(r.Err, r.Shared)
		}
		f := r.Val.(fetched)
		return f.tok, Served{Source: f.src, Reason: reason}, nil
	case <-ctx.Done():
		return azcore.AccessToken{}, Served{Reason: reason}, ctx.Err()
	}
}

// usable reports whether the token may be handed out at now (wall clock) and on the monotonic
// clock.
func (e *entry) usable(now time.Time) bool {
	return now.UnixNano() < e.expireAt.UnixNano() && Elapsed() < e.expireAtMono
}

// stale reports whether the token is due for refresh at now (wall clock) or on the monotonic
// clock.
func (e *entry) stale(now time.Time) bool {
	return now.UnixNano() >= e.refreshAtWall || Elapsed() >= e.refreshAtMono
}

// Replace fetches a token unconditionally (for example with a claims challenge) and caches it.
// It does not wait for, or join, other fetches.
func (s *Slot) Replace(ctx context.Context, p *Policy, fetch Fetch) (azcore.AccessToken, error) {
	tok, _, err := s.ReplaceServed(ctx, p, fetch)
	return tok, err
}

// ReplaceServed is Replace, and also says where the token came from (Reason is ReasonClaims).
func (s *Slot) ReplaceServed(ctx context.Context, p *Policy, fetch Fetch) (azcore.AccessToken, Served, error) {
	ctx, o := withOrigin(ctx)
	tok, err := s.fetchAndStore(ctx, p, fetch)
	if err != nil {
		p.observe(Event{Kind: Failed, Err: err})
		return azcore.AccessToken{}, Served{Reason: ReasonClaims}, err
	}
	src := o.source()
	p.observe(Event{Kind: Acquired, Source: src, ExpiresOn: tok.ExpiresOn, RefreshAt: s.cur.Load().refreshAt})
	return tok, Served{Source: src, Reason: ReasonClaims}, nil
}

func (s *Slot) refresh(ctx context.Context, p *Policy, fetch Fetch) {
	defer s.refreshing.Store(false)
	ch := s.flight.DoChan("", func() (v any, err error) {
		defer panics.Recover("the token cache", &err)
		fctx, cancel := context.WithTimeout(ctx, FetchTimeout)
		defer cancel()
		fctx, o := withOrigin(fctx)
		tok, err := s.fetchAndStore(fctx, p, fetch)
		if err != nil {
			return nil, err
		}
		return fetched{tok, o.source()}, nil
	})
	r := <-ch
	if r.Err == nil {
		e := s.cur.Load()
		p.observe(Event{Kind: Refreshed, Source: r.Val.(fetched).src, ExpiresOn: e.tok.ExpiresOn, RefreshAt: e.refreshAt})
		return
	}
	old := s.cur.Load()
	if old == nil {
		p.observe(Event{Kind: Failed, Err: r.Err})
		return
	}
	now := p.now()
	backoff := old.expireAt.Sub(now) / 4
	backoff = min(max(backoff, minBackoff), MaxBackoff)
	backoff -= time.Duration(p.jitter() * 0.2 * float64(backoff))
	next := *old
	next.nextTry = now.Add(backoff)
	s.cur.CompareAndSwap(old, &next)
	p.observe(Event{Kind: RefreshFailed, ExpiresOn: old.tok.ExpiresOn, NextTry: next.nextTry, Err: r.Err})
}

func (s *Slot) fetchAndStore(ctx context.Context, p *Policy, fetch Fetch) (azcore.AccessToken, error) {
	tok, err := safeFetch(ctx, fetch)
	if err != nil {
		return azcore.AccessToken{}, err
	}
	now := p.now()
	e, err := newEntry(tok, now, p.jitter())
	if err != nil {
		return azcore.AccessToken{}, err
	}
	// Elapsed time to the refresh and expiry points, whatever clock now came from.
	mono := Elapsed()
	e.refreshAtMono = mono + e.refreshAt.Sub(now)
	e.expireAtMono = mono + e.expireAt.Sub(now)
	s.cur.Store(e)
	return tok, nil
}

// safeFetch calls fetch, turning a panic into an error.
func safeFetch(ctx context.Context, fetch Fetch) (tok azcore.AccessToken, err error) {
	defer panics.Recover("the token fetch", &err)
	return fetch(ctx)
}

// newEntry computes the windows of tok acquired at now: stale at its refresh_in when the
// service sent one, else when min(5 min, lifetime/2) remain (minus up to 10% jitter, so that
// many processes do not refresh at once); unusable when min(30 s, lifetime/10) remain.
func newEntry(tok azcore.AccessToken, now time.Time, jitter float64) (*entry, error) {
	// Wall-clock times only: a monotonic reading would make Before and Sub ignore the wall clock.
	now = now.Round(0)
	tok.ExpiresOn, tok.RefreshOn = tok.ExpiresOn.Round(0), tok.RefreshOn.Round(0)
	life := tok.ExpiresOn.Sub(now)
	if life <= 0 {
		return nil, ErrExpiredOnArrival
	}
	margin := min(MaxExpiryMargin, life/10)
	expireAt := tok.ExpiresOn.Add(-margin)
	var refreshAt time.Time
	if ro := tok.RefreshOn; !ro.IsZero() && ro.After(now) && ro.Before(expireAt) {
		refreshAt = ro
	} else {
		window := min(MaxRefreshWindow, life/2)
		window += time.Duration(jitter * 0.1 * float64(window))
		refreshAt = tok.ExpiresOn.Add(-window)
	}
	return &entry{tok: tok, refreshAt: refreshAt, expireAt: expireAt, refreshAtWall: refreshAt.UnixNano()}, nil
}
