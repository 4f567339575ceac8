package obo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/tokencache"
)

// Red-team tests of the shared cache (the second level, AppOptions.SharedCache) by an outsider who
// can read or write the store (a leaked Redis password, a Redis shared with other apps) but holds
// none of SharedCacheKeys. Each test says what the attack is and what must happen; the same
// attacks against a real Redis are in obo/rediscache/redteam_test.go.

// shOtherAPI is a second middle-tier app of the tenant, sharing the store and the keys.
const shOtherAPI = "b2b2b2b2-0000-0000-0000-0000000000b2"

// audOf returns the audience of an OBO token, verified with the emulator's key.
func (se *sharedEnv) audOf(t testing.TB, tok azcore.AccessToken) string {
	t.Helper()
	claims, err := se.e.Verify(tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	aud, _ := claims["aud"].(string)
	return aud
}

// TestRedTeamSharedEntryMovedAcrossRequests: an attacker with write access copies a user's valid
// entry (a Storage token) under the names of the same user's other requests: another scope, the
// CAE variant of the same scope, and the same user's request to another app (client ID) that
// shares the store and the keys. Every name is bound to the value as additional data, so each
// copy is an unreadable entry: a miss, one exchange, and the token of the request asked for.
func TestRedTeamSharedEntryMovedAcrossRequests(t *testing.T) {
	for _, target := range []string{"another scope", "CAE", "another app"} {
		t.Run(target, func(t *testing.T) {
			se := newSharedEnv(t)
			se.e.RegisterApp(shTenant, shOtherAPI).AddSecret(shSecret)
			store := newMemStore(t)
			keys := [][]byte{testKey(1)}
			writer := se.app(t, store, keys, nil)
			oid, _, ut := se.user(1)
			moved := getToken(t, writer, ut, shScope)
			flush(t, writer)
			src := writer.shared.entry(ut, tokencache.Key{Tenant: shTenant, Scopes: shScope}).name(0)
			v := store.snapshot()[src].v
			if v == nil {
				t.Fatal("no entry written")
			}

			reader := se.app(t, store, keys, nil)
			ut2, opts, wantAud := ut, policy.TokenRequestOptions{Scopes: []string{shScope}}, "https://storage.azure.com"
			var dst string
			switch target {
			case "another scope":
				opts.Scopes, wantAud = []string{shVault}, "https://vault.azure.net"
				dst = reader.shared.entry(ut, tokencache.Key{Tenant: shTenant, Scopes: shVault}).name(0)
			case "CAE":
				opts.EnableCAE = true
				dst = reader.shared.entry(ut, tokencache.Key{Tenant: shTenant, Scopes: shScope, CAE: true}).name(0)
			case "another app":
				var err error
				if reader, err = NewAppWithSecret(shTenant, shOtherAPI, shSecret, &AppOptions{ClientOptions: se.e.ClientOptions(), DisableInstanceDiscovery: true, SharedCache: store, SharedCacheKeys: keys}); err != nil {
					t.Fatal(err)
				}
				ut2 = se.e.UserToken(shTenant, oid, shOtherAPI, emulator.UserTokenOptions{})
				dst = reader.shared.entry(ut2, tokencache.Key{Tenant: shTenant, Scopes: shScope}).name(0)
			}
			if dst == src {
				t.Fatal("the two requests have the same name")
			}
			store.put(dst, v)

			c, err := reader.Credential(ut2)
			if err != nil {
				t.Fatal(err)
			}
			before := se.exchanges()
			tok, err := c.GetToken(context.Background(), opts)
			if err != nil {
				t.Fatalf("GetToken: %v", err)
			}
			if tok.Token == moved.Token {
				t.Fatal("the entry copied under another request's name was served")
			}
			if n := se.exchanges() - before; n != 1 {
				t.Fatalf("%d exchanges, want 1", n)
			}
			if got := se.audOf(t, tok); got != wantAud {
				t.Fatalf("a token for %s, want %s", got, wantAud)
			}
			if got := se.oidOf(t, tok); got != oid {
				t.Fatalf("a token of %s, want %s", got, oid)
			}
			if s := reader.SharedCacheStats(); s.Unreadable != 1 || s.Hits != 0 {
				t.Errorf("stats %+v, want 1 unreadable entry and no hit", s)
			}
		})
	}
}

// TestRedTeamSharedReplayedEntries: an attacker with write access puts back a value that was
// once stored under the same name (it decrypts: same name, same key): a token that has expired,
// or one about to expire. Neither is served: a miss and one exchange (no error).
func TestRedTeamSharedReplayedEntries(t *testing.T) {
	for _, tc := range []struct {
		name string
		left time.Duration
	}{
		{"expired", -time.Minute},
		{"about to expire", sharedMinLife / 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			se := newSharedEnv(t)
			store := newMemStore(t)
			keys := [][]byte{testKey(1)}
			a := se.app(t, store, keys, nil)
			_, _, ut := se.user(1)
			old := getToken(t, a, ut, shScope)
			flush(t, a)
			name := a.shared.entry(ut, tokencache.Key{Tenant: shTenant, Scopes: shScope}).name(0)
			// The value as the App wrote it when the token had tc.left to live.
			replayed := old
			replayed.ExpiresOn, replayed.RefreshOn = time.Now().Add(tc.left), time.Time{}
			store.put(name, a.shared.seal(name, replayed))

			b := se.app(t, store, keys, nil)
			before := se.exchanges()
			tok := getToken(t, b, ut, shScope)
			if tok.Token == old.Token {
				t.Fatal("the replayed token was served")
			}
			if n := se.exchanges() - before; n != 1 {
				t.Fatalf("%d exchanges, want 1", n)
			}
			if s := b.SharedCacheStats(); s.Hits != 0 || s.Misses != 1 {
				t.Errorf("stats %+v, want 1 miss", s)
			}
		})
	}
}

