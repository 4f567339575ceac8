package obo

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testguard"
	"github.com/azcredkit/azcredkit/internal/tokencache"
)

// The shared cache (second level) against an in-memory SharedCache and the Entra emulator; the
// same behaviour against a real Redis is tested in obo/rediscache.

const (
	shTenant = "aaaaaaaa-0000-0000-0000-00000000000a"
	shAPI    = "a1a1a1a1-0000-0000-0000-0000000000a1"
	shSecret = "middle-tier-secret"
	shScope  = "https://storage.azure.com/user_impersonation"
	shVault  = "https://vault.azure.net/user_impersonation"
)

// store modes
const (
	storeOK          = iota
	storeFail        // every call fails at once
	storeHang        // every call waits until its context ends
	storeHangForever // every call ignores its context and waits for release
	storePanic       // every call panics
)

// memStore is an in-memory SharedCache that can fail in each of the ways a store can.
type memStore struct {
	mu               sync.Mutex
	m                map[string]memEntry
	mode             atomic.Int32
	release          chan struct{} // ends storeHangForever calls
	releaseOnce      sync.Once
	gets, sets, dels atomic.Int64
}

type memEntry struct {
	v   []byte
	exp time.Time
}

func newMemStore(t testing.TB) *memStore {
	s := &memStore{m: map[string]memEntry{}, release: make(chan struct{})}
	t.Cleanup(s.unblock)
	return s
}

func (s *memStore) unblock() { s.releaseOnce.Do(func() { close(s.release) }) }

func (s *memStore) misbehave(ctx context.Context) error {
	switch s.mode.Load() {
	case storeFail:
		return errors.New("connection refused")
	case storeHang:
		<-ctx.Done()
		return ctx.Err()
	case storeHangForever:
		<-s.release
		return errors.New("released")
	case storePanic:
		panic("the store is broken")
	}
	return nil
}

func (s *memStore) Get(ctx context.Context, key string) ([]byte, error) {
	s.gets.Add(1)
	if err := s.misbehave(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	if !ok || !time.Now().Before(e.exp) {
		return nil, nil
	}
	return bytes.Clone(e.v), nil
}

func (s *memStore) Set(ctx context.Context, key string, value []byte, expiresAt time.Time) error {
	s.sets.Add(1)
	if err := s.misbehave(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = memEntry{v: bytes.Clone(value), exp: expiresAt}
	return nil
}

func (s *memStore) Delete(ctx context.Context, key string) error {
	s.dels.Add(1)
	if err := s.misbehave(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

// snapshot returns a copy of the stored entries.
func (s *memStore) snapshot() map[string]memEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]memEntry, len(s.m))
	for k, v := range s.m {
		out[k] = memEntry{v: bytes.Clone(v.v), exp: v.exp}
	}
	return out
}

func (s *memStore) put(k string, v []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[k]
	e.v = v
	if e.exp.IsZero() {
		e.exp = time.Now().Add(time.Hour)
	}
	s.m[k] = e
}

func (s *memStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, sharedKeySize) }

type sharedEnv struct {
	e *emulator.Entra
}

func newSharedEnv(t testing.TB) *sharedEnv {
	t.Helper()
	e := emulator.NewEntra()
	t.Cleanup(e.Close)
	e.AddTenant(shTenant)
	e.RegisterApp(shTenant, shAPI).AddSecret(shSecret)
	return &sharedEnv{e: e}
}

// app is an App of the fleet: store and keys shared, options adjusted by mod.
func (se *sharedEnv) app(t testing.TB, store SharedCache, keys [][]byte, mod func(*AppOptions)) *App {
	t.Helper()
	co := se.e.ClientOptions()
	co.Retry = policy.RetryOptions{MaxRetries: 1, RetryDelay: 10 * time.Millisecond}
	o := &AppOptions{ClientOptions: co, DisableInstanceDiscovery: true, SharedCache: store, SharedCacheKeys: keys}
	if mod != nil {
		mod(o)
	}
	a, err := NewAppWithSecret(shTenant, shAPI, shSecret, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { flush(t, a) })
	return a
}

func (se *sharedEnv) user(i int) (oid, upn, token string) {
	oid = fmt.Sprintf("00000000-0000-0000-0000-%012d", 90_000+i)
	upn = fmt.Sprintf("shared-user%d@contoso.example", i)
	se.e.AddUser(shTenant, emulator.User{OID: oid, Name: fmt.Sprintf("Shared User %d", i), UPN: upn})
	return oid, upn, se.e.UserToken(shTenant, oid, shAPI, emulator.UserTokenOptions{})
}

func flush(t testing.TB, a *App) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.FlushSharedCache(ctx); err != nil {
		t.Errorf("FlushSharedCache: %v", err)
	}
}

func getToken(t testing.TB, a *App, userToken, scope string) azcore.AccessToken {
	t.Helper()
	c, err := a.Credential(userToken)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{scope}})
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	return tok
}

func (se *sharedEnv) exchanges() int64 { return se.e.Count("token:obo") }

