package obo

import (
	"cmp"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/internal/metering"
	"github.com/azcredkit/azcredkit/internal/panics"
	"github.com/azcredkit/azcredkit/internal/safetext"
	"github.com/azcredkit/azcredkit/internal/tokencache"
	"github.com/azcredkit/azcredkit/metrics"
)

// SharedCache is a store shared by every instance of the app. obo hands it only encrypted
// entries under keys that reveal no token. Package obo/rediscache implements it with Redis.
//
// The App bounds every call itself (see SharedCacheOptions) and takes any error, a timeout or a
// panic as a miss: an implementation needs no retry of its own, and should honour ctx.
type SharedCache interface {
	// Get returns the value stored under key; nil and no error when there is none.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set stores value under key until expiresAt.
	Set(ctx context.Context, key string, value []byte, expiresAt time.Time) error
	// Delete removes key; no error when it is absent.
	Delete(ctx context.Context, key string) error
}

// SharedCacheOptions tune how an App uses AppOptions.SharedCache. The zero value is the default
// for every field.
type SharedCacheOptions struct {
	// Timeout bounds how long a token request that the App's own cache cannot answer waits for
	// the shared cache before it exchanges the user's token with Entra: all the reads of one
	// lookup together (the entry under the first key, then under the others). 0 means 75 ms.
	// Optional.
	Timeout time.Duration
	// FailureThreshold is how many consecutive failed calls (errors and timeouts) open the circuit
	// breaker: the App then stops calling the shared cache for Cooldown, and goes on with its own
	// cache and Entra. A call that the App stopped waiting for (a timeout) goes on for up to a
	// second, and closes the breaker when it succeeds (a slow first connection, not a failing
	// store). 0 means 5. Optional.
	FailureThreshold int
	// Cooldown is how long the open breaker keeps the App from calling the shared cache; after
	// it, one call probes the store, and the breaker closes when it succeeds. 0 means 30 s.
	// Optional.
	Cooldown time.Duration
	// MaxPendingWrites bounds the writes (and deletions) queued or being sent to the shared
	// cache by the App's writer (which sends up to 8 at once, those of one entry in order); a
	// write beyond it is dropped and counted (SharedCacheStats.Dropped).
	// 0 means 1,000. Optional.
	MaxPendingWrites int
}

// SharedCacheStats counts what an App did with its shared cache since it was created.
type SharedCacheStats struct {
	// Hits is the number of token requests answered from the shared cache (no exchange).
	Hits int64
	// Misses is the number of lookups that found no usable token and went on to Entra: no
	// entry, an entry that is unreadable or expires too soon, a failed call, or none made
	// (breaker open).
	Misses int64
	// Unreadable is the number of entries found that did not decrypt or parse: written with a
	// key this App does not have, tampered with, moved under another key, or of another format.
	// Each is a miss, never an error.
	Unreadable int64
	// Failures is the number of calls to the store that failed, timed out or panicked.
	Failures int64
	// Skipped is the number of calls not made because the breaker was open or too many calls
	// were already in flight.
	Skipped int64
	// Writes and Deletes are the entries written and deleted.
	Writes, Deletes int64
	// Dropped is the number of writes and deletions not done: the queue was full, the breaker
	// open, or the call failed.
	Dropped int64
	// BreakerTrips is how often the breaker opened.
	BreakerTrips int64
}

// Defaults of SharedCacheOptions and limits of the shared entries.
const (
	defaultSharedTimeout         = 75 * time.Millisecond
	defaultFailureThreshold      = 5
	defaultCooldown              = 30 * time.Second
	defaultMaxPendingWrites      = 1000
	sharedKeySize                = 32
	sharedEntryPrefix            = "azcredkit:obo:v1:" // versioned: another format gets other names
	sharedEntryVersion      byte = 1
	// sharedMinLife: a token with less than this left is neither written to the shared cache
	// nor taken from it.
	sharedMinLife = time.Minute
	// sharedMaxLife: an entry whose token claims to live longer than this is refused (Entra's
	// tokens live at most 28 hours, CAE tokens included).
	sharedMaxLife = 30 * time.Hour
	// maxSharedEntry bounds the entries read: larger ones are refused before decryption.
	maxSharedEntry = 64 << 10
	// maxSharedToken is the longest token whose entry fits in maxSharedEntry: the header, nonce
	// and GCM tag, and the plaintext's fields around the token (see seal).
	maxSharedToken = maxSharedEntry - (2 + nonceSize + 16 + 8 + 8 + 1 + len(sharedTokenType) + 4)
	// maxSharedInFlight bounds the calls to the store that have not returned: a store that hangs
	// despite its context holds at most this many goroutines.
	maxSharedInFlight = 128
	// sharedWriteTimeout bounds each write and deletion of the writer.
	sharedWriteTimeout = time.Second
	// sharedCallTimeout bounds each call to the store, which may outlive the lookup that waits
	// for it (see call).
	sharedCallTimeout = time.Second
	// warnEvery rate-limits the warnings of each kind.
	warnEvery = 10 * time.Second
	nonceSize = 12
	// sharedTokenType is the only token type stored: Entra's OBO tokens are bearer tokens.
	sharedTokenType = "Bearer"
)