// collidingKeys returns n different 32-byte keys whose key ids are equal (one byte: two keys in
// 256 share one).
func collidingKeys(t *testing.T, n int) [][]byte {
	t.Helper()
	byID := map[byte][][]byte{}
	for i := 0; i < 1<<16; i++ {
		k := sha256.Sum256(fmt.Appendf(nil, "key %d", i))
		sk, err := deriveSharedKey(k[:])
		if err != nil {
			t.Fatal(err)
		}
		byID[sk.id] = append(byID[sk.id], k[:])
		if len(byID[sk.id]) == n {
			return byID[sk.id]
		}
	}
	t.Fatal("no colliding keys found")
	return nil
}

// TestRedTeamSharedKeyIDCollision: the key id is one byte, so two keys of a rotation may share
// it. An entry of either key is read by an App that has both (each key with that id is tried);
// an entry written with a third key of the same id (a removed key, or the attacker's) is an
// unreadable miss, never a token and never an error.
func TestRedTeamSharedKeyIDCollision(t *testing.T) {
	ks := collidingKeys(t, 3)
	both := newTestShared(t, newMemStore(t), ks[0], ks[1])
	tok := azcore.AccessToken{Token: "header.payload.signature", ExpiresOn: time.Now().Add(time.Hour)}
	for i, w := range []*sharedCache{newTestShared(t, newMemStore(t), ks[0]), newTestShared(t, newMemStore(t), ks[1])} {
		got, err := both.open("n", w.seal("n", tok))
		if err != nil || got.Token != tok.Token {
			t.Fatalf("an entry of key %d, read with both keys: %v", i, err)
		}
	}
	removed := newTestShared(t, newMemStore(t), ks[2])
	if _, err := both.open("n", removed.seal("n", tok)); !errors.Is(err, errEntryAuth) {
		t.Fatalf("an entry of a third key with the same id: %v, want errEntryAuth", err)
	}

	// Through the App: an entry written under the second key is read (rotation) by an App whose
	// first key has the same id.
	se := newSharedEnv(t)
	store := newMemStore(t)
	old := se.app(t, store, [][]byte{ks[1]}, nil)
	_, _, ut := se.user(1)
	want := getToken(t, old, ut, shScope)
	flush(t, old)
	rotated := se.app(t, store, [][]byte{ks[0], ks[1]}, nil)
	if getToken(t, rotated, ut, shScope).Token != want.Token || se.exchanges() != 1 {
		t.Fatalf("the entry of the second key was not read (%d exchanges)", se.exchanges())
	}
	// And the attacker's (or a removed key's) entry under that name is a miss.
	name := rotated.shared.entry(ut, tokencache.Key{Tenant: shTenant, Scopes: shScope}).name(0)
	flush(t, rotated)
	store.put(name, removed.seal(name, tok))
	third := se.app(t, store, [][]byte{ks[0], ks[1]}, nil)
	got := getToken(t, third, ut, shScope)
	if got.Token == tok.Token {
		t.Fatal("an entry of a key the App does not have was served")
	}
	if s := third.SharedCacheStats(); s.Unreadable != 1 {
		t.Errorf("stats %+v, want 1 unreadable entry", s)
	}
}