func (se *sharedEnv) oidOf(t testing.TB, tok azcore.AccessToken) string {
	t.Helper()
	claims, err := se.e.Verify(tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	oid, _ := claims["oid"].(string)
	return oid
}

// TestSharedCacheOneExchangeForTheFleet: a token one App obtained serves another App (another
// instance) and an App created later (a restart) without an exchange.
func TestSharedCacheOneExchangeForTheFleet(t *testing.T) {
	se := newSharedEnv(t)
	store := newMemStore(t)
	keys := [][]byte{testKey(1)}
	a1, a2 := se.app(t, store, keys, nil), se.app(t, store, keys, nil)
	oid, _, ut := se.user(1)

	t1 := getToken(t, a1, ut, shScope)
	flush(t, a1)
	t2 := getToken(t, a2, ut, shScope)
	if t2.Token != t1.Token {
		t.Fatal("the second App did not get the token the first one wrote")
	}
	if !t2.ExpiresOn.Equal(t1.ExpiresOn.Truncate(time.Millisecond)) {
		t.Errorf("expiry %v, want %v", t2.ExpiresOn, t1.ExpiresOn)
	}
	a3 := se.app(t, store, keys, nil) // a restarted instance
	if getToken(t, a3, ut, shScope).Token != t1.Token {
		t.Fatal("a new App did not get the shared token")
	}
	if n := se.exchanges(); n != 1 {
		t.Fatalf("Entra saw %d exchanges, want 1 for the fleet", n)
	}
	if got := se.oidOf(t, t2); got != oid {
		t.Fatalf("token for %s, want %s", got, oid)
	}
	if s := a2.SharedCacheStats(); s.Hits != 1 || s.Misses != 0 {
		t.Errorf("second App: %+v, want 1 hit", s)
	}
	if s := a1.SharedCacheStats(); s.Writes != 1 || s.Misses != 1 {
		t.Errorf("first App: %+v, want 1 miss, 1 write", s)
	}
	// The second App's cache now holds the token: no more lookups.
	gets := store.gets.Load()
	getToken(t, a2, ut, shScope)
	if store.gets.Load() != gets {
		t.Error("a token in the App's own cache was looked up in the shared cache")
	}
	// Another scope, another tenant-scope-CAE entry: an exchange of its own.
	getToken(t, a2, ut, shVault)
	if n := se.exchanges(); n != 2 {
		t.Fatalf("Entra saw %d exchanges, want 2", n)
	}
}

// TestSharedCacheConcurrentCallersShareOneLookup: concurrent requests of one user on one App
// share one lookup and one exchange.
func TestSharedCacheConcurrentCallersShareOneLookup(t *testing.T) {
	se := newSharedEnv(t)
	store := newMemStore(t)
	a := se.app(t, store, [][]byte{testKey(1)}, nil)
	_, _, ut := se.user(2)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() { getToken(t, a, ut, shScope) })
	}
	wg.Wait()
	if n := se.exchanges(); n != 1 {
		t.Errorf("%d exchanges, want 1", n)
	}
	if n := store.gets.Load(); n != 1 {
		t.Errorf("%d lookups, want 1", n)
	}
}

// TestSharedCacheEntriesRevealNothing: the stored names and values hold no token, user token,
// oid, upn or tenant, in any usual encoding; each entry expires with its token.
func TestSharedCacheEntriesRevealNothing(t *testing.T) {
	se := newSharedEnv(t)
	store := newMemStore(t)
	a := se.app(t, store, [][]byte{testKey(7)}, nil)
	var secrets []string
	var toks []azcore.AccessToken
	for i := range 5 {
		oid, upn, ut := se.user(100 + i)
		tok := getToken(t, a, ut, shScope)
		toks = append(toks, tok)
		secrets = append(secrets, oid, upn, ut, tok.Token)
		secrets = append(secrets, strings.Split(ut, ".")...)
		secrets = append(secrets, strings.Split(tok.Token, ".")...)
	}
	secrets = append(secrets, shTenant, shAPI)
	flush(t, a)
	entries := store.snapshot()
	if len(entries) != 5 {
		t.Fatalf("%d entries, want 5", len(entries))
	}
	latest := time.Time{}
	for _, tok := range toks {
		if tok.ExpiresOn.After(latest) {
			latest = tok.ExpiresOn
		}
	}
	for k, e := range entries {
		if !strings.HasPrefix(k, sharedEntryPrefix) {
			t.Errorf("entry name without the versioned prefix")
		}
		if e.exp.After(latest) || e.exp.IsZero() {
			t.Errorf("an entry expires at %v, after every token (latest %v)", e.exp, latest)
		}
		for _, s := range secrets {
			for _, enc := range encodings(s) {
				if strings.Contains(k, enc) || bytes.Contains(e.v, []byte(enc)) {
					t.Fatalf("an entry reveals a secret or an identifier (%.12s...)", enc)
				}
			}
		}
	}
}

// encodings returns s as is, in hex, and in base64 (standard and URL, padded or not); only
// forms of at least 8 bytes (shorter ones match by chance).
func encodings(s string) []string {
	b := []byte(s)
	all := []string{s, hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)),
		base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b)}
	var out []string
	for _, e := range all {
		if len(e) >= 8 {
			out = append(out, strings.TrimRight(e, "="))
		}
	}
	return out
}

// TestSharedCacheBadEntriesAreMisses: a tampered value, a value moved under another user's name,
// a value written with another key, a garbage value: each is a miss and one exchange, never an
// error, and the user gets their own token.
func TestSharedCacheBadEntriesAreMisses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(store *memStore, mine, other string)
		keys  [][]byte // of the reader; nil: the writer's
	}{
		{"tampered", func(s *memStore, mine, _ string) {
			v := s.snapshot()[mine].v
			v[len(v)-20] ^= 1
			s.put(mine, v)
		}, nil},
		{"tampered header", func(s *memStore, mine, _ string) {
			v := s.snapshot()[mine].v
			v[1] ^= 1 // key id
			s.put(mine, v)
		}, nil},
		{"moved under another name", func(s *memStore, mine, other string) {
			s.put(mine, s.snapshot()[other].v)
		}, nil},
		{"truncated", func(s *memStore, mine, _ string) {
			v := s.snapshot()[mine].v
			s.put(mine, v[:len(v)/2])
		}, nil},
		{"garbage", func(s *memStore, mine, _ string) { s.put(mine, []byte("not an entry")) }, nil},
		{"empty", func(s *memStore, mine, _ string) { s.put(mine, []byte{}) }, nil},
		{"another version", func(s *memStore, mine, _ string) {
			v := s.snapshot()[mine].v
			v[0] = 2
			s.put(mine, v)
		}, nil},
		{"written with another key", func(s *memStore, mine, _ string) {
			other := newTestShared(t, s, testKey(9))
			s.put(mine, other.seal(mine, azcore.AccessToken{Token: "forged", ExpiresOn: time.Now().Add(time.Hour)}))
		}, nil},
		// A reader with another key finds nothing under its names: a plain miss.
		{"wrong key", func(*memStore, string, string) {}, [][]byte{testKey(9)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			se := newSharedEnv(t)
			store := newMemStore(t)
			keys := [][]byte{testKey(1)}
			var logs bytes.Buffer
			writer := se.app(t, store, keys, nil)
			oidMe, _, utMe := se.user(1)
			_, _, utOther := se.user(2)
			mineTok := getToken(t, writer, utMe, shScope)
			getToken(t, writer, utOther, shScope)
			flush(t, writer)
			mine := writer.shared.entry(utMe, tokencache.Key{Tenant: shTenant, Scopes: shScope}).name(0)
			other := writer.shared.entry(utOther, tokencache.Key{Tenant: shTenant, Scopes: shScope}).name(0)
			if _, ok := store.snapshot()[mine]; !ok {
				t.Fatal("the entry is not where the test expects it")
			}
			tc.spoil(store, mine, other)

			readerKeys := keys
			if tc.keys != nil {
				readerKeys = tc.keys
			}
			reader := se.app(t, store, readerKeys, func(o *AppOptions) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
			before := se.exchanges()
			tok := getToken(t, reader, utMe, shScope)
			if n := se.exchanges() - before; n != 1 {
				t.Fatalf("%d exchanges, want 1", n)
			}
			if got := se.oidOf(t, tok); got != oidMe {
				t.Fatalf("got the token of %s, want %s", got, oidMe)
			}
			if tok.Token == mineTok.Token {
				t.Fatal("the spoiled entry was used")
			}
			s := reader.SharedCacheStats()
			if s.Hits != 0 || s.Misses != 1 {
				t.Errorf("stats %+v, want 1 miss", s)
			}
			unreadable := tc.name != "wrong key"
			if want := map[bool]int64{true: 1}[unreadable]; s.Unreadable != want {
				t.Errorf("stats %+v, want %d unreadable entries", s, want)
			}
			if s.Failures != 0 {
				t.Errorf("a bad entry counted as a store failure: %+v", s)
			}
			if unreadable && !strings.Contains(logs.String(), "unreadable") {
				t.Errorf("no warning logged: %q", logs.String())
			}
			for _, secret := range []string{utMe, utOther, tok.Token, mineTok.Token, mine, other} {
				if strings.Contains(logs.String(), secret) {
					t.Fatal("the log holds a token or an entry name")
				}
			}
			// The exchange wrote a good entry over the bad one: the next instance reads it.
			flush(t, reader)
			third := se.app(t, store, readerKeys, nil)
			if getToken(t, third, utMe, shScope).Token != tok.Token {
				t.Error("the entry was not written again after the miss")
			}
		})
	}
}

