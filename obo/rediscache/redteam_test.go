package rediscache_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/azcredkit/azcredkit/internal/redisserver"
	"github.com/azcredkit/azcredkit/obo"
	"github.com/azcredkit/azcredkit/obo/rediscache"
)

// Red-team tests against a real redis-server: an outsider with read or write access to the
// database (a leaked password, a Redis shared with other apps) but none of SharedCacheKeys. The
// same attacks against an in-memory store are in obo/sharedcache_redteam_test.go.

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a slog handler.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// onlyKey returns the one key in Redis.
func (f *fleet) onlyKey(t testing.TB, rdb *redis.Client) string {
	t.Helper()
	keys := f.scan(t, rdb)
	if len(keys) != 1 {
		t.Fatalf("%d keys in Redis, want 1", len(keys))
	}
	return keys[0]
}

// TestRedTeamRedisHugeValue: an attacker with write access stores a huge string (Redis takes up
// to 512 MB) under a name. GET would read all of it into the instance's memory on every lookup
// of that name, by as many lookups as run at once (an instance out of memory is an instance
// down), although no entry is longer than 64 KiB. The Cache reads no more than an entry can be,
// and an App treats the value as a miss.
func TestRedTeamRedisHugeValue(t *testing.T) {
	f := newFleet(t)
	rdb := f.client(t)
	ctx := context.Background()
	huge := bytes.Repeat([]byte{'x'}, 32<<20)
	if err := rdb.Set(ctx, "huge", huge, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	huge = nil
	c := rediscache.New(rdb, nil)
	if _, err := c.Get(ctx, "absent"); err != nil { // a connection in the pool
		t.Fatal(err)
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	v, err := c.Get(ctx, "huge")
	runtime.ReadMemStats(&ms)
	alloc := ms.TotalAlloc - before
	t.Logf("Get of a 32 MiB value: %d bytes, %v; %d bytes allocated", len(v), err, alloc)
	if len(v) > 64<<10+1 {
		t.Errorf("Get returned %d bytes; no entry is longer than 64 KiB", len(v))
	}
	if alloc > 4<<20 {
		t.Errorf("Get of a 32 MiB value allocated %d bytes", alloc)
	}

	// Through the App: the user's name holds a huge value; GetToken works (one exchange) and the
	// exchanged token replaces the value, so the next instance reads it.
	writer := f.app(t, nil, nil)
	u := f.user(1)
	mustToken(t, writer, u)
	flush(t, writer)
	if err := rdb.Del(ctx, "huge").Err(); err != nil {
		t.Fatal(err)
	}
	name := f.onlyKey(t, rdb)
	if err := rdb.Set(ctx, name, bytes.Repeat([]byte{'x'}, 8<<20), time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	reader := f.app(t, nil, nil)
	before2 := f.exchanges()
	tok := mustToken(t, reader, u)
	if n := f.exchanges() - before2; n != 1 {
		t.Fatalf("%d exchanges, want 1", n)
	}
	flush(t, reader)
	if got := mustToken(t, f.app(t, nil, nil), u); got.Token != tok.Token || f.exchanges()-before2 != 1 {
		t.Fatal("the huge value was not replaced by the exchanged token")
	}
}

// TestRedTeamRedisWrongType: an attacker stores a hash under a user's name (GET answers
// WRONGTYPE): GetToken works with one exchange, and the token written afterwards replaces the
// hash (SET replaces a key of any type), so the next instance is served from Redis.
func TestRedTeamRedisWrongType(t *testing.T) {
	f := newFleet(t)
	rdb := f.client(t)
	ctx := context.Background()
	writer := f.app(t, nil, nil)
	u := f.user(1)
	mustToken(t, writer, u)
	flush(t, writer)
	name := f.onlyKey(t, rdb)
	if err := rdb.Del(ctx, name).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, name, "token", "forged").Err(); err != nil {
		t.Fatal(err)
	}
	reader := f.app(t, nil, nil)
	before := f.exchanges()
	tok := mustToken(t, reader, u)
	if n := f.exchanges() - before; n != 1 {
		t.Fatalf("%d exchanges, want 1", n)
	}
	flush(t, reader)
	if typ, _ := rdb.Type(ctx, name).Result(); typ != "string" {
		t.Fatalf("the key is a %s after the write, want a string", typ)
	}
	if got := mustToken(t, f.app(t, nil, nil), u); got.Token != tok.Token || f.exchanges()-before != 1 {
		t.Fatal("the next instance was not served from Redis")
	}
}

// TestRedTeamRedisErrorsInLogs: a Redis that refuses a command echoes its arguments in the error
// ("ERR unknown command 'SET', with args beginning with: 'key' 'value'"); the App's warnings hold
// neither the entry name nor a token.
func TestRedTeamRedisErrorsInLogs(t *testing.T) {
	f := newFleet(t)
	srv := redisserver.Start(t, &redisserver.Options{Args: []string{"--rename-command", "SET", ""}})
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	var logs syncBuffer
	a := f.app(t, nil, func(o *obo.AppOptions) {
		o.SharedCache = rediscache.New(rdb, &rediscache.Options{KeyPrefix: "myapp:"})
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	u := f.user(1)
	tok := mustToken(t, a, u)
	flush(t, a)
	out := logs.String()
	if !strings.Contains(out, "unknown command") {
		t.Fatalf("the refused write was not logged: %s", out)
	}
	for what, s := range map[string]string{"user token": u.token, "token": tok.Token, "entry name": "myapp:azcredkit:obo:v1:"} {
		if strings.Contains(out, s) {
			t.Errorf("the log holds the %s: %s", what, out)
		}
	}
}

// slowDialer dials Redis after delay, honouring ctx as a net.Dialer does: the first connection
// of a remote Redis (TCP, TLS, and with Entra authentication a token for Redis).
func slowDialer(delay time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

// TestRedTeamRedisColdConnection: a new instance (a rolling restart) whose first connection to
// Redis takes longer than the lookup budget (150 ms against 75 ms) gets its first burst of
// requests: the entries are in Redis. The first lookups miss (the budget is the budget), but
// the connection must still be made, so that the instance is served from Redis afterwards,
// rather than every lookup giving up its own dial and the breaker keeping Redis out.
func TestRedTeamRedisColdConnection(t *testing.T) {
	f := newFleet(t)
	warm := f.app(t, nil, nil)
	const users = 40
	us := make([]user, users)
	for i := range us {
		us[i] = f.user(i)
		mustToken(t, warm, us[i])
	}
	flush(t, warm)
	before := f.exchanges()

	rdb := redis.NewClient(&redis.Options{Addr: f.redis.Addr(), Dialer: slowDialer(150 * time.Millisecond)})
	t.Cleanup(func() { _ = rdb.Close() })
	cold := f.app(t, nil, func(o *obo.AppOptions) { o.SharedCache = rediscache.New(rdb, nil) })
	// The first burst: 8 requests at once.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { mustToken(t, cold, us[i]) })
	}
	wg.Wait()
	burst := f.exchanges() - before
	// Then one request at a time, as traffic goes on.
	// go-redis goes on dialing for a caller that gave up, and pools the connection.
	for deadline := time.Now().Add(5 * time.Second); rdb.PoolStats().IdleConns == 0; {
		if time.Now().After(deadline) {
			t.Fatal("go-redis made no connection")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	for i := 8; i < users; i++ {
		mustToken(t, cold, us[i])
	}
	later := f.exchanges() - before - burst
	t.Logf("cold instance: %d exchanges in the first burst of 8, %d for the %d users after it; %+v", burst, later, users-8, cold.SharedCacheStats())
	if later > 0 {
		t.Errorf("%d of the %d users after the first burst were exchanged although their tokens were in Redis", later, users-8)
	}
}