// TestRedTeamSharedDuplicateKeys: SharedCacheKeys holding one key twice (a rotation script that
// put the old key where the new one belongs) is a mistake the operator must hear of: the
// rotation they believe done has not happened, and every miss reads the same name twice within
// the time budget. The constructor refuses it, naming the positions, never the key.
func TestRedTeamSharedDuplicateKeys(t *testing.T) {
	se := newSharedEnv(t)
	k := testKey(3)
	for _, keys := range [][][]byte{{k, k}, {testKey(1), k, bytes.Clone(k)}} {
		_, err := NewAppWithSecret(shTenant, shAPI, shSecret, &AppOptions{ClientOptions: se.e.ClientOptions(), SharedCache: newMemStore(t), SharedCacheKeys: keys})
		if !errors.Is(err, assertion.ErrInvalidOptions) || !strings.Contains(err.Error(), "repeats") {
			t.Fatalf("keys %d: got %v, want ErrInvalidOptions saying that a key repeats another", len(keys), err)
		}
		if strings.Contains(err.Error(), string(k)) || strings.Contains(err.Error(), fmt.Sprintf("%x", k)) {
			t.Fatal("the error shows the key")
		}
	}
}

// TestRedTeamSharedNeverWritesUnreadableEntries: the App writes only entries that an App would
// read: a token too long for an entry (every read would refuse it by size, and every request of
// that user would write it again), or one claiming to live longer than any Entra token, is kept
// in the App's own cache only.
func TestRedTeamSharedNeverWritesUnreadableEntries(t *testing.T) {
	store := newMemStore(t)
	sc := newTestShared(t, store, testKey(1))
	now := time.Now()
	longest := maxSharedEntry - 2 - nonceSize - 16 - 8 - 8 - 1 - len(sharedTokenType) - 4
	for name, tok := range map[string]azcore.AccessToken{
		"too long":       {Token: strings.Repeat("a", longest+1), ExpiresOn: now.Add(time.Hour)},
		"lives too long": {Token: "a.b.c", ExpiresOn: now.Add(sharedMaxLife + time.Hour)},
	} {
		sc.put(sc.entry(name, tokencache.Key{}), tok, now)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sc.w.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := store.sets.Load(); n != 0 {
		t.Fatalf("%d entries written that no App would read", n)
	}
	// The longest token that fits is written and read back.
	fits := azcore.AccessToken{Token: strings.Repeat("a", longest), ExpiresOn: now.Add(time.Hour)}
	e := sc.entry("fits", tokencache.Key{})
	sc.put(e, fits, now)
	if err := sc.w.flush(ctx); err != nil {
		t.Fatal(err)
	}
	v := store.snapshot()[e.name(0)].v
	if got, err := sc.open(e.name(0), v); err != nil || got.Token != fits.Token {
		t.Fatalf("the longest token that fits: %v (%d bytes)", err, len(v))
	}
}

// TestRedTeamSharedHungStoreBoundsGoroutines: a store that never returns, whatever its context
// says (a client stuck on a dead connection), holds at most maxSharedInFlight goroutines of the
// App however many lookups are made, even with a breaker that never opens; the lookups beyond
// are skipped at once, and every goroutine ends when the store returns.
func TestRedTeamSharedHungStoreBoundsGoroutines(t *testing.T) {
	store := newMemStore(t)
	store.mode.Store(storeHangForever)
	sc, err := newSharedCache(&AppOptions{SharedCache: store, SharedCacheKeys: [][]byte{testKey(1)},
		SharedCacheOptions: SharedCacheOptions{Timeout: 5 * time.Millisecond, FailureThreshold: 1 << 30}}, shAPI, "https://login.microsoftonline.com/")
	if err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()
	var wg sync.WaitGroup
	start := time.Now()
	for w := range 16 {
		wg.Go(func() {
			for i := range 100 {
				sc.lookup(context.Background(), sc.entry(fmt.Sprint(w, "/", i), tokencache.Key{}), time.Now(), azcore.AccessToken{}, false)
			}
		})
	}
	wg.Wait()
	t.Logf("1,600 lookups against a hung store took %v", time.Since(start))
	if n := runtime.NumGoroutine() - base; n > maxSharedInFlight+4 {
		t.Fatalf("%d goroutines more than before, want at most %d", n, maxSharedInFlight)
	}
	if got := store.gets.Load(); got > maxSharedInFlight {
		t.Fatalf("%d calls reached the hung store, want at most %d", got, maxSharedInFlight)
	}
	if s := sc.skipped.Load(); s < 1600-maxSharedInFlight {
		t.Fatalf("%d lookups skipped, want at least %d", s, 1600-maxSharedInFlight)
	}
	store.unblock()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base+4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine() - base; n > 4 {
		t.Fatalf("%d goroutines left after the store returned", n)
	}
}

// echoStore is a store whose calls of one kind (op: GET, SET or DEL) fail with an error that
// echoes the command, the key with a prefix and the value, as a Redis server does for a command it
// does not know ("ERR unknown command 'SET', with args beginning with: ..."); the others succeed
// (and store nothing).
type echoStore struct{ op string }

func (s echoStore) Get(_ context.Context, key string) ([]byte, error) {
	if s.op == "GET" {
		return nil, fmt.Errorf("ERR unknown command 'GET', with args beginning with: 'myapp:%s'", key)
	}
	return nil, nil
}

func (s echoStore) Set(_ context.Context, key string, value []byte, _ time.Time) error {
	if s.op == "SET" {
		return fmt.Errorf("ERR unknown command 'SET', with args beginning with: 'myapp:%s' '%s'\nsecond line", key, value)
	}
	return nil
}

func (s echoStore) Delete(_ context.Context, key string) error {
	if s.op == "DEL" {
		return fmt.Errorf("ERR unknown command 'DEL', with args beginning with: 'myapp:%s'", key)
	}
	return nil
}

// TestRedTeamSharedLogsHoldNoNames: store errors that echo their arguments (key, value) reach the
// log only with the entry names removed: no user token, token or entry name, and each warning on
// one line. (An echoed value may appear, clipped: it is ciphertext, which the store holds anyway.)
func TestRedTeamSharedLogsHoldNoNames(t *testing.T) {
	for _, op := range []string{"GET", "SET", "DEL"} {
		t.Run(op, func(t *testing.T) {
			se := newSharedEnv(t)
			var logs syncBuffer
			a := se.app(t, echoStore{op}, [][]byte{testKey(1), testKey(2)}, func(o *AppOptions) {
				o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			})
			_, _, ut := se.user(1)
			tok := getToken(t, a, ut, shScope)
			flush(t, a)
			// A claims request deletes the entry under every name, then writes.
			c, err := a.Credential(ut)
			if err != nil {
				t.Fatal(err)
			}
			tok2, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{shScope}, Claims: `{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}`})
			if err != nil {
				t.Fatal(err)
			}
			flush(t, a)
			out := logs.String()
			if !strings.Contains(out, "unknown command '"+op+"'") {
				t.Fatalf("the store's error was not logged: %s", out)
			}
			e := a.shared.entry(ut, tokencache.Key{Tenant: shTenant, Scopes: shScope})
			for what, s := range map[string]string{"user token": ut, "token": tok.Token, "second token": tok2.Token, "name": e.name(0), "second key's name": e.name(1), "name hash": strings.TrimPrefix(e.name(0), sharedEntryPrefix)} {
				if strings.Contains(out, s) {
					t.Errorf("the log holds the %s", what)
				}
			}
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				if !strings.HasPrefix(line, "time=") {
					t.Errorf("a log record spans lines: %q", line)
				}
			}
		})
	}
}