// TestSharedCacheKeyRotation: entries written under an old key are read by Apps whose keys
// start with a new one (and written again under the new key); entries of the new key are not
// readable with the old key alone, only a miss.
func TestSharedCacheKeyRotation(t *testing.T) {
	se := newSharedEnv(t)
	store := newMemStore(t)
	oldKey, newKey := testKey(1), testKey(2)
	old := se.app(t, store, [][]byte{oldKey}, nil)
	_, _, ut := se.user(1)
	tok := getToken(t, old, ut, shScope)
	flush(t, old)

	rotated := se.app(t, store, [][]byte{newKey, oldKey}, nil)
	if getToken(t, rotated, ut, shScope).Token != tok.Token {
		t.Fatal("an App with the new key first did not read the entry of the old key")
	}
	if n := se.exchanges(); n != 1 {
		t.Fatalf("%d exchanges, want 1", n)
	}
	flush(t, rotated)
	if s := rotated.SharedCacheStats(); s.Hits != 1 || s.Writes != 1 {
		t.Errorf("stats %+v, want 1 hit and the entry written again under the new key", s)
	}
	if store.len() != 2 {
		t.Errorf("%d entries, want 2 (under the old name and under the new)", store.len())
	}
	// After the rotation, the old key is gone: the entry written under the new key serves.
	newOnly := se.app(t, store, [][]byte{newKey}, nil)
	if getToken(t, newOnly, ut, shScope).Token != tok.Token {
		t.Fatal("the entry written again under the new key is not readable with the new key")
	}
	if n := se.exchanges(); n != 1 {
		t.Fatalf("%d exchanges, want 1", n)
	}
}

// TestSharedCacheStoreFailures: a store that fails, hangs until its context ends, hangs ignoring
// its context, or panics: no GetToken fails, each waits at most the budget for the store, the
// breaker stops the calls after FailureThreshold failures, and the store is used again once it
// recovers.
func TestSharedCacheStoreFailures(t *testing.T) {
	for _, mode := range []int32{storeFail, storeHang, storeHangForever, storePanic} {
		t.Run(fmt.Sprint("mode ", mode), func(t *testing.T) {
			se := newSharedEnv(t)
			store := newMemStore(t)
			keys := [][]byte{testKey(1)}
			var logs syncBuffer
			a := se.app(t, store, keys, func(o *AppOptions) {
				o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
				o.SharedCacheOptions = SharedCacheOptions{Timeout: 50 * time.Millisecond, FailureThreshold: 3, Cooldown: 300 * time.Millisecond}
			})
			store.mode.Store(mode)
			const users = 8
			uts := make([]string, users)
			for i := range users {
				_, _, uts[i] = se.user(i)
			}
			worst := time.Duration(0)
			for _, ut := range uts {
				start := time.Now()
				testguard.Within(t, 5*time.Second, "GetToken with the store failing", func() { getToken(t, a, ut, shScope) })
				worst = max(worst, time.Since(start))
			}
			t.Logf("slowest GetToken with the store failing: %v", worst)
			if worst > 2*time.Second {
				t.Errorf("a GetToken took %v with the store failing", worst)
			}
			if n := se.exchanges(); n != users {
				t.Errorf("%d exchanges, want %d", n, users)
			}
			s := a.SharedCacheStats()
			if s.BreakerTrips < 1 || s.Skipped == 0 {
				t.Errorf("the breaker did not open: %+v", s)
			}
			// Lookups plus writes reached the store until the breaker opened: 3 failures.
			if n := s.Failures; n < 3 || n > 3+maxSharedInFlight {
				t.Errorf("%d failed calls, want 3 before the breaker opened", n)
			}
			if !strings.Contains(logs.String(), "keeps failing") {
				t.Errorf("no breaker warning: %s", logs.String())
			}
			if c := strings.Count(logs.String(), "a call to the shared token cache failed"); c > 1 {
				t.Errorf("%d failure warnings within the rate limit, want 1", c)
			}
			for _, ut := range uts {
				if strings.Contains(logs.String(), ut) {
					t.Fatal("a user token in the log")
				}
			}

			// The store recovers; after the cool-down a probe closes the breaker.
			store.mode.Store(storeOK)
			store.unblock()
			time.Sleep(400 * time.Millisecond)
			_, _, ut := se.user(50)
			getToken(t, a, ut, shScope)
			flush(t, a)
			b := se.app(t, store, keys, nil)
			before := se.exchanges()
			getToken(t, b, ut, shScope)
			if n := se.exchanges() - before; n != 0 {
				t.Errorf("after recovery: %d exchanges, want 0 (the shared cache serves again)", n)
			}
			if !strings.Contains(logs.String(), "answers again") {
				t.Errorf("no recovery message: %s", logs.String())
			}
		})
	}
}

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

