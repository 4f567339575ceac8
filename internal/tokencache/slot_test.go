package tokencache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/stretchr/testify/require"
)

// clock is a settable clock for Policy.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fetcher issues tokens "t1", "t2"... valid for life from the clock's now.
type fetcher struct {
	clk   *clock
	life  time.Duration
	n     atomic.Int64
	delay time.Duration
	fail  atomic.Pointer[error]
	gate  chan struct{} // when set, fetches wait for it
}

func (f *fetcher) fetch(ctx context.Context) (azcore.AccessToken, error) {
	n := f.n.Add(1)
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return azcore.AccessToken{}, ctx.Err()
		}
	}
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	if e := f.fail.Load(); e != nil {
		return azcore.AccessToken{}, *e
	}
	return azcore.AccessToken{Token: fmt.Sprintf("t%d", n), ExpiresOn: f.clk.Now().Add(f.life)}, nil
}

func newPolicy(clk *clock, events *[]Event, mu *sync.Mutex) *Policy {
	return &Policy{
		Now:    clk.Now,
		Jitter: func() float64 { return 0 },
		Observe: func(e Event) {
			mu.Lock()
			*events = append(*events, e)
			mu.Unlock()
		},
	}
}

func TestSlotStates(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	f := &fetcher{clk: clk, life: time.Hour}
	var events []Event
	var mu sync.Mutex
	p := newPolicy(clk, &events, &mu)
	var s Slot
	ctx := context.Background()

	_, ok := s.Fresh(clk.Now())
	require.False(t, ok, "empty slot is not fresh")
	tok, err := s.Get(ctx, p, f.fetch)
	require.NoError(t, err)
	require.Equal(t, "t1", tok.Token)

	// Fresh until 5 minutes before expiry (1 h token).
	clk.Add(54 * time.Minute)
	tok, ok = s.Fresh(clk.Now())
	require.True(t, ok)
	require.Equal(t, "t1", tok.Token)

	// Stale: the old token is returned at once and one background refresh starts.
	clk.Add(2 * time.Minute)
	_, ok = s.Fresh(clk.Now())
	require.False(t, ok)
	tok, err = s.Get(ctx, p, f.fetch)
	require.NoError(t, err)
	require.Equal(t, "t1", tok.Token)
	require.Eventually(t, func() bool { tok, ok := s.Fresh(clk.Now()); return ok && tok.Token == "t2" }, 5*time.Second, time.Millisecond)
	require.Equal(t, int64(2), f.n.Load())
	// The background refresh reports Refreshed just after the new token becomes visible.
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(events) == 2 }, 5*time.Second, time.Millisecond)

	// Expired: callers wait for a new token.
	clk.Add(2 * time.Hour)
	tok, err = s.Get(ctx, p, f.fetch)
	require.NoError(t, err)
	require.Equal(t, "t3", tok.Token)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, events, 3)
	require.Equal(t, Acquired, events[0].Kind)
	require.Equal(t, Refreshed, events[1].Kind)
	require.Equal(t, Acquired, events[2].Kind)
}

func TestSlotShortLivedWindows(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	e, err := newEntry(azcore.AccessToken{ExpiresOn: now.Add(2 * time.Second)}, now, 0)
	require.NoError(t, err)
	require.Equal(t, now.Add(time.Second), e.refreshAt, "half the lifetime for short tokens")
	require.Equal(t, now.Add(1800*time.Millisecond), e.expireAt)

	e, err = newEntry(azcore.AccessToken{ExpiresOn: now.Add(time.Hour), RefreshOn: now.Add(20 * time.Minute)}, now, 0)
	require.NoError(t, err)
	require.Equal(t, now.Add(20*time.Minute), e.refreshAt, "refresh_in wins")
	require.Equal(t, now.Add(time.Hour-30*time.Second), e.expireAt)

	e, err = newEntry(azcore.AccessToken{ExpiresOn: now.Add(time.Hour)}, now, 0.99)
	require.NoError(t, err)
	require.True(t, e.refreshAt.Before(now.Add(55*time.Minute)) && e.refreshAt.After(now.Add(54*time.Minute)), "jitter moves refresh earlier by up to 10%% of the window")

	_, err = newEntry(azcore.AccessToken{ExpiresOn: now}, now, 0)
	require.ErrorIs(t, err, ErrExpiredOnArrival)
}

func TestSlotConcurrentColdCallersShareOneFetch(t *testing.T) {
	clk := &clock{t: time.Now()}
	f := &fetcher{clk: clk, life: time.Hour, gate: make(chan struct{})}
	p := &Policy{Now: clk.Now}
	var s Slot
	const callers = 1000
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := s.Get(context.Background(), p, f.fetch)
			if err == nil && tok.Token != "t1" {
				err = fmt.Errorf("got %s", tok.Token)
			}
			errs <- err
		}()
	}
	require.Eventually(t, func() bool { return f.n.Load() == 1 }, 5*time.Second, time.Millisecond)
	time.Sleep(20 * time.Millisecond) // let the others pile up
	close(f.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, int64(1), f.n.Load())
}