// TestRedTeamSharedWriterClockAhead: the entries carry absolute expiry times, computed on the
// clock of the instance that obtained the token. An instance whose clock runs ahead (here by 10
// minutes) writes entries that claim to live 10 minutes longer than the token; another instance
// serves such a token after it has expired (its exp claim is in the past), where its own cache
// (expiry and clock from one machine) never would. The App's expiry margin (30 s) absorbs
// smaller skews only.
func TestRedTeamSharedWriterClockAhead(t *testing.T) {
	t.Skip("HOLE (low: needs a clock off by more than 30 s): an entry's expiry comes from the writer's clock; " +
		"a reader could cap it by the token's exp claim when the token is a JWT, and the store's own TTL (relative, " +
		"PTTL) would remove the dependency on the instances' clocks")
	se := newSharedEnv(t)
	store := newMemStore(t)
	keys := [][]byte{testKey(1)}
	a := se.app(t, store, keys, nil)
	_, _, ut := se.user(1)
	tok := getToken(t, a, ut, shScope)
	flush(t, a)
	claims, err := se.e.Verify(tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Unix(int64(claims["exp"].(float64)), 0)
	// What an instance 10 minutes ahead would have written.
	name := a.shared.entry(ut, tokencache.Key{Tenant: shTenant, Scopes: shScope}).name(0)
	skewed := tok
	skewed.ExpiresOn, skewed.RefreshOn = exp.Add(10*time.Minute), time.Time{}
	store.put(name, a.shared.seal(name, skewed))
	// A reader with the right clock, two minutes after the token expired.
	at := exp.Add(2 * time.Minute)
	if got, ok := a.shared.lookup(context.Background(), a.shared.entry(ut, tokencache.Key{Tenant: shTenant, Scopes: shScope}), at, azcore.AccessToken{}, false); ok {
		t.Fatalf("a token that expired at %v served at %v (entry says %v)", exp, at, got.ExpiresOn)
	}
}

// TestRedTeamSharedValueLengthRevealsTokenLength: a value is 57 bytes longer than its token, to
// the byte. An OBO token's length follows the user's name, upn and IP address claims, so an
// attacker who reads the store can tell entries of users with names of different lengths apart,
// follow one user's entries across refreshes, and guess which entry is whose.
func TestRedTeamSharedValueLengthRevealsTokenLength(t *testing.T) {
	t.Skip("HOLE (low, a privacy side channel): values are not padded; padding the plaintext to a multiple " +
		"of 256 bytes hides the length of names, at the cost of a format version (the pinned v1 format)")
	sc := newTestShared(t, newMemStore(t), testKey(1))
	exp := time.Now().Add(time.Hour)
	a := sc.seal("n", azcore.AccessToken{Token: strings.Repeat("a", 1500), ExpiresOn: exp})
	b := sc.seal("n", azcore.AccessToken{Token: strings.Repeat("a", 1517), ExpiresOn: exp})
	if len(a) != len(b) {
		t.Fatalf("tokens of 1,500 and 1,517 bytes give values of %d and %d bytes", len(a), len(b))
	}
}

// coldStore is a store whose calls wait, honouring their context, until a connection made at its
// first call is up (connect later): a new instance's first connection to a remote Redis.
type coldStore struct {
	SharedCache
	connect time.Duration
	once    sync.Once
	up      chan struct{}
}

func (c *coldStore) wait(ctx context.Context) error {
	c.once.Do(func() { time.AfterFunc(c.connect, func() { close(c.up) }) })
	select {
	case <-c.up:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *coldStore) Get(ctx context.Context, key string) ([]byte, error) {
	if err := c.wait(ctx); err != nil {
		return nil, err
	}
	return c.SharedCache.Get(ctx, key)
}

func (c *coldStore) Set(ctx context.Context, key string, value []byte, expiresAt time.Time) error {
	if err := c.wait(ctx); err != nil {
		return err
	}
	return c.SharedCache.Set(ctx, key, value, expiresAt)
}

// TestRedTeamSharedColdConnectionBurst: a new instance (a rolling restart) gets a burst of
// requests while its first connection to the store takes longer than the lookup budget (150 ms
// against 75 ms). Those lookups miss (the budget is the budget) and their timeouts open the
// breaker, but the calls go on, and the first one that succeeds closes it: the requests after
// the burst are served from the store, instead of every instance exchanging every user for a
// whole Cooldown (30 s) after each restart.
func TestRedTeamSharedColdConnectionBurst(t *testing.T) {
	se := newSharedEnv(t)
	store := newMemStore(t)
	keys := [][]byte{testKey(1)}
	warm := se.app(t, store, keys, nil)
	const users = 24
	uts := make([]string, users)
	for i := range uts {
		_, _, uts[i] = se.user(i)
		getToken(t, warm, uts[i], shScope)
	}
	flush(t, warm)
	before := se.exchanges()

	cs := &coldStore{SharedCache: store, connect: 150 * time.Millisecond, up: make(chan struct{})}
	cold := se.app(t, cs, keys, nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { getToken(t, cold, uts[i], shScope) })
	}
	wg.Wait()
	burst := se.exchanges() - before
	<-cs.up
	time.Sleep(50 * time.Millisecond) // the calls of the burst return
	for i := 8; i < users; i++ {
		getToken(t, cold, uts[i], shScope)
	}
	later := se.exchanges() - before - burst
	t.Logf("%d exchanges in the burst of 8, %d for the %d users after it; %+v", burst, later, users-8, cold.SharedCacheStats())
	if s := cold.SharedCacheStats(); s.BreakerTrips == 0 {
		t.Fatalf("the burst did not open the breaker (%+v): the test shows nothing", s)
	}
	if later > 0 {
		t.Errorf("%d of the %d users after the burst were exchanged although their tokens were in the store", later, users-8)
	}
}

// TestRedTeamSharedKeysNotRetained: the App derives its keys when it is made and keeps neither
// SharedCacheKeys nor its slices: a caller that clears its key material afterwards (as it should)
// changes nothing, and entries stay readable by Apps given the same key.
func TestRedTeamSharedKeysNotRetained(t *testing.T) {
	se := newSharedEnv(t)
	store := newMemStore(t)
	k := testKey(4)
	keys := [][]byte{bytes.Clone(k)}
	a := se.app(t, store, keys, nil)
	clear(keys[0])
	keys[0] = nil
	_, _, ut := se.user(1)
	tok := getToken(t, a, ut, shScope)
	flush(t, a)
	if got := getToken(t, se.app(t, store, [][]byte{k}, nil), ut, shScope); got.Token != tok.Token || se.exchanges() != 1 {
		t.Fatal("an App given the original key did not read the entry written after the caller cleared its copy")
	}
}