// TestSharedCacheInteractionRequiredDeletes: when a refresh meets an interaction-required answer
// (MFA newly required), the entry is deleted, so that no instance serves it any more.
func TestSharedCacheInteractionRequiredDeletes(t *testing.T) {
	se := newSharedEnv(t)
	se.e.SetRefreshIn(time.Second)
	store := newMemStore(t)
	a := se.app(t, store, [][]byte{testKey(1)}, nil)
	_, _, ut := se.user(1)
	getToken(t, a, ut, shScope)
	flush(t, a)
	if store.len() != 1 {
		t.Fatalf("%d entries, want 1", store.len())
	}
	se.e.RequireMFA("https://storage.azure.com")
	time.Sleep(1100 * time.Millisecond) // the token is due for refresh
	getToken(t, a, ut, shScope)         // the valid token; the refresh runs in the background
	deadline := time.Now().Add(5 * time.Second)
	for store.len() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if store.len() != 0 {
		t.Fatal("the entry is still there after an interaction-required answer")
	}
	// And a new exchange for that user and resource answers interaction required.
	c, err := se.app(t, store, [][]byte{testKey(1)}, nil).Credential(ut)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{shScope}})
	var ir *InteractionRequiredError
	if !errors.As(err, &ir) {
		t.Fatalf("got %v, want an InteractionRequiredError", err)
	}
}

// TestSharedCacheClaimsChallengeReplacesEntry: a claims challenge deletes the entry and never
// reads it; the token obtained with the claims is the one shared afterwards.
func TestSharedCacheClaimsChallengeReplacesEntry(t *testing.T) {
	se := newSharedEnv(t)
	store := newMemStore(t)
	keys := [][]byte{testKey(1)}
	a := se.app(t, store, keys, nil)
	_, _, ut := se.user(1)
	first := getToken(t, a, ut, shScope)
	flush(t, a)

	b := se.app(t, store, keys, nil)
	c, err := b.Credential(ut)
	if err != nil {
		t.Fatal(err)
	}
	gets := store.gets.Load()
	second, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{shScope}, Claims: `{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}`})
	if err != nil {
		t.Fatal(err)
	}
	if second.Token == first.Token {
		t.Fatal("a claims challenge was answered with the shared token")
	}
	if store.gets.Load() != gets {
		t.Error("a claims request read the shared cache")
	}
	flush(t, b)
	if store.dels.Load() != 1 {
		t.Errorf("%d deletions, want 1", store.dels.Load())
	}
	third := se.app(t, store, keys, nil)
	if getToken(t, third, ut, shScope).Token != second.Token {
		t.Error("the token obtained with the claims is not the shared one")
	}
}

// TestSharedCacheRefreshTakesNewerEntry: a token due for refresh is refreshed from the shared
// cache when another instance has already refreshed it (a later expiry), else from Entra.
func TestSharedCacheRefreshTakesNewerEntry(t *testing.T) {
	se := newSharedEnv(t)
	se.e.SetRefreshIn(time.Second)
	store := newMemStore(t)
	keys := [][]byte{testKey(1)}
	a, b := se.app(t, store, keys, nil), se.app(t, store, keys, nil)
	_, _, ut := se.user(1)
	t1 := getToken(t, a, ut, shScope)
	flush(t, a)
	if getToken(t, b, ut, shScope).Token != t1.Token {
		t.Fatal("b did not read the shared token")
	}
	time.Sleep(1100 * time.Millisecond) // refresh_in passed: both hold a stale token
	se.e.SetRefreshIn(0)

	// a's refresh: the shared entry is the token a holds, not a newer one: an exchange.
	getToken(t, a, ut, shScope)
	t2 := waitForNewToken(t, a, ut, t1)
	flush(t, a)
	if n := se.exchanges(); n != 2 {
		t.Fatalf("%d exchanges, want 2", n)
	}
	// b's refresh finds a's newer token: no exchange.
	getToken(t, b, ut, shScope)
	if got := waitForNewToken(t, b, ut, t1); got.Token != t2.Token {
		t.Fatal("b's refresh did not take the newer shared token")
	}
	if n := se.exchanges(); n != 2 {
		t.Fatalf("%d exchanges, want 2 (b refreshed from the shared cache)", n)
	}
}

func waitForNewToken(t *testing.T, a *App, ut string, old azcore.AccessToken) azcore.AccessToken {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		tok := getToken(t, a, ut, shScope)
		if tok.Token != old.Token {
			return tok
		}
		if time.Now().After(deadline) {
			t.Fatal("the token was not refreshed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSharedCacheOptionsValidation: the constructor refuses a shared cache without keys, keys of
// another length than 32 bytes and negative options, saying what to fix, never showing a key.
func TestSharedCacheOptionsValidation(t *testing.T) {
	se := newSharedEnv(t)
	store := newMemStore(t)
	secretKey := []byte("this-key-is-31-bytes-long-12345")
	for _, tc := range []struct {
		name string
		mod  func(*AppOptions)
		want string
	}{
		{"no keys", func(o *AppOptions) { o.SharedCacheKeys = nil }, "SharedCacheKeys is empty"},
		{"short key", func(o *AppOptions) { o.SharedCacheKeys = [][]byte{secretKey} }, "SharedCacheKeys[0] is 31 bytes"},
		{"long second key", func(o *AppOptions) { o.SharedCacheKeys = [][]byte{testKey(1), make([]byte, 33)} }, "SharedCacheKeys[1] is 33 bytes"},
		{"empty key", func(o *AppOptions) { o.SharedCacheKeys = [][]byte{{}} }, "SharedCacheKeys[0] is 0 bytes"},
		{"negative timeout", func(o *AppOptions) { o.SharedCacheOptions.Timeout = -1 }, "Timeout"},
		{"negative threshold", func(o *AppOptions) { o.SharedCacheOptions.FailureThreshold = -1 }, "FailureThreshold"},
		{"negative cooldown", func(o *AppOptions) { o.SharedCacheOptions.Cooldown = -time.Second }, "Cooldown"},
		{"negative queue", func(o *AppOptions) { o.SharedCacheOptions.MaxPendingWrites = -1 }, "MaxPendingWrites"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &AppOptions{ClientOptions: se.e.ClientOptions(), SharedCache: store, SharedCacheKeys: [][]byte{testKey(1)}}
			tc.mod(o)
			_, err := NewAppWithSecret(shTenant, shAPI, shSecret, o)
			if !errors.Is(err, assertion.ErrInvalidOptions) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalidOptions saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), string(secretKey)) || strings.Contains(err.Error(), hex.EncodeToString(secretKey)) {
				t.Fatal("the error shows the key")
			}
		})
	}
	// Keys without a store are ignored; no store, no shared cache.
	a, err := NewAppWithSecret(shTenant, shAPI, shSecret, &AppOptions{ClientOptions: se.e.ClientOptions(), SharedCacheKeys: [][]byte{{1}}})
	if err != nil || a.shared != nil {
		t.Fatalf("keys without SharedCache: %v", err)
	}
	if (a.SharedCacheStats() != SharedCacheStats{}) || a.FlushSharedCache(context.Background()) != nil {
		t.Fatal("an App without a shared cache has stats or cannot flush")
	}
}