func TestSlotStaleRefreshByOneCaller(t *testing.T) {
	clk := &clock{t: time.Now()}
	f := &fetcher{clk: clk, life: time.Hour}
	p := &Policy{Now: clk.Now, Jitter: func() float64 { return 0 }}
	var s Slot
	_, err := s.Get(context.Background(), p, f.fetch)
	require.NoError(t, err)
	clk.Add(56 * time.Minute) // stale
	f.gate = make(chan struct{})
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := s.Get(context.Background(), p, f.fetch)
			require.NoError(t, err)
			require.Equal(t, "t1", tok.Token, "stale callers keep the valid token while one refreshes")
		}()
	}
	wg.Wait()
	close(f.gate)
	require.Eventually(t, func() bool { tok, ok := s.Fresh(clk.Now()); return ok && tok.Token == "t2" }, 5*time.Second, time.Millisecond)
	require.Equal(t, int64(2), f.n.Load())
}

func TestSlotFailedRefreshKeepsTokenAndBacksOff(t *testing.T) {
	clk := &clock{t: time.Now()}
	f := &fetcher{clk: clk, life: time.Hour}
	var events []Event
	var mu sync.Mutex
	p := newPolicy(clk, &events, &mu)
	var s Slot
	_, err := s.Get(context.Background(), p, f.fetch)
	require.NoError(t, err)

	boom := errors.New("entra is down")
	f.fail.Store(&boom)
	clk.Add(56 * time.Minute)
	tok, err := s.Get(context.Background(), p, f.fetch)
	require.NoError(t, err)
	require.Equal(t, "t1", tok.Token)
	require.Eventually(t, func() bool { return !s.refreshing.Load() && f.n.Load() == 2 }, 5*time.Second, time.Millisecond)

	// Within the backoff: no new attempt.
	for range 10 {
		tok, err = s.Get(context.Background(), p, f.fetch)
		require.NoError(t, err)
		require.Equal(t, "t1", tok.Token)
	}
	require.Equal(t, int64(2), f.n.Load())
	mu.Lock()
	last := events[len(events)-1]
	mu.Unlock()
	require.Equal(t, RefreshFailed, last.Kind)
	require.ErrorIs(t, last.Err, boom)
	require.Equal(t, clk.Now().Add(MaxBackoff), last.NextTry)

	// After the backoff, the refresh is tried again and succeeds.
	f.fail.Store(nil)
	clk.Add(MaxBackoff)
	_, err = s.Get(context.Background(), p, f.fetch)
	require.NoError(t, err)
	require.Eventually(t, func() bool { tok, ok := s.Fresh(clk.Now()); return ok && tok.Token == "t3" }, 5*time.Second, time.Millisecond)
}

func TestSlotExpiredFetchErrorsAreNotCached(t *testing.T) {
	clk := &clock{t: time.Now()}
	f := &fetcher{clk: clk, life: time.Hour}
	boom := errors.New("nope")
	f.fail.Store(&boom)
	p := &Policy{Now: clk.Now}
	var s Slot
	for range 3 {
		_, err := s.Get(context.Background(), p, f.fetch)
		require.ErrorIs(t, err, boom)
	}
	require.Equal(t, int64(3), f.n.Load())
}

func TestSlotCallerDeadlineDoesNotCancelSharedFetch(t *testing.T) {
	clk := &clock{t: time.Now()}
	f := &fetcher{clk: clk, life: time.Hour, gate: make(chan struct{})}
	p := &Policy{Now: clk.Now}
	var s Slot
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := s.Get(ctx, p, f.fetch)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	close(f.gate)
	require.Eventually(t, func() bool { _, ok := s.Fresh(clk.Now()); return ok }, 5*time.Second, time.Millisecond,
		"the fetch finished for the next caller although the first gave up")

	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	var empty Slot
	_, err = empty.Get(cancelled, p, f.fetch)
	require.ErrorIs(t, err, context.Canceled)
}

func TestSlotReplaceBypasses(t *testing.T) {
	clk := &clock{t: time.Now()}
	f := &fetcher{clk: clk, life: time.Hour}
	p := &Policy{Now: clk.Now}
	var s Slot
	_, err := s.Get(context.Background(), p, f.fetch)
	require.NoError(t, err)
	tok, err := s.Replace(context.Background(), p, f.fetch)
	require.NoError(t, err)
	require.Equal(t, "t2", tok.Token)
	tok, ok := s.Fresh(clk.Now())
	require.True(t, ok)
	require.Equal(t, "t2", tok.Token)
}

func TestFreshDoesNotAllocate(t *testing.T) {
	clk := &clock{t: time.Now()}
	f := &fetcher{clk: clk, life: time.Hour}
	var m Map
	s := m.Slot(Key{Tenant: "t", Scopes: "s"})
	_, err := s.Get(context.Background(), &Policy{Now: clk.Now}, f.fetch)
	require.NoError(t, err)
	key := Key{Tenant: "t", Scopes: "s"}
	now := clk.Now()
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok := m.Lookup(key).Fresh(now); !ok {
			panic("not fresh")
		}
	})
	require.Zero(t, allocs)
}

func TestMapBounded(t *testing.T) {
	var m Map
	a := m.Slot(Key{Tenant: "a"})
	require.Same(t, a, m.Slot(Key{Tenant: "a"}))
	require.Nil(t, m.Lookup(Key{Tenant: "b"}))
	for i := range MaxKeys + 10 {
		m.Slot(Key{Tenant: fmt.Sprint(i)})
	}
	require.LessOrEqual(t, m.Len(), MaxKeys)
	m.Clear()
	require.Zero(t, m.Len())
}