// HKDF-SHA-256 info strings: one key per purpose, derived from each of AppOptions.SharedCacheKeys.
const (
	hkdfInfoNames = "azcredkit obo shared cache v1: entry names (HMAC-SHA-256)"
	hkdfInfoSeal  = "azcredkit obo shared cache v1: entry encryption (AES-256-GCM)"
	hkdfInfoID    = "azcredkit obo shared cache v1: key id"
)

// Errors of entries that cannot be used (each is a miss); they never hold the entry.
var (
	errEntrySize    = errors.New("the entry is too short or too long")
	errEntryVersion = errors.New("the entry is of another format version")
	errEntryKey     = errors.New("the entry was written with a key this App does not have (SharedCacheKeys)")
	errEntryAuth    = errors.New("the entry does not decrypt: tampered with, moved under another name, or written with another key that has the same key id")
	errEntryParse   = errors.New("the decrypted entry is malformed")
	errSkipped      = errors.New("not called: the breaker is open or too many calls are in flight")
)

// sharedKey is what one of SharedCacheKeys gives: a key id, an HMAC key for entry names, and an
// AEAD for entry values, each derived with HKDF-SHA-256 under its own info string. The key
// itself is not kept.
type sharedKey struct {
	id   byte
	name []byte
	aead cipher.AEAD
}

// sharedCache is the App's second level: AppOptions.SharedCache behind encryption, a time
// budget, a circuit breaker and an asynchronous writer.
type sharedCache struct {
	store     SharedCache
	keys      []sharedKey // keys[0] names and encrypts; all decrypt
	clientID  string
	authority string
	timeout   time.Duration
	logger    *slog.Logger
	meter     metering.Meter

	br       breaker
	inflight chan struct{} // a semaphore of maxSharedInFlight
	w        writer

	hits, misses, unreadable, failures, skipped, writes, deletes, dropped, trips atomic.Int64

	warnings [warnKinds]rateLimit
}

