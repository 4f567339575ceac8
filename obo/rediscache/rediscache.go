// Package rediscache is an obo.SharedCache on Redis (github.com/redis/go-redis/v9): the OBO
// tokens of an App shared by every instance of the app, on Azure Cache for Redis, Azure Managed
// Redis or any Redis 6.2 or newer, through a single node, Sentinel or Cluster client.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "myapp.redis.cache.windows.net:6380", TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12}, ...})
//	app, err := obo.NewAppWithAssertion(tenantID, clientID, cred, &obo.AppOptions{
//		SharedCache:     rediscache.New(rdb, nil),
//		SharedCacheKeys: keys, // 32-byte keys, from a Key Vault secret
//	})
//
// Each entry is one Redis string under its own key (GETRANGE, SET key value PXAT expiry, DEL), so it
// expires with its token and nothing accumulates. Package obo gives the Cache only encrypted
// values under names that reveal no token and no user; the Cache adds Options.KeyPrefix.
//
// The Cache bounds every call itself (Options.Timeout, 1 s by default), whether or not the client
// has ContextTimeoutEnabled: a frozen Redis costs a request at most that once, after which the
// App's circuit breaker stops asking for a while. The client is the caller's: the Cache never
// closes it.
//
// # Observability
//
// Every call takes the context of the token request that needs it (the App's lookup runs under
// the context of the EasyAuthOBOCredential.GetToken span): with go-redis' OpenTelemetry
// instrumentation (redisotel) on the client, the Redis spans are children of the GetToken span.
// The App measures the lookups' latency, errors and breaker state (obo.AppOptions.Metrics) and
// counts them in App.SharedCacheStats.
package rediscache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/azcredkit/azcredkit/internal/panics"
	"github.com/azcredkit/azcredkit/obo"
)

// DefaultTimeout bounds each call when Options.Timeout is 0.
const DefaultTimeout = time.Second

// maxInFlight bounds the calls that have outlived their deadline and still wait for the client
// (a goroutine each); beyond it calls fail at once with ErrBusy.
const maxInFlight = 256

// maxValue bounds what Get reads: no entry of package obo is longer than 64 KiB, and a longer
// value (one an attacker stored: Redis takes strings of up to 512 MB) must not be read into
// memory by every lookup of its key.
const maxValue = 64 << 10

// ErrBusy is returned when too many calls still wait for Redis (it does not answer): the call is
// not made.
var ErrBusy = errors.New("rediscache: too many calls are waiting for Redis; not calling it")

// Options configure a Cache. The zero value is the default for every field.
type Options struct {
	// KeyPrefix is put before every key, for example "myapp:" when the database holds other
	// data, or to keep two apps with the same client ID apart. Optional; default none.
	KeyPrefix string
	// Timeout bounds each call (GET, SET or DEL), however the client is configured; 0 means
	// DefaultTimeout (1 s). Optional.
	Timeout time.Duration
}

// Cache is an obo.SharedCache on a Redis client. It is safe for concurrent use.
type Cache struct {
	client   redis.UniversalClient
	prefix   string
	timeout  time.Duration
	inflight chan struct{}
}

var _ obo.SharedCache = (*Cache)(nil)

// New returns an obo.SharedCache on client (a single node, Sentinel or Cluster client). options
// may be nil.
func New(client redis.UniversalClient, options *Options) *Cache {
	var o Options
	if options != nil {
		o = *options
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	return &Cache{client: client, prefix: o.KeyPrefix, timeout: o.Timeout, inflight: make(chan struct{}, maxInFlight)}
}

// Get returns the value stored under key; nil and no error when there is none (or it is empty).
// It reads at most 64 KiB and 1 byte (GETRANGE key 0 65536): a longer value, which cannot be an
// entry of package obo, is an error without being read whole.
func (c *Cache) Get(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := c.do(ctx, "GET", func(ctx context.Context) error {
		// GETRANGE answers "" for a key that does not exist.
		b, err := c.client.GetRange(ctx, c.prefix+key, 0, maxValue).Bytes()
		switch {
		case errors.Is(err, redis.Nil) || (err == nil && len(b) == 0):
			return nil
		case err == nil && len(b) > maxValue:
			return fmt.Errorf("the value is longer than %d bytes: not an entry of package obo", maxValue)
		}
		v = b
		return err
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// Set stores value under key until expiresAt (SET key value PXAT expiresAt, in Unix
// milliseconds). A time already past stores nothing.
func (c *Cache) Set(ctx context.Context, key string, value []byte, expiresAt time.Time) error {
	ms := expiresAt.UnixMilli()
	if ms <= time.Now().UnixMilli() {
		return nil
	}
	return c.do(ctx, "SET", func(ctx context.Context) error {
		return c.client.Do(ctx, "SET", c.prefix+key, value, "PXAT", ms).Err()
	})
}

// Delete removes key (DEL); no error when it is absent.
func (c *Cache) Delete(ctx context.Context, key string) error {
	return c.do(ctx, "DEL", func(ctx context.Context) error {
		return c.client.Del(ctx, c.prefix+key).Err()
	})
}

// do runs fn within the Cache's timeout (and ctx): on a goroutine of its own, so that it
// returns at the deadline even when the client does not honour context deadlines
// (ContextTimeoutEnabled false, the default) and Redis does not answer; the goroutine ends when
// the client gives up (its ReadTimeout). At most maxInFlight such goroutines exist.
func (c *Cache) do(ctx context.Context, op string, fn func(context.Context) error) error {
	// Canceled when do returns: a call still running is asked to stop (go-redis gives up waiting
	// for a connection; a command on the wire ends with its read timeout).
	if c.client == nil {
		return errors.New("rediscache: the Cache has no Redis client (New was given nil)")
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	select {
	case c.inflight <- struct{}{}:
	default:
		return ErrBusy
	}
	done := make(chan error, 1)
	go func() {
		defer func() { <-c.inflight }()
		var err error
		func() {
			// A panic here (a nil client, a bug in a hook) would end the process: no caller's
			// recover reaches this goroutine.
			defer panics.Recover("the Redis client", &err)
			err = fn(ctx)
		}()
		done <- err
	}()
	result := func(err error) error {
		if err != nil {
			return fmt.Errorf("rediscache: %s: %w", op, err)
		}
		return nil
	}
	select {
	case err := <-done:
		return result(err)
	case <-ctx.Done():
		select {
		case err := <-done: // the answer came with the deadline: take it
			return result(err)
		default:
		}
		return fmt.Errorf("rediscache: %s: no answer from Redis in time: %w", op, context.Cause(ctx))
	}
}
