package rediscache_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/azcredkit/azcredkit/internal/panics"
	"github.com/azcredkit/azcredkit/internal/redisserver"
	"github.com/azcredkit/azcredkit/internal/testguard"
	"github.com/azcredkit/azcredkit/obo/rediscache"
)

// TestCacheGetSetDelete: GET, SET ... PXAT and DEL against a real Redis; absent keys are nil
// without an error.
func TestCacheGetSetDelete(t *testing.T) {
	srv := redisserver.Start(t, nil)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	c := rediscache.New(rdb, &rediscache.Options{KeyPrefix: "app1:"})
	ctx := context.Background()

	if v, err := c.Get(ctx, "k"); v != nil || err != nil {
		t.Fatalf("absent key: %v, %v; want nil, nil", v, err)
	}
	if err := c.Delete(ctx, "k"); err != nil {
		t.Fatalf("deleting an absent key: %v", err)
	}
	value := []byte{0, 1, 2, 0xff, '\r', '\n'} // binary values survive
	exp := time.Now().Add(90 * time.Second).Add(123 * time.Millisecond)
	if err := c.Set(ctx, "k", value, exp); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "k"); err != nil || !bytes.Equal(v, value) {
		t.Fatalf("Get = %x, %v", v, err)
	}
	// The key carries the prefix and expires at expiresAt, to the millisecond.
	if n, err := rdb.Exists(ctx, "app1:k").Result(); err != nil || n != 1 {
		t.Fatalf("no key app1:k (%v)", err)
	}
	at, err := rdb.Do(ctx, "PEXPIRETIME", "app1:k").Int64()
	if err != nil {
		t.Fatal(err)
	}
	if at != exp.UnixMilli() {
		t.Fatalf("the key expires at %d, want %d (PXAT in milliseconds)", at, exp.UnixMilli())
	}
	if err := c.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "k"); v != nil || err != nil {
		t.Fatalf("after Delete: %v, %v", v, err)
	}

	// An entry is gone when it expires; one already expired is not stored.
	if err := c.Set(ctx, "short", value, time.Now().Add(150*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if v, err := c.Get(ctx, "short"); v != nil || err != nil {
		t.Fatalf("an expired entry: %x, %v", v, err)
	}
	if err := c.Set(ctx, "past", value, time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.Exists(ctx, "app1:past").Result(); n != 0 {
		t.Fatal("an entry expired on arrival was stored")
	}
}

// TestCacheBoundsEveryCall: against a frozen Redis, with a client that would wait forever
// (no read timeout, ContextTimeoutEnabled off), every call returns an error at the Cache's
// timeout; the calls' goroutines end once Redis answers again.
func TestCacheBoundsEveryCall(t *testing.T) {
	srv := redisserver.Start(t, nil)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: -1, WriteTimeout: -1, PoolTimeout: time.Hour, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		timeout, bound time.Duration
	}{
		{200 * time.Millisecond, 2 * time.Second},
		{0, 3 * time.Second}, // the default, 1 s
	} {
		c := rediscache.New(rdb, &rediscache.Options{Timeout: tc.timeout})
		if err := srv.Pause(); err != nil {
			t.Fatal(err)
		}
		calls := map[string]func() error{
			"Get":    func() error { _, err := c.Get(ctx, "k"); return err },
			"Set":    func() error { return c.Set(ctx, "k", []byte("v"), time.Now().Add(time.Minute)) },
			"Delete": func() error { return c.Delete(ctx, "k") },
		}
		for name, call := range calls {
			start := time.Now()
			var err error
			testguard.Within(t, 2*tc.bound, name, func() { err = call() })
			d := time.Since(start)
			t.Logf("%s against a frozen Redis (timeout %v): %v after %v", name, tc.timeout, err, d.Round(time.Millisecond))
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s: %v, want a deadline error", name, err)
			}
			if d > tc.bound {
				t.Errorf("%s took %v", name, d)
			}
		}
		if err := srv.Resume(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rediscache.New(rdb, nil).Get(ctx, "k"); err != nil {
		t.Fatalf("after Resume: %v", err)
	}
}

// hangingClient is a client whose GET never returns until released.
type hangingClient struct {
	redis.UniversalClient
	release chan struct{}
}

func (h hangingClient) GetRange(ctx context.Context, key string, start, end int64) *redis.StringCmd {
	<-h.release
	return redis.NewStringResult("", nil)
}

// TestCacheBoundsItsGoroutines: calls that outlive their deadline hold at most a fixed number of
// goroutines; beyond it, calls fail at once with ErrBusy instead of piling up.
func TestCacheBoundsItsGoroutines(t *testing.T) {
	h := hangingClient{release: make(chan struct{})}
	c := rediscache.New(h, &rediscache.Options{Timeout: 5 * time.Millisecond})
	busy := 0
	testguard.Within(t, 30*time.Second, "400 calls to a hung client", func() {
		for range 400 {
			if _, err := c.Get(context.Background(), "k"); errors.Is(err, rediscache.ErrBusy) {
				busy++
			}
		}
	})
	if busy != 400-256 {
		t.Errorf("%d calls refused as busy, want %d", busy, 400-256)
	}
	close(h.release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := c.Get(context.Background(), "k"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the Cache stayed busy after the client answered")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCacheHonoursTheCallersContext: a caller's earlier deadline wins.
func TestCacheHonoursTheCallersContext(t *testing.T) {
	h := hangingClient{release: make(chan struct{})}
	defer close(h.release)
	c := rediscache.New(h, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	var err error
	testguard.Within(t, 5*time.Second, "Get", func() { _, err = c.Get(ctx, "k") })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("returned after %v", d)
	}
}

// instantClient answers every GET at once.
type instantClient struct{ redis.UniversalClient }

func (instantClient) GetRange(ctx context.Context, key string, start, end int64) *redis.StringCmd {
	return redis.NewStringResult("value", nil)
}

// TestCacheAnswerNeverLost: an answer that arrives is returned, never mistaken for a timeout
// (the call's goroutine ending and the deadline may be seen together).
func TestCacheAnswerNeverLost(t *testing.T) {
	c := rediscache.New(instantClient{}, nil)
	failed := 0
	for range 5000 {
		if v, err := c.Get(context.Background(), "k"); err != nil || string(v) != "value" {
			failed++
		}
	}
	if failed > 0 {
		t.Fatalf("%d of 5000 answered calls failed", failed)
	}
}

// panickingClient panics in GET (a bug in a hook, say).
type panickingClient struct{ redis.UniversalClient }

func (panickingClient) GetRange(context.Context, string, int64, int64) *redis.StringCmd {
	panic("a bug in the client")
}

// TestCacheClientPanicIsAnError: a panic in the client, or no client at all, is an error of the
// call, never the end of the process.
func TestCacheClientPanicIsAnError(t *testing.T) {
	if _, err := rediscache.New(panickingClient{}, nil).Get(context.Background(), "k"); !errors.Is(err, panics.ErrPanic) {
		t.Fatalf("got %v, want an error wrapping panics.ErrPanic", err)
	}
	if err := rediscache.New(nil, nil).Delete(context.Background(), "k"); err == nil || !strings.Contains(err.Error(), "no Redis client") {
		t.Fatalf("nil client: %v", err)
	}
}