// newSharedCache validates the shared cache options and derives the keys; nil when o has no
// SharedCache (SharedCacheKeys and SharedCacheOptions are then ignored).
func newSharedCache(o *AppOptions, clientID, authority string) (*sharedCache, error) {
	if o.SharedCache == nil {
		return nil, nil
	}
	so := o.SharedCacheOptions
	switch {
	case len(o.SharedCacheKeys) == 0:
		return nil, fmt.Errorf("obo: %w: SharedCache is set but SharedCacheKeys is empty: give at least one %d-byte key (random, from a Key Vault secret for example) to encrypt the shared entries", assertion.ErrInvalidOptions, sharedKeySize)
	case so.Timeout < 0:
		return nil, fmt.Errorf("obo: %w: SharedCacheOptions.Timeout is %v; use 0 for the default (%v) or a positive duration", assertion.ErrInvalidOptions, so.Timeout, defaultSharedTimeout)
	case so.FailureThreshold < 0:
		return nil, fmt.Errorf("obo: %w: SharedCacheOptions.FailureThreshold is %d; use 0 for the default (%d) or a positive count", assertion.ErrInvalidOptions, so.FailureThreshold, defaultFailureThreshold)
	case so.Cooldown < 0:
		return nil, fmt.Errorf("obo: %w: SharedCacheOptions.Cooldown is %v; use 0 for the default (%v) or a positive duration", assertion.ErrInvalidOptions, so.Cooldown, defaultCooldown)
	case so.MaxPendingWrites < 0:
		return nil, fmt.Errorf("obo: %w: SharedCacheOptions.MaxPendingWrites is %d; use 0 for the default (%d) or a positive bound", assertion.ErrInvalidOptions, so.MaxPendingWrites, defaultMaxPendingWrites)
	}
	keys := make([]sharedKey, len(o.SharedCacheKeys))
	for i, k := range o.SharedCacheKeys {
		if len(k) != sharedKeySize {
			return nil, fmt.Errorf("obo: %w: SharedCacheKeys[%d] is %d bytes; each key must be %d bytes (AES-256)", assertion.ErrInvalidOptions, i, len(k), sharedKeySize)
		}
		// A key given twice is a rotation gone wrong (the old key where the new belongs): say so
		// rather than read every name twice.
		for j := range i {
			if hmac.Equal(k, o.SharedCacheKeys[j]) {
				return nil, fmt.Errorf("obo: %w: SharedCacheKeys[%d] repeats SharedCacheKeys[%d]; give each key once (the new key first during a rotation)", assertion.ErrInvalidOptions, i, j)
			}
		}
		var err error
		if keys[i], err = deriveSharedKey(k); err != nil {
			return nil, fmt.Errorf("obo: SharedCacheKeys[%d]: %w", i, err)
		}
	}
	sc := &sharedCache{
		store:     o.SharedCache,
		keys:      keys,
		clientID:  clientID,
		authority: authority,
		timeout:   cmp.Or(so.Timeout, defaultSharedTimeout),
		logger:    o.Logger,
		meter:     metering.Meter{R: o.Metrics, Credential: credName},
		inflight:  make(chan struct{}, maxSharedInFlight),
	}
	sc.br = breaker{threshold: int64(cmp.Or(so.FailureThreshold, defaultFailureThreshold)), cooldown: cmp.Or(so.Cooldown, defaultCooldown)}
	sc.w.max = int64(cmp.Or(so.MaxPendingWrites, defaultMaxPendingWrites))
	sc.w.sc = sc
	return sc, nil
}

