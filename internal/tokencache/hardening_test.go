package tokencache

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/internal/panics"
)

// A suspend stops the monotonic clock but not the wall clock. A token fetched while the wall
// clock read two hours earlier than it does now (with no monotonic time in between) is what the
// cache holds after a two-hour sleep right after the fetch: it expired an hour ago.
func TestFreshNowChecksWallClockAfterSuspend(t *testing.T) {
	beforeSleep := time.Now().Add(-2 * time.Hour)
	p := &Policy{Now: func() time.Time { return beforeSleep }, Jitter: func() float64 { return 0 }}
	var s Slot
	tok, err := s.Get(context.Background(), p, func(context.Context) (azcore.AccessToken, error) {
		return azcore.AccessToken{Token: "old", ExpiresOn: beforeSleep.Add(time.Hour)}, nil
	})
	require.NoError(t, err)
	require.Equal(t, "old", tok.Token)

	// After the wake-up: the monotonic clock says 55 minutes of freshness are left; the wall
	// clock says the token expired an hour ago.
	_, ok := s.FreshNow()
	require.False(t, ok, "the hot path must not hand out a token that expired while the machine slept")
	tok, err = s.Get(context.Background(), &Policy{}, func(context.Context) (azcore.AccessToken, error) {
		return azcore.AccessToken{Token: "new", ExpiresOn: time.Now().Add(time.Hour)}, nil
	})
	require.NoError(t, err)
	require.Equal(t, "new", tok.Token)
	tok, ok = s.FreshNow()
	require.True(t, ok)
	require.Equal(t, "new", tok.Token)
}

// The monotonic clock still guards against the wall clock being set back: a token acquired while
// the wall clock was an hour ahead (then corrected) is not fresh for an hour longer than it lives.
func TestFreshNowChecksMonotonicClock(t *testing.T) {
	var s Slot
	// Wall time says 2 hours of life, but on the monotonic clock the token is past its refresh
	// point: simulate it by storing an entry whose monotonic deadline has passed.
	_, err := s.Get(context.Background(), &Policy{}, func(context.Context) (azcore.AccessToken, error) {
		return azcore.AccessToken{Token: "t", ExpiresOn: time.Now().Add(2 * time.Hour)}, nil
	})
	require.NoError(t, err)
	e := *s.cur.Load()
	e.refreshAtMono, e.expireAtMono = Elapsed()-time.Second, Elapsed()-time.Millisecond
	s.cur.Store(&e)
	_, ok := s.FreshNow()
	require.False(t, ok)
	require.False(t, e.usable(time.Now()), "expired on the monotonic clock")
}

// A panic in a fetch must reach every waiter as an error: singleflight would re-panic it on a
// goroutine of its own and kill the process.
func TestSlotPanicInFetchBecomesErrorForEveryWaiter(t *testing.T) {
	gate := make(chan struct{})
	fetch := func(context.Context) (azcore.AccessToken, error) {
		<-gate
		panic("the user's provider exploded: secret-looking text that goes on and on and on and on and on and on and on and on and on and on and on and on")
	}
	var events []Event
	var mu sync.Mutex
	p := &Policy{Observe: func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() }}
	var s Slot
	const callers = 50
	errs := make(chan error, callers)
	for range callers {
		go func() {
			_, err := s.Get(context.Background(), p, fetch)
			errs <- err
		}()
	}
	time.Sleep(50 * time.Millisecond) // let the callers join the flight
	close(gate)
	for range callers {
		err := <-errs
		require.ErrorIs(t, err, panics.ErrPanic)
		var pe *panics.Error
		require.ErrorAs(t, err, &pe)
		require.Equal(t, "string", pe.Type)
		require.LessOrEqual(t, len(pe.Value), 130, "the panic text is clipped")
		require.Contains(t, pe.Error(), "the token fetch panicked")
	}
	mu.Lock()
	require.NotEmpty(t, events)
	require.Equal(t, Failed, events[0].Kind)
	require.ErrorIs(t, events[0].Err, panics.ErrPanic)
	mu.Unlock()

	// Replace runs the fetch on the caller's goroutine: a panic is an error there too.
	_, err := s.Replace(context.Background(), p, func(context.Context) (azcore.AccessToken, error) { panic(errors.New("boom")) })
	require.ErrorIs(t, err, panics.ErrPanic)
}

func TestSlotPanicInBackgroundRefreshKeepsToken(t *testing.T) {
	clk := &clock{t: time.Now()}
	f := &fetcher{clk: clk, life: time.Hour}
	var events []Event
	var mu sync.Mutex
	p := newPolicy(clk, &events, &mu)
	var s Slot
	_, err := s.Get(context.Background(), p, f.fetch)
	require.NoError(t, err)
	clk.Add(56 * time.Minute) // stale
	tok, err := s.Get(context.Background(), p, func(context.Context) (azcore.AccessToken, error) { panic("refresh") })
	require.NoError(t, err)
	require.Equal(t, "t1", tok.Token)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) == 2 && events[1].Kind == RefreshFailed && errors.Is(events[1].Err, panics.ErrPanic)
	}, 5*time.Second, time.Millisecond)
	tok, err = s.Get(context.Background(), p, f.fetch)
	require.NoError(t, err)
	require.Equal(t, "t1", tok.Token, "the valid token is kept")
}

// perCallerErr counts its copies.
type perCallerErr struct {
	copies *sync.Map
}

func (e *perCallerErr) Error() string { return "shared failure" }

func (e *perCallerErr) ForCaller() error {
	c := &perCallerErr{copies: e.copies}
	e.copies.Store(c, true)
	return c
}

func TestSlotSharedErrorIsCopiedForEachWaiter(t *testing.T) {
	gate := make(chan struct{})
	orig := &perCallerErr{copies: &sync.Map{}}
	fetch := func(context.Context) (azcore.AccessToken, error) {
		<-gate
		return azcore.AccessToken{}, orig
	}
	var s Slot
	const callers = 20
	errs := make(chan error, callers)
	for range callers {
		go func() {
			_, err := s.Get(context.Background(), &Policy{}, fetch)
			errs <- err
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(gate)
	seen := map[error]bool{}
	for range callers {
		err := <-errs
		require.Error(t, err)
		require.False(t, seen[err], "each waiter has its own error")
		seen[err] = true
		_, isCopy := orig.copies.Load(err)
		if !isCopy {
			require.Same(t, orig, err, "an error is the original only when nobody shared it")
		}
	}
}

// BenchmarkFreshNow measures the hot path of every cached GetToken: one clock read (wall and
// monotonic) and two comparisons.
func BenchmarkFreshNow(b *testing.B) {
	var s Slot
	_, err := s.Get(context.Background(), &Policy{}, func(context.Context) (azcore.AccessToken, error) {
		return azcore.AccessToken{Token: "t", ExpiresOn: time.Now().Add(time.Hour)}, nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := s.FreshNow(); !ok {
			b.Fatal("not fresh")
		}
	}
}