// newTestShared is a sharedCache on store with keys, without an App.
func newTestShared(t testing.TB, store SharedCache, keys ...[]byte) *sharedCache {
	t.Helper()
	sc, err := newSharedCache(&AppOptions{SharedCache: store, SharedCacheKeys: keys}, shAPI, "https://login.microsoftonline.com/")
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// TestSharedEntryNames: a name depends on every part of the token request and on the key, and
// the fields cannot be shifted into one another.
func TestSharedEntryNames(t *testing.T) {
	sc := newTestShared(t, newMemStore(t), testKey(1))
	base := tokencache.Key{Tenant: "t1", Scopes: "s1"}
	name := func(sc *sharedCache, ut string, k tokencache.Key) string { return sc.entry(ut, k).name(0) }
	n := name(sc, "user-token", base)
	if n != name(sc, "user-token", base) {
		t.Fatal("names are not deterministic")
	}
	if !strings.HasPrefix(n, sharedEntryPrefix) || len(n) != len(sharedEntryPrefix)+43 {
		t.Fatalf("name %q: want the prefix and a base64url SHA-256", n)
	}
	other := newTestShared(t, newMemStore(t), testKey(2))
	otherApp, err := newSharedCache(&AppOptions{SharedCache: newMemStore(t), SharedCacheKeys: [][]byte{testKey(1)}}, "another-client", "https://login.microsoftonline.com/")
	if err != nil {
		t.Fatal(err)
	}
	otherCloud, err := newSharedCache(&AppOptions{SharedCache: newMemStore(t), SharedCacheKeys: [][]byte{testKey(1)}}, shAPI, "https://login.microsoftonline.us/")
	if err != nil {
		t.Fatal(err)
	}
	differ := map[string]string{
		"user token":          name(sc, "user-token2", base),
		"tenant":              name(sc, "user-token", tokencache.Key{Tenant: "t2", Scopes: "s1"}),
		"scopes":              name(sc, "user-token", tokencache.Key{Tenant: "t1", Scopes: "s2"}),
		"CAE":                 name(sc, "user-token", tokencache.Key{Tenant: "t1", Scopes: "s1", CAE: true}),
		"key":                 name(other, "user-token", base),
		"client ID":           name(otherApp, "user-token", base),
		"authority":           name(otherCloud, "user-token", base),
		"shifted field":       name(sc, "user-tokent", tokencache.Key{Tenant: "1", Scopes: "s1"}),
		"shifted into scopes": name(sc, "user-token", tokencache.Key{Tenant: "t", Scopes: "1s1"}),
	}
	for what, m := range differ {
		if m == n {
			t.Errorf("another %s gives the same name", what)
		}
	}
}

// TestSharedEntrySealOpen: values round-trip; every write has a fresh nonce; the name is bound;
// every single-byte change and every key other than the writer's fails.
func TestSharedEntrySealOpen(t *testing.T) {
	sc := newTestShared(t, newMemStore(t), testKey(1), testKey(2))
	tok := azcore.AccessToken{Token: "eyJ0eXAi.eyJhdWQi.c2lnbmF0dXJl", ExpiresOn: time.UnixMilli(1_900_000_000_123), RefreshOn: time.UnixMilli(1_899_999_000_000)}
	v := sc.seal("name-a", tok)
	got, err := sc.open("name-a", v)
	if err != nil || got.Token != tok.Token || !got.ExpiresOn.Equal(tok.ExpiresOn) || !got.RefreshOn.Equal(tok.RefreshOn) {
		t.Fatalf("round trip: %v, %+v", err, got)
	}
	noRefresh := tok
	noRefresh.RefreshOn = time.Time{}
	if got, err := sc.open("n", sc.seal("n", noRefresh)); err != nil || !got.RefreshOn.IsZero() {
		t.Fatalf("without refresh_on: %v %v", err, got.RefreshOn)
	}
	if bytes.Equal(v, sc.seal("name-a", tok)) {
		t.Fatal("two writes of one token are equal: no fresh nonce")
	}
	if _, err := sc.open("name-b", v); !errors.Is(err, errEntryAuth) {
		t.Fatalf("under another name: %v, want errEntryAuth", err)
	}
	for i := range v {
		bad := bytes.Clone(v)
		bad[i] ^= 0x40
		if _, err := sc.open("name-a", bad); err == nil {
			t.Fatalf("a value changed at byte %d opened", i)
		}
	}
	// The first key writes; a reader with only the second key cannot read it, one with only the
	// first can; a value of the second key is read by an App that has it anywhere in its list.
	if _, err := newTestShared(t, newMemStore(t), testKey(2)).open("name-a", v); err == nil {
		t.Fatal("a reader without the writing key opened the value")
	}
	if _, err := newTestShared(t, newMemStore(t), testKey(1)).open("name-a", v); err != nil {
		t.Fatalf("a reader with the writing key: %v", err)
	}
	old := newTestShared(t, newMemStore(t), testKey(2)).seal("name-a", tok)
	if _, err := sc.open("name-a", old); err != nil {
		t.Fatalf("a value of an older key: %v", err)
	}
	if _, err := sc.open("name-a", append(bytes.Clone(v), make([]byte, maxSharedEntry)...)); !errors.Is(err, errEntrySize) {
		t.Fatalf("an oversized value: %v", err)
	}
}

// TestSharedEntryFormat pins the format: names and values written by this version are read by
// the next (instances of two versions share the store during a deployment).
func TestSharedEntryFormat(t *testing.T) {
	sc := newTestShared(t, newMemStore(t), testKey(0x5a))
	name := sc.entry("user.token.value", tokencache.Key{Tenant: shTenant, Scopes: shScope}).name(0)
	value, _ := hex.DecodeString(pinnedValue)
	if name != pinnedName {
		t.Fatalf("the name changed: %s (was %s)", name, pinnedName)
	}
	tok, err := sc.open(pinnedName, value)
	if err != nil {
		t.Fatalf("a value of the pinned format: %v", err)
	}
	if tok.Token != "access.token.value" || tok.ExpiresOn.UnixMilli() != 1_900_000_000_123 || tok.RefreshOn.UnixMilli() != 1_899_999_000_000 {
		t.Fatalf("decoded %+v", tok)
	}

	// The construction as documented, from the primitives: HKDF-SHA-256 subkeys, the name an
	// HMAC-SHA-256 of the length-prefixed fields, the value AES-256-GCM with the header and the
	// name as additional data.
	k := testKey(0x5a)
	nameKey, _ := hkdf.Key(sha256.New, k, nil, hkdfInfoNames, 32)
	sealKey, _ := hkdf.Key(sha256.New, k, nil, hkdfInfoSeal, 32)
	id, _ := hkdf.Key(sha256.New, k, nil, hkdfInfoID, 1)
	m := hmac.New(sha256.New, nameKey)
	for _, f := range []string{"user.token.value", shTenant, shScope, "\x00", shAPI, "https://login.microsoftonline.com/"} {
		if f == "\x00" {
			m.Write([]byte{0})
			continue
		}
		m.Write(binary.BigEndian.AppendUint32(nil, uint32(len(f))))
		m.Write([]byte(f))
	}
	if want := "azcredkit:obo:v1:" + base64.RawURLEncoding.EncodeToString(m.Sum(nil)); name != want {
		t.Fatalf("name %s, want %s", name, want)
	}
	if value[0] != 1 || value[1] != id[0] {
		t.Fatalf("header % x, want version 1 and key id %x", value[:2], id[0])
	}
	block, _ := aes.NewCipher(sealKey)
	gcm, _ := cipher.NewGCM(block)
	pt, err := gcm.Open(nil, value[2:14], value[14:], append(bytes.Clone(value[:2]), name...))
	if err != nil {
		t.Fatalf("AES-256-GCM with the documented key and additional data: %v", err)
	}
	want := binary.BigEndian.AppendUint64(nil, 1_900_000_000_123)
	want = binary.BigEndian.AppendUint64(want, 1_899_999_000_000)
	want = append(want, 6)
	want = append(want, "Bearer"...)
	want = binary.BigEndian.AppendUint32(want, uint32(len("access.token.value")))
	want = append(want, "access.token.value"...)
	if !bytes.Equal(pt, want) {
		t.Fatalf("plaintext %x, want %x", pt, want)
	}
}

// The pinned entry: key 32 x 0x5a, user token "user.token.value", the test tenant and scope,
// client ID shAPI, the public cloud; token "access.token.value", expiring at Unix ms
// 1,900,000,000,123, refresh at 1,899,999,000,000.
const (
	pinnedName  = "azcredkit:obo:v1:GzF888xbYDz4ZMSttkVRxV8hrniJw3m7LsmKq_-VGxg"
	pinnedValue = "01ec5de8b295887f3d2042fffbf9e780e866bc54934c3a4ba83f5de86ce6e380db4eac2d522b9fafa519a7a13902e1773da79306460ed5d5bec92ca129331f75b9e79e883c4c28c9d96688"
)

// TestParseSharedToken: the decrypted entry is parsed strictly.
func TestParseSharedToken(t *testing.T) {
	good := func() []byte {
		sc := newTestShared(t, newMemStore(t), testKey(1))
		v := sc.seal("n", azcore.AccessToken{Token: "abc", ExpiresOn: time.UnixMilli(2000), RefreshOn: time.UnixMilli(1000)})
		pt, err := sc.keys[0].aead.Open(nil, v[2:2+nonceSize], v[2+nonceSize:], additionalData(v[:2], "n"))
		if err != nil {
			t.Fatal(err)
		}
		return pt
	}
	if _, err := parseSharedToken(good()); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func([]byte) []byte{
		"empty":             func([]byte) []byte { return nil },
		"short":             func(b []byte) []byte { return b[:16] },
		"trailing byte":     func(b []byte) []byte { return append(b, 'x') },
		"missing byte":      func(b []byte) []byte { return b[:len(b)-1] },
		"other type":        func(b []byte) []byte { b[17] = 'b'; return b },
		"type length":       func(b []byte) []byte { b[16] = 200; return b },
		"zero expiry":       func(b []byte) []byte { clear(b[0:8]); return b },
		"negative expiry":   func(b []byte) []byte { b[0] = 0x80; return b },
		"refresh after exp": func(b []byte) []byte { b[8] = 0x7f; return b },
		"negative refresh":  func(b []byte) []byte { b[8] = 0x80; return b },
		"token length":      func(b []byte) []byte { b[17+6+3]++; return b },
		"control char":      func(b []byte) []byte { b[len(b)-1] = '\n'; return b },
		"space":             func(b []byte) []byte { b[len(b)-1] = ' '; return b },
		"non-ASCII":         func(b []byte) []byte { b[len(b)-1] = 0xc3; return b },
		"empty token":       func(b []byte) []byte { b = b[:17+6+4]; clear(b[17+6:]); return b },
	} {
		if tok, err := parseSharedToken(edit(good())); !errors.Is(err, errEntryParse) {
			t.Errorf("%s: got %+v, %v; want errEntryParse", name, tok, err)
		}
	}
}

// TestSharedUsable: the rules for taking a token from the shared cache.
func TestSharedUsable(t *testing.T) {
	now := time.Now()
	tok := func(s string, left time.Duration) azcore.AccessToken {
		return azcore.AccessToken{Token: s, ExpiresOn: now.Add(left)}
	}
	for _, tc := range []struct {
		name string
		l2   azcore.AccessToken
		cur  *azcore.AccessToken
		want bool
	}{
		{"an hour left, empty slot", tok("a", time.Hour), nil, true},
		{"expired", tok("a", -time.Second), nil, false},
		{"about to expire", tok("a", sharedMinLife-time.Second), nil, false},
		{"just enough", tok("a", sharedMinLife+time.Second), nil, true},
		{"claims to live too long", tok("a", sharedMaxLife+time.Hour), nil, false},
		{"the token the slot holds", tok("a", time.Hour), &azcore.AccessToken{Token: "a", ExpiresOn: now.Add(time.Hour)}, false},
		{"same token, later expiry (clock skew)", tok("a", time.Hour), &azcore.AccessToken{Token: "a", ExpiresOn: now.Add(time.Minute)}, false},
		{"an older token than the slot's", tok("b", 30*time.Minute), &azcore.AccessToken{Token: "a", ExpiresOn: now.Add(time.Hour)}, false},
		{"a newer token than the slot's", tok("b", time.Hour), &azcore.AccessToken{Token: "a", ExpiresOn: now.Add(4 * time.Minute)}, true},
		{"a newer token than an expired slot's", tok("b", time.Hour), &azcore.AccessToken{Token: "a", ExpiresOn: now.Add(-time.Minute)}, true},
	} {
		var cur azcore.AccessToken
		if tc.cur != nil {
			cur = *tc.cur
		}
		if got := usable(tc.l2, now, cur, tc.cur != nil); got != tc.want {
			t.Errorf("%s: usable %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestSharedBreaker: the breaker opens after the threshold of consecutive failures, lets one
// probe through after the cool-down, closes when it succeeds and opens again when it fails.
func TestSharedBreaker(t *testing.T) {
	b := breaker{threshold: 3, cooldown: time.Minute}
	t0 := time.Now()
	for i := range 2 {
		if !b.allow(t0) || b.failure(t0) {
			t.Fatalf("failure %d opened the breaker", i+1)
		}
	}
	if !b.allow(t0) || b.success() {
		t.Fatal("a success of a closed breaker closed it")
	}
	for range 2 {
		b.allow(t0)
		b.failure(t0)
	}
	b.allow(t0)
	if !b.failure(t0) {
		t.Fatal("the third consecutive failure did not open the breaker")
	}
	if b.allow(t0.Add(59 * time.Second)) {
		t.Fatal("a call allowed during the cool-down")
	}
	t1 := t0.Add(61 * time.Second)
	if !b.allow(t1) {
		t.Fatal("no probe after the cool-down")
	}
	if b.allow(t1) {
		t.Fatal("two probes at once")
	}
	if !b.failure(t1) {
		t.Fatal("a failed probe did not open the breaker again")
	}
	if b.allow(t1.Add(time.Second)) {
		t.Fatal("a call allowed after a failed probe")
	}
	t2 := t1.Add(2 * time.Minute)
	if !b.allow(t2) {
		t.Fatal("no probe after the second cool-down")
	}
	b.abandon()
	if !b.allow(t2) {
		t.Fatal("an abandoned probe kept the next one out")
	}
	if !b.success() {
		t.Fatal("a successful probe did not close the breaker")
	}
	for range 3 {
		if !b.allow(t2) {
			t.Fatal("the closed breaker refused calls")
		}
	}
}

// TestSharedWriterQueue: writes beyond MaxPendingWrites are dropped and counted, never block the
// request; the writer goroutine ends when idle and starts again with the next write.
func TestSharedWriterQueue(t *testing.T) {
	store := newMemStore(t)
	sc, err := newSharedCache(&AppOptions{SharedCache: store, SharedCacheKeys: [][]byte{testKey(1)}, SharedCacheOptions: SharedCacheOptions{MaxPendingWrites: 4}}, shAPI, "https://login.microsoftonline.com/")
	if err != nil {
		t.Fatal(err)
	}
	store.mode.Store(storeHang) // each write waits for its timeout (1 s)
	tok := azcore.AccessToken{Token: "t", ExpiresOn: time.Now().Add(time.Hour)}
	start := time.Now()
	for i := range 20 {
		sc.put(sc.entry(fmt.Sprint(i), tokencache.Key{}), tok, time.Now())
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("queuing 20 writes took %v", d)
	}
	// 4 writes are queued or being sent: 16 dropped.
	if n := sc.dropped.Load(); n != 16 {
		t.Errorf("%d writes dropped, want 16", n)
	}
	store.mode.Store(storeOK)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sc.w.flush(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for sc.w.running() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if sc.w.running() {
		t.Fatal("the writer goroutine did not end when idle")
	}
	sc.put(sc.entry("again", tokencache.Key{}), tok, time.Now())
	if err := sc.w.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if store.len() == 0 {
		t.Fatal("the writer did not start again")
	}
	// A token about to expire is not written.
	writes := sc.writes.Load()
	sc.put(sc.entry("short", tokencache.Key{}), azcore.AccessToken{Token: "t", ExpiresOn: time.Now().Add(sharedMinLife / 2)}, time.Now())
	if err := sc.w.flush(ctx); err != nil || sc.writes.Load() != writes {
		t.Fatal("a token about to expire was written")
	}
	// flush honours its context.
	store.mode.Store(storeHang)
	sc.put(sc.entry("slow", tokencache.Key{}), tok, time.Now())
	short, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if err := sc.w.flush(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("flush of a hung write: %v", err)
	}
	store.mode.Store(storeOK)
	if err := sc.w.flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// panicHandler is a slog handler that panics.
type panicHandler struct{ slog.Handler }

func (panicHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (panicHandler) Handle(context.Context, slog.Record) error { panic("a bug in the log handler") }

// TestSharedCacheLoggerPanic: a panicking log handler costs neither a token request nor the
// writer (whose goroutine no recover of the caller reaches).
func TestSharedCacheLoggerPanic(t *testing.T) {
	se := newSharedEnv(t)
	store := newMemStore(t)
	store.mode.Store(storeFail) // every call warns
	a := se.app(t, store, [][]byte{testKey(1)}, func(o *AppOptions) {
		o.Logger = slog.New(panicHandler{})
		o.SharedCacheOptions.FailureThreshold = 1000
	})
	_, _, ut := se.user(1)
	c, err := a.Credential(ut)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{shScope}}); err != nil {
		t.Fatalf("GetToken with a panicking logger: %v", err)
	}
	flush(t, a) // the write fails and warns on the writer's goroutine
}

// gateStore is a SharedCache whose writes wait: for `want` writes to be in flight at once (the
// writer sends in parallel), or for the deletion of their own entry (which must not overtake
// them). It records the order in which operations finish.
type gateStore struct {
	want     int
	mu       sync.Mutex
	inflight int
	most     int
	reached  bool
	enough   chan struct{} // closed when want writes are first in flight
	deleted  map[string]chan struct{}
	log      []string
}

func newGateStore(want int) *gateStore {
	return &gateStore{want: want, enough: make(chan struct{}), deleted: map[string]chan struct{}{}}
}

func (g *gateStore) deletedCh(key string) chan struct{} {
	c, ok := g.deleted[key]
	if !ok {
		c = make(chan struct{})
		g.deleted[key] = c
	}
	return c
}

func (g *gateStore) Get(context.Context, string) ([]byte, error) { return nil, nil }

func (g *gateStore) Set(ctx context.Context, key string, _ []byte, _ time.Time) error {
	g.mu.Lock()
	g.inflight++
	g.most = max(g.most, g.inflight)
	if g.inflight == g.want && !g.reached {
		g.reached = true
		close(g.enough)
	}
	del := g.deletedCh(key)
	g.mu.Unlock()
	// A window for a deletion of this entry that overtakes the write: it would finish first.
	window := time.NewTimer(200 * time.Millisecond)
	defer window.Stop()
	select {
	case <-g.enough:
	case <-del:
	case <-window.C:
	case <-ctx.Done():
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inflight--
	g.log = append(g.log, "set "+key)
	return nil
}

func (g *gateStore) Delete(_ context.Context, key string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c := g.deletedCh(key); !isDone(c) {
		close(c)
	}
	g.log = append(g.log, "del "+key)
	return nil
}

// TestSharedWriterParallel: the writer sends the writes of different entries in parallel (one
// goroutine fell seconds behind a burst of exchanges, and the other instances exchanged again what
// it had not written yet: TestFleet1000Users4Instances failed on loaded machines), and the jobs of
// one entry in order (a deletion after a claims challenge never overtakes the write before it).
func TestSharedWriterParallel(t *testing.T) {
	const want = 4
	g := newGateStore(want)
	sc, err := newSharedCache(&AppOptions{SharedCache: g, SharedCacheKeys: [][]byte{testKey(1)}}, shAPI, "https://login.microsoftonline.com/")
	if err != nil {
		t.Fatal(err)
	}
	tok := azcore.AccessToken{Token: "t", ExpiresOn: time.Now().Add(time.Hour)}
	for i := range 32 {
		sc.put(sc.entry(fmt.Sprint(i), tokencache.Key{}), tok, time.Now())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sc.w.flush(ctx); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	most := g.most
	g.mu.Unlock()
	if most < want {
		t.Errorf("at most %d writes in flight at once, want %d: the writer sends one after another", most, want)
	}
	if n := sc.writes.Load(); n != 32 {
		t.Errorf("%d writes, want 32", n)
	}

	// One entry: written, then deleted. The write waits for a deletion that would overtake it.
	g2 := newGateStore(1 << 30)
	sc2, err := newSharedCache(&AppOptions{SharedCache: g2, SharedCacheKeys: [][]byte{testKey(1)}}, shAPI, "https://login.microsoftonline.com/")
	if err != nil {
		t.Fatal(err)
	}
	e := sc2.entry("user", tokencache.Key{})
	sc2.put(e, tok, time.Now())
	sc2.remove(e)
	if err := sc2.w.flush(ctx); err != nil {
		t.Fatal(err)
	}
	g2.mu.Lock()
	defer g2.mu.Unlock()
	if got := strings.Join(g2.log, ", "); got != "set "+e.name(0)+", del "+e.name(0) {
		t.Errorf("operations in the order %q, want the write, then the deletion", got)
	}
}

// blockStore: Set blocks (ignoring ctx, like a command already on the wire) until release is
// closed, then stores; Delete is immediate.
type blockStore struct {
	release chan struct{}
	mu      sync.Mutex
	m       map[string]bool
	deleted chan struct{} // closed at the first Delete
	setDone chan struct{} // closed when the first Set has stored
	delOnce sync.Once
	setOnce sync.Once
}

func newBlockStore() *blockStore {
	return &blockStore{release: make(chan struct{}), m: map[string]bool{}, deleted: make(chan struct{}), setDone: make(chan struct{})}
}

func (s *blockStore) Get(context.Context, string) ([]byte, error) { return nil, nil }

func (s *blockStore) Set(_ context.Context, key string, _ []byte, _ time.Time) error {
	<-s.release
	s.mu.Lock()
	s.m[key] = true
	s.mu.Unlock()
	s.setOnce.Do(func() { close(s.setDone) })
	return nil
}

func (s *blockStore) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
	s.delOnce.Do(func() { close(s.deleted) })
	return nil
}

// TestSharedWriterUsesAllShards: the entries spread over all the writer's shards (taking the
// last character of a name, base64url of an HMAC, reached 6 of the 8, unevenly).
func TestSharedWriterUsesAllShards(t *testing.T) {
	store := newBlockStore()
	sc, err := newSharedCache(&AppOptions{SharedCache: store, SharedCacheKeys: [][]byte{testKey(1)}, SharedCacheOptions: SharedCacheOptions{MaxPendingWrites: 10000}}, shAPI, "https://login.microsoftonline.com/")
	if err != nil {
		t.Fatal(err)
	}
	tok := azcore.AccessToken{Token: "t", ExpiresOn: time.Now().Add(time.Hour)}
	for i := range 500 {
		sc.put(sc.entry(fmt.Sprint("user", i), tokencache.Key{}), tok, time.Now())
	}
	var used []int
	for i := range sc.w.queues {
		s := &sc.w.queues[i]
		s.mu.Lock()
		if s.running {
			used = append(used, i)
		}
		s.mu.Unlock()
	}
	close(store.release)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sc.w.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if len(used) != writerShards {
		t.Errorf("500 entries used shards %v only, want all %d", used, writerShards)
	}
}

// TestSharedWriterDeletionWaitsForUnfinishedWrite: a write that the writer stopped waiting for
// (1 s) but that the store is still on (a command already on the wire) is waited for before the
// entry's deletion is sent: otherwise the write lands last and the deleted token is back.
func TestSharedWriterDeletionWaitsForUnfinishedWrite(t *testing.T) {
	store := newBlockStore()
	sc, err := newSharedCache(&AppOptions{SharedCache: store, SharedCacheKeys: [][]byte{testKey(1)}}, shAPI, "https://login.microsoftonline.com/")
	if err != nil {
		t.Fatal(err)
	}
	tok := azcore.AccessToken{Token: "t", ExpiresOn: time.Now().Add(time.Hour)}
	e := sc.entry("user", tokencache.Key{})
	sc.put(e, tok, time.Now())
	sc.remove(e)
	deadline := time.Now().Add(10 * time.Second)
	for sc.failures.Load() == 0 { // the writer gives up on the write
		if time.Now().After(deadline) {
			t.Fatal("the write did not time out")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // room for a deletion that would overtake the write
	select {
	case <-store.deleted:
		t.Fatal("the deletion was sent while the write was still in the store")
	default:
	}
	close(store.release)
	<-store.setDone
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sc.w.flush(ctx); err != nil {
		t.Fatal(err)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if store.m[e.name(0)] {
		t.Error("the entry is in the store after put then remove: the deletion overtook the write")
	}
	if n := sc.deletes.Load(); n != 1 {
		t.Errorf("%d deletions, want 1", n)
	}
}