// deriveSharedKey derives the key id, the name key and the encryption key of one shared cache key.
func deriveSharedKey(k []byte) (sharedKey, error) {
	name, err := hkdf.Key(sha256.New, k, nil, hkdfInfoNames, 32)
	if err != nil {
		return sharedKey{}, err
	}
	seal, err := hkdf.Key(sha256.New, k, nil, hkdfInfoSeal, 32)
	if err != nil {
		return sharedKey{}, err
	}
	id, err := hkdf.Key(sha256.New, k, nil, hkdfInfoID, 1)
	if err != nil {
		return sharedKey{}, err
	}
	block, err := aes.NewCipher(seal)
	if err != nil {
		return sharedKey{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return sharedKey{}, err
	}
	return sharedKey{id: id[0], name: name, aead: aead}, nil
}

// sharedEntry names one token (user token, tenant, scopes, CAE) in the shared cache: one name per
// key, computed when first needed.
type sharedEntry struct {
	sc        *sharedCache
	userToken string
	key       tokencache.Key
	names     []string
}

func (sc *sharedCache) entry(userToken string, k tokencache.Key) *sharedEntry {
	return &sharedEntry{sc: sc, userToken: userToken, key: k, names: make([]string, len(sc.keys))}
}

// name is the entry's name under key i: a versioned prefix and the base64url HMAC-SHA-256, under
// the key's name key, of the length-prefixed user token, tenant, scopes, CAE, client ID and
// authority host. It reveals nothing of them: no token, no user identifier.
func (e *sharedEntry) name(i int) string {
	if e.names[i] == "" {
		m := hmac.New(sha256.New, e.sc.keys[i].name)
		var buf [4]byte
		field := func(s string) {
			binary.BigEndian.PutUint32(buf[:], uint32(len(s)))
			m.Write(buf[:])
			m.Write([]byte(s))
		}
		field(e.userToken)
		field(e.key.Tenant)
		field(e.key.Scopes)
		if e.key.CAE {
			m.Write([]byte{1})
		} else {
			m.Write([]byte{0})
		}
		field(e.sc.clientID)
		field(e.sc.authority)
		e.names[i] = sharedEntryPrefix + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	return e.names[i]
}

// seal encrypts tok for the entry name with the first key. The value is
//
//	version (1) | key id (1) | nonce (12) | AES-256-GCM(plaintext) with additional data version | key id | name
//
// and the plaintext
//
//	expires on (int64 Unix ms) | refresh on (int64 Unix ms, 0: none) | token type length (1) |
//	token type | access token length (uint32) | access token
//
// all big-endian. A fresh random nonce per write; the name bound as additional data, so that a
// value copied under another name does not decrypt.
func (sc *sharedCache) seal(name string, tok azcore.AccessToken) []byte {
	k := &sc.keys[0]
	pt := make([]byte, 0, 8+8+1+len(sharedTokenType)+4+len(tok.Token))
	pt = binary.BigEndian.AppendUint64(pt, uint64(tok.ExpiresOn.UnixMilli()))
	var ro int64
	if !tok.RefreshOn.IsZero() {
		ro = tok.RefreshOn.UnixMilli()
	}
	pt = binary.BigEndian.AppendUint64(pt, uint64(ro))
	pt = append(pt, byte(len(sharedTokenType)))
	pt = append(pt, sharedTokenType...)
	pt = binary.BigEndian.AppendUint32(pt, uint32(len(tok.Token)))
	pt = append(pt, tok.Token...)

	var nonce [nonceSize]byte
	_, _ = rand.Read(nonce[:]) // never fails (crypto/rand)
	out := make([]byte, 2, 2+nonceSize+len(pt)+k.aead.Overhead())
	out[0], out[1] = sharedEntryVersion, k.id
	out = append(out, nonce[:]...)
	out = k.aead.Seal(out, nonce[:], pt, additionalData(out[:2], name))
	clear(pt)
	return out
}

// additionalData is the header of a value followed by the entry's name.
func additionalData(header []byte, name string) []byte {
	ad := make([]byte, 0, 2+len(name))
	ad = append(ad, header...)
	return append(ad, name...)
}

// open decrypts and parses the value stored under name. Every failure is one of the errEntry
// errors; none holds any part of the value.
func (sc *sharedCache) open(name string, v []byte) (azcore.AccessToken, error) {
	if len(v) > maxSharedEntry || len(v) < 2+nonceSize+16 {
		return azcore.AccessToken{}, errEntrySize
	}
	if v[0] != sharedEntryVersion {
		return azcore.AccessToken{}, errEntryVersion
	}
	ad := additionalData(v[:2], name)
	err := errEntryKey
	for i := range sc.keys {
		k := &sc.keys[i]
		if k.id != v[1] {
			continue
		}
		pt, oerr := k.aead.Open(nil, v[2:2+nonceSize], v[2+nonceSize:], ad)
		if oerr != nil {
			err = errEntryAuth // another key may share the id: try it
			continue
		}
		tok, perr := parseSharedToken(pt)
		clear(pt)
		return tok, perr
	}
	return azcore.AccessToken{}, err
}

// parseSharedToken parses a decrypted entry (see seal), strictly: exact lengths, the token type
// Bearer, a token of printable ASCII, a refresh time not after the expiry.
func parseSharedToken(pt []byte) (azcore.AccessToken, error) {
	if len(pt) < 17 {
		return azcore.AccessToken{}, errEntryParse
	}
	exp := int64(binary.BigEndian.Uint64(pt[0:8]))
	ro := int64(binary.BigEndian.Uint64(pt[8:16]))
	tl := int(pt[16])
	rest := pt[17:]
	if tl > len(rest) || string(rest[:tl]) != sharedTokenType {
		return azcore.AccessToken{}, errEntryParse
	}
	rest = rest[tl:]
	if len(rest) < 4 {
		return azcore.AccessToken{}, errEntryParse
	}
	n := binary.BigEndian.Uint32(rest[:4])
	rest = rest[4:]
	if n == 0 || uint64(n) != uint64(len(rest)) {
		return azcore.AccessToken{}, errEntryParse
	}
	for _, c := range rest {
		if c < 0x21 || c > 0x7e {
			return azcore.AccessToken{}, errEntryParse
		}
	}
	if exp <= 0 || ro < 0 || ro > exp {
		return azcore.AccessToken{}, errEntryParse
	}
	tok := azcore.AccessToken{Token: string(rest), ExpiresOn: time.UnixMilli(exp)}
	if ro > 0 {
		tok.RefreshOn = time.UnixMilli(ro)
	}
	return tok, nil
}

// usable reports whether tok, found in the shared cache at now, may serve a request: it has at
// least sharedMinLife left (and claims no more than sharedMaxLife), and when the slot already
// holds a token (a refresh of a stale or expired one), it is another token that expires later.
// So a refresh takes a token that another instance has already refreshed, and otherwise goes to
// Entra: the shared entry is then the token this slot holds, or an older one.
func usable(tok azcore.AccessToken, now time.Time, cur azcore.AccessToken, held bool) bool {
	left := tok.ExpiresOn.Sub(now)
	if left < sharedMinLife || left > sharedMaxLife {
		return false
	}
	return !held || (tok.Token != cur.Token && tok.ExpiresOn.After(cur.ExpiresOn))
}

// fetch wraps the exchange of a token request: a lookup in the shared cache first (unless the
// request carries claims), then the exchange, whose token is written to the shared cache; an
// interaction-required answer deletes the entry. It runs inside the Slot's shared fetch, so the
// concurrent callers of this instance share one lookup and, on a miss, one exchange.
func (sc *sharedCache) fetch(s *tokencache.Slot, userToken string, k tokencache.Key, claims bool, now func() time.Time, exchange tokencache.Fetch) tokencache.Fetch {
	return func(ctx context.Context) (azcore.AccessToken, error) {
		e := sc.entry(userToken, k)
		if claims {
			// A claims challenge was raised against a token this entry may hold: no instance
			// should serve it any more.
			sc.remove(e)
		} else {
			cur, held := s.Current()
			if tok, ok := sc.lookup(ctx, e, now(), cur, held); ok {
				tokencache.MarkShared(ctx)
				return tok, nil
			}
		}
		tok, err := exchange(ctx)
		switch {
		case err == nil:
			sc.put(e, tok, now())
		case !claims: // a claims request has deleted the entry already
			if _, ok := fromEntra(err, nil).(*InteractionRequiredError); ok {
				sc.remove(e)
			}
		}
		return tok, err
	}
}

// lookup reads the entry under the first key's name, then under the other keys' names, within
// the Timeout budget; a usable token found under another key's name is written again under the
// first key's.
func (sc *sharedCache) lookup(ctx context.Context, e *sharedEntry, now time.Time, cur azcore.AccessToken, held bool) (_ azcore.AccessToken, hit bool) {
	ctx, cancel := context.WithTimeout(ctx, sc.timeout)
	defer cancel()
	failed := false
	if sc.meter.R != nil {
		start := time.Now()
		defer func() {
			out := metrics.Miss
			switch {
			case hit:
				out = metrics.Hit
			case failed:
				out = metrics.Failure
			}
			sc.meter.Record(ctx, metrics.SharedCacheDuration, time.Since(start).Seconds(), out)
		}()
	}
	for i := range sc.keys {
		name := e.name(i)
		v, err := sc.call(ctx, name, func(ctx context.Context) ([]byte, error) { return sc.store.Get(ctx, name) })
		if err != nil {
			failed = !errors.Is(err, errSkipped)
			break
		}
		if v == nil {
			continue
		}
		tok, err := sc.open(name, v)
		if err != nil {
			sc.unreadable.Add(1)
			sc.meter.Add(ctx, metrics.SharedCacheErrors, metrics.SourceShared, metrics.Unreadable)
			sc.warn(warnUnreadable, "an entry of the shared token cache is unreadable; it counts as a miss (a key missing from SharedCacheKeys, or an entry tampered with)", err)
			continue
		}
		if !usable(tok, now, cur, held) {
			continue
		}
		if i > 0 {
			sc.put(e, tok, now) // written again under the first key: rotation
		}
		sc.hits.Add(1)
		return tok, true
	}
	sc.misses.Add(1)
	return azcore.AccessToken{}, false
}

// put queues the write of tok under the entry's first name, unless no App would take the entry
// (see usable and open): the token expires too soon, claims to live too long, or is too long.
func (sc *sharedCache) put(e *sharedEntry, tok azcore.AccessToken, now time.Time) {
	if left := tok.ExpiresOn.Sub(now); left < sharedMinLife || left > sharedMaxLife || len(tok.Token) > maxSharedToken {
		return
	}
	sc.w.enqueue(writeJob{name: e.name(0), tok: tok})
}

// remove queues the deletion of the entry under every key's name.
func (sc *sharedCache) remove(e *sharedEntry) {
	for i := range sc.keys {
		sc.w.enqueue(writeJob{name: e.name(i), del: true})
	}
}

// call runs fn against the store, waiting for it within ctx: not at all when the breaker is open
// or too many calls are in flight (errSkipped), else on a goroutine of its own so that a store
// that ignores its context cannot hold the caller beyond ctx (the goroutine ends when the store
// returns; at most maxSharedInFlight of them exist). Errors, timeouts and panics count as
// failures for the breaker.
//
// fn itself runs within sharedCallTimeout, not ctx: a call slower than the lookup budget (the
// first connection of a new instance: TCP, TLS, authentication) goes on after the caller has
// stopped waiting, and when it succeeds it closes the breaker that the caller's timeout counted
// toward, so that a burst of requests on a cold connection does not keep the store out for a
// whole Cooldown.
func (sc *sharedCache) call(ctx context.Context, name string, fn func(context.Context) ([]byte, error)) ([]byte, error) {
	if !sc.br.allow(time.Now()) {
		sc.skipped.Add(1)
		return nil, errSkipped
	}
	select {
	case sc.inflight <- struct{}{}:
	default:
		sc.br.abandon()
		sc.skipped.Add(1)
		return nil, errSkipped
	}
	type result struct {
		v   []byte
		err error
	}
	done := make(chan result, 1)
	// Who has the call's outcome: the caller (taken) or, once it stopped waiting, no one
	// (abandoned); decided once.
	const pending, taken, abandoned = 0, 1, 2
	var state atomic.Int32
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedCallTimeout)
	go func() {
		defer func() { <-sc.inflight }()
		defer cancel()
		var r result
		func() {
			defer panics.Recover("the SharedCache "+panics.TypeName(sc.store), &r.err)
			r.v, r.err = fn(cctx)
		}()
		if state.CompareAndSwap(pending, taken) {
			done <- r
			return
		}
		// The caller timed out (a failure); a late answer shows that the store works.
		if r.err == nil && sc.br.success() {
			sc.warn(warnRecovered, "the shared token cache answers again", nil)
		}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		if state.CompareAndSwap(pending, abandoned) {
			r.err = fmt.Errorf("no answer in time: %w", context.Cause(ctx))
		} else {
			r = <-done // the answer came with the deadline: take it
		}
	}
	if r.err != nil {
		sc.failures.Add(1)
		sc.meter.Add(ctx, metrics.SharedCacheErrors, metrics.SourceShared, metrics.Failure)
		if sc.br.failure(time.Now()) {
			sc.trips.Add(1)
			sc.meter.Set(ctx, metrics.SharedCacheBreakerOpen, 1)
			sc.warn(warnBreaker, fmt.Sprintf("the shared token cache keeps failing: not calling it for %v (the App goes on with its own cache and Entra)", sc.br.cooldown), r.err, name)
		} else {
			sc.warn(warnFailure, "a call to the shared token cache failed; the App goes on with its own cache and Entra", r.err, name)
		}
		return nil, r.err
	}
	if sc.br.success() {
		sc.meter.Set(ctx, metrics.SharedCacheBreakerOpen, 0)
		sc.warn(warnRecovered, "the shared token cache answers again", nil)
	}
	return r.v, nil
}

// Warnings, each kind rate-limited to one per warnEvery.
const (
	warnFailure = iota
	warnBreaker
	warnRecovered
	warnUnreadable
	warnDropped
	warnKinds
)

type rateLimit struct {
	next       atomic.Int64 // Unix ns before which this kind is not logged
	suppressed atomic.Int64
}

// warn logs msg and err (its text clipped, with the entry names replaced) at most once per
// warnEvery per kind, with the number of warnings suppressed since the last one. Never a token,
// a key or a value: the store's error is the only outside text, and names are removed from it.
func (sc *sharedCache) warn(kind int, msg string, err error, names ...string) {
	if sc.logger == nil {
		return
	}
	rl := &sc.warnings[kind]
	now := time.Now().UnixNano()
	next := rl.next.Load()
	if now < next || !rl.next.CompareAndSwap(next, now+int64(warnEvery)) {
		rl.suppressed.Add(1)
		return
	}
	// A panic in the user's slog handler must not take a token request or the writer with it.
	defer func() { _ = recover() }()
	level := slog.LevelWarn
	if kind == warnRecovered {
		level = slog.LevelInfo
	}
	attrs := []slog.Attr{slog.String("credential", credName), slog.String("client_id", sc.clientID)}
	if err != nil {
		attrs = append(attrs, slog.String("error", scrub(err, names)))
	}
	if n := rl.suppressed.Swap(0); n > 0 {
		attrs = append(attrs, slog.Int64("suppressed", n))
	}
	sc.logger.LogAttrs(context.Background(), level, msg, attrs...)
}

// scrub is err's text, clipped, without the entry names (an adapter may put its key in errors;
// names reveal nothing, but logs need not hold them either).
func scrub(err error, names []string) (s string) {
	defer func() {
		if recover() != nil {
			s = "(the error's Error method panicked)"
		}
	}()
	s = err.Error()
	for _, n := range names {
		if n != "" {
			s = strings.ReplaceAll(s, n, "<entry>")
		}
	}
	return safetext.Clip(s, 300)
}

// breaker is a consecutive-failure circuit breaker: closed, open until a time, then half-open
// (one probe call at a time) until a call succeeds (closed) or fails (open again).
type breaker struct {
	threshold int64
	cooldown  time.Duration

	failures  atomic.Int64
	openUntil atomic.Int64 // Unix ns; 0 when closed
	probing   atomic.Bool
}

// allow reports whether a call may be made at now; in the half-open state, only one at a time.
// Every allowed call must be followed by success, failure or abandon.
func (b *breaker) allow(now time.Time) bool {
	u := b.openUntil.Load()
	if u == 0 {
		return true
	}
	if now.UnixNano() < u {
		return false
	}
	return b.probing.CompareAndSwap(false, true)
}

// success records a call that succeeded; true when it closed an open breaker.
func (b *breaker) success() bool {
	b.failures.Store(0)
	b.probing.Store(false)
	return b.openUntil.Swap(0) != 0
}

// failure records a failed call at now; true when it opened the breaker (from closed, or from
// half-open after a failed probe).
func (b *breaker) failure(now time.Time) bool {
	n := b.failures.Add(1)
	wasOpen := b.openUntil.Load() != 0
	if b.probing.CompareAndSwap(true, false) || (!wasOpen && n >= b.threshold) {
		b.openUntil.Store(now.Add(b.cooldown).UnixNano())
		return true
	}
	return false
}

// abandon records an allowed call that was not made.
func (b *breaker) abandon() { b.probing.Store(false) }

// writeJob is one write (or, with del, deletion) for the writer.
type writeJob struct {
	name string
	tok  azcore.AccessToken
	del  bool
}

// writer sends the writes and deletions of an App to the store from a bounded queue, in
// writerShards shards: an entry's jobs always go to the same shard, which sends them one at a
// time and in order (a deletion never overtakes the write it follows, even one the writer
// stopped waiting for: see orderWait), while the shards send in parallel, so a burst of
// exchanges reaches the other instances in milliseconds rather than one round trip after
// another (measured: one goroutine fell 5.7 s behind 32 busy callers on 2 loaded cores, and the
// other instances exchanged again what it had not written yet). A shard's goroutine starts with
// a job and ends as soon as its queue is empty, so that an App needs no Close and leaves no
// goroutine behind.
type writer struct {
	sc      *sharedCache
	max     int64 // of pending
	queues  [writerShards]writeQueue
	pending atomic.Int64 // queued or being sent, in all shards
	mu      sync.Mutex
	idle    *sync.Cond // broadcast when pending falls to 0
}

// writeQueue is one shard of the writer and the state of its goroutine.
type writeQueue struct {
	mu      sync.Mutex
	jobs    []writeJob
	running bool
	// unfinished holds, for the shard's goroutine alone, the calls it stopped waiting for that
	// the store has not returned from: the entry's next job waits for them (see orderWait).
	unfinished map[string]chan struct{}
}

// orderWait bounds how long an entry's job waits for a call to the store that the writer
// stopped waiting for (a write that timed out but may still land): a deletion must not overtake
// the write before it, or the deleted token comes back. A store that honours its context returns
// within sharedCallTimeout; one that does not is waited for this long, then overtaken.
const orderWait = 10 * time.Second

// writerShards is the number of the writer's queues, each sent by one goroutine at most.
const writerShards = 8

// enqueue adds j to its shard's queue, or drops it when max jobs are pending already.
func (w *writer) enqueue(j writeJob) {
	if w.pending.Add(1) > w.max {
		w.done()
		w.sc.dropped.Add(1)
		w.sc.meter.Add(context.Background(), metrics.SharedCacheErrors, metrics.SourceShared, metrics.Dropped)
		w.sc.warn(warnDropped, "the shared token cache's write queue is full: a write was dropped (SharedCacheOptions.MaxPendingWrites)", nil)
		return
	}
	s := &w.queues[maphash.String(shardSeed, j.name)%writerShards]
	s.mu.Lock()
	s.jobs = append(s.jobs, j)
	start := !s.running
	s.running = true
	s.mu.Unlock()
	if start {
		go w.run(s)
	}
}

// run sends s's jobs until its queue is empty.
func (w *writer) run(s *writeQueue) {
	for {
		s.mu.Lock()
		if len(s.jobs) == 0 {
			s.jobs = nil // the backing array of a burst goes with it
			s.running = false
			s.mu.Unlock()
			return
		}
		j := s.jobs[0]
		s.jobs[0] = writeJob{}
		s.jobs = s.jobs[1:]
		s.mu.Unlock()
		if c, ok := s.unfinished[j.name]; ok {
			delete(s.unfinished, j.name)
			wait := time.NewTimer(orderWait)
			select {
			case <-c:
			case <-wait.C:
			}
			wait.Stop()
		}
		if c := w.send(j); c != nil {
			if s.unfinished == nil {
				s.unfinished = map[string]chan struct{}{}
			}
			s.unfinished[j.name] = c
			for n, c := range s.unfinished { // at most maxSharedInFlight are not closed
				if isDone(c) {
					delete(s.unfinished, n)
				}
			}
		}
		w.done()
	}
}

// shardSeed spreads the names over the writer's shards.
var shardSeed = maphash.MakeSeed()

func isDone(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// running reports whether any shard's goroutine runs.
func (w *writer) running() bool {
	for i := range w.queues {
		s := &w.queues[i]
		s.mu.Lock()
		r := s.running
		s.mu.Unlock()
		if r {
			return true
		}
	}
	return false
}

// send writes or deletes one entry within sharedWriteTimeout. When it stopped waiting for the
// store, which has not returned yet, it returns a channel closed when the store returns.
func (w *writer) send(j writeJob) (unfinished chan struct{}) {
	sc := w.sc
	ctx, cancel := context.WithTimeout(context.Background(), sharedWriteTimeout)
	defer cancel()
	fin := make(chan struct{})
	var err error
	if j.del {
		_, err = sc.call(ctx, j.name, func(ctx context.Context) ([]byte, error) {
			defer close(fin)
			return nil, sc.store.Delete(ctx, j.name)
		})
	} else {
		v := sc.seal(j.name, j.tok)
		_, err = sc.call(ctx, j.name, func(ctx context.Context) ([]byte, error) {
			defer close(fin)
			return nil, sc.store.Set(ctx, j.name, v, j.tok.ExpiresOn)
		})
	}
	if err != nil && !errors.Is(err, errSkipped) && !isDone(fin) {
		unfinished = fin // the store got the call and is still on it
	}
	switch {
	case err != nil:
		sc.dropped.Add(1)
		sc.meter.Add(ctx, metrics.SharedCacheErrors, metrics.SourceShared, metrics.Dropped)
	case j.del:
		sc.deletes.Add(1)
	default:
		sc.writes.Add(1)
	}
	return unfinished
}

func (w *writer) done() {
	if w.pending.Add(-1) == 0 {
		w.mu.Lock()
		if w.idle != nil {
			w.idle.Broadcast()
		}
		w.mu.Unlock()
	}
}

// flush waits until no write is queued or being sent, or ctx ends.
func (w *writer) flush(ctx context.Context) error {
	w.mu.Lock()
	if w.idle == nil {
		w.idle = sync.NewCond(&w.mu)
	}
	w.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.idle.Broadcast()
		w.mu.Unlock()
	})
	defer stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.pending.Load() > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		w.idle.Wait()
	}
	return nil
}

// SharedCacheStats returns what the App did with AppOptions.SharedCache so far (all zero without
// one).
func (a *App) SharedCacheStats() SharedCacheStats {
	sc := a.shared
	if sc == nil {
		return SharedCacheStats{}
	}
	return SharedCacheStats{
		Hits: sc.hits.Load(), Misses: sc.misses.Load(), Unreadable: sc.unreadable.Load(),
		Failures: sc.failures.Load(), Skipped: sc.skipped.Load(), Writes: sc.writes.Load(),
		Deletes: sc.deletes.Load(), Dropped: sc.dropped.Load(), BreakerTrips: sc.trips.Load(),
	}
}

// FlushSharedCache waits until the writes to AppOptions.SharedCache queued so far have been sent
// (or dropped), or ctx ends: call it before a graceful shutdown, so that the tokens this
// instance obtained last serve the instances that replace it. Writes are otherwise sent in the
// background; an App needs no Close. It returns ctx's error when ctx ended first, else nil.
func (a *App) FlushSharedCache(ctx context.Context) error {
	if a.shared == nil {
		return nil
	}
	return a.shared.w.flush(ctx)
}
