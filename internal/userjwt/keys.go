package userjwt

import (
	"container/list"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/azcredkit/azcredkit/internal/safetext"
)

// The key cache. go-jose decodes a JWK set and verifies with a key, but fetches and caches
// nothing, and the key sets that do (go-oidc's RemoteKeySet, jwx's jwk.Cache) have no bound on
// refetches caused by unknown kids, no per-tenant discovery and no tenant bound: so the policy
// is ours, on top of go-jose's JWK decoding, x/sync's singleflight and x/time's rate limiter.
//
// Policy, per tenant (keyed by the token's tid, which is checked to be an allowed GUID first):
//   - The first use fetches {authority}/{tid}/v2.0/.well-known/openid-configuration (issuer,
//     jwks_uri) and the jwks_uri document, once for all concurrent callers (singleflight).
//   - A kid that is not in the keys fetches the keys again at once the first time, then at most
//     once per RefetchInterval: tokens with random kids cannot turn the app into a JWKS flood.
//   - Keys are fetched again after KeysMaxAge.
//   - A failed fetch keeps the keys already fetched (they go on verifying tokens) and backs off
//     (1 s, doubling, at most 30 s) before the next attempt; with no keys ever fetched, tokens of
//     the tenant are refused (fail closed).
//   - Every fetch goes through the azcore pipeline of the App's ClientOptions (transport,
//     retries, cloud), is bounded by FetchTimeout and reads at most maxDocument bytes.
//   - The v1 issuer (https://sts.windows.net/{tid}/ in the public cloud) is read from the
//     tenant's v1 document ({authority}/{tid}/.well-known/openid-configuration), fetched only
//     for a verified token whose issuer looks like one, so that sovereign clouds are right too.
//
// With any tenant allowed ("*"), tenants other than the home and listed ones live in an LRU of
// MaxTenants, and new ones are admitted at most NewTenantBurst at once then NewTenantRate per
// second: beyond that, tokens of new tenants are refused (TooManyTenants) without a fetch. A
// token of a new tenant is first checked with the home tenant's key of its kid (Entra signs
// every tenant's tokens with the same keys): when it does not verify, it is refused before
// anything is done for its tenant; when it does, it is admitted under a bound of its own, so
// that forged tokens naming random tenants cannot lock real new tenants out. A tenant whose
// first fetch fails leaves the LRU at once (see forget): it is a new tenant again.

const (
	maxDocument = 1 << 20 // bytes of a configuration or key document
	maxKeys     = 100     // keys taken from one document
	maxBackoff  = 30 * time.Second
	minRSABits  = 2048
)

type keyCache struct {
	pl     runtime.Pipeline
	host   string
	now    func() time.Time
	logger *slog.Logger
	cred   string
	sf     singleflight.Group
	ids    atomic.Uint64

	any bool
	max int
	// limiter bounds the new tenants admitted (with "*") whose tokens could not be checked
	// with the home tenant's keys; verified those whose tokens verify with them (see tenant).
	limiter, verified *rate.Limiter

	mu      sync.Mutex
	home    *tenant            // the app's tenant, once its ID is known
	pinned  map[string]*tenant // home and listed tenants, by lower-case tenant ID
	domains []*domain          // home and listed tenants named by domain
	others  map[string]*tenant // with "*": other tenants, in lru
	lru     list.List          // front: most recently used
}

// tenant is one tenant's configuration and keys.
type tenant struct {
	id     string // lower-case tenant ID
	flight string // singleflight key of its fetches
	elem   *list.Element

	mu          sync.Mutex
	issuer      string // v2 issuer; "" until discovered
	jwksURI     string
	v1Issuer    string // "" until read
	keys        map[string]*rsa.PublicKey
	fetchedAt   time.Time // of keys
	refetchedAt time.Time // of the last refetch for an unknown kid
	failures    int
	retryAt     time.Time
	lastErr     error
	v1Failures  int
	v1RetryAt   time.Time
}

// domain is a configured tenant named by a domain (contoso.onmicrosoft.com): its tenant ID is read
// from its OpenID configuration's issuer.
type domain struct {
	name     string
	home     bool // the app's tenant
	resolved bool
	failures int
	retryAt  time.Time
	lastErr  error
}

func newKeyCache(pl runtime.Pipeline, cfg Config, now func() time.Time) *keyCache {
	k := &keyCache{
		pl: pl, host: cfg.AuthorityHost, now: now, logger: cfg.Logger, cred: cfg.Credential,
		max:      cfg.MaxTenants,
		limiter:  rate.NewLimiter(rate.Limit(NewTenantRate), NewTenantBurst),
		verified: rate.NewLimiter(rate.Limit(NewTenantRate), NewTenantBurst),
		pinned:   map[string]*tenant{},
		others:   map[string]*tenant{},
	}
	if k.max <= 0 {
		k.max = DefaultMaxTenants
	}
	for i, id := range append([]string{cfg.HomeTenant}, cfg.AllowedTenants...) {
		switch low := strings.ToLower(id); {
		case low == "*":
			k.any = true
		case IsGUID(low):
			if k.pinned[low] == nil {
				k.pinned[low] = k.newTenant(low)
			}
			if i == 0 {
				k.home = k.pinned[low]
			}
		case low == "" || low == "common" || low == "organizations" || low == "consumers":
			// Not a tenant: allows none by itself.
		default:
			k.domains = append(k.domains, &domain{name: low, home: i == 0})
		}
	}
	return k
}

func (k *keyCache) newTenant(id string) *tenant {
	return &tenant{id: id, flight: strconv.FormatUint(k.ids.Add(1), 10)}
}

// tenant returns the cache entry of tid (a lower-case GUID) when the tenant is allowed. kid and
// verifies (whether the token's signature verifies with a key) are for a tenant never seen
// before, with "*".
func (k *keyCache) tenant(ctx context.Context, tid, kid string, verifies func(*rsa.PublicKey) bool) (*tenant, error) {
	k.mu.Lock()
	if t := k.pinned[tid]; t != nil {
		k.mu.Unlock()
		return t, nil
	}
	var pending []*domain
	for _, d := range k.domains {
		if !d.resolved && !k.now().Before(d.retryAt) {
			pending = append(pending, d)
		}
	}
	k.mu.Unlock()
	if len(pending) > 0 {
		k.resolveDomains(ctx, pending)
		k.mu.Lock()
		t := k.pinned[tid]
		k.mu.Unlock()
		if t != nil {
			return t, nil
		}
	}
	if !k.any {
		if d, err := k.unresolved(); d != "" {
			// Fail closed, but say why: the tenant may be the one whose ID is unknown yet.
			return nil, &Error{Reason: KeysUnavailable, msg: fmt.Sprintf("its tenant %s is not one of the app's tenants known so far: the tenant ID of %s (configured by domain name) could not be read from its OpenID configuration", tid, d), err: err}
		}
		return nil, refuse(TenantNotAllowed, fmt.Sprintf("its tenant %s is not the app's tenant nor one of its additionally allowed tenants (AdditionallyAllowedTenants; \"*\" allows any)", tid))
	}
	k.mu.Lock()
	if t := k.others[tid]; t != nil {
		k.lru.MoveToFront(t.elem)
		k.mu.Unlock()
		return t, nil
	}
	home := k.home
	k.mu.Unlock()
	// A tenant never seen before. Entra signs every tenant's tokens with the same keys, which the
	// home tenant's jwks_uri publishes: a token that names one of them and does not verify with
	// it is forged, and costs nothing for its tenant; one that verifies is admitted under a bound
	// of its own, which forged tokens (anyone can write a tid) cannot use up. The others (a kid
	// the home tenant does not have, or its keys cannot be had) share the strict bound.
	limiter := k.limiter
	if home != nil {
		if pub, err := k.key(ctx, home, kid); err == nil {
			if !verifies(pub) {
				return nil, refuse(Signature, fmt.Sprintf("its signature does not verify with key %q (of the app's tenant %s, whose keys sign every tenant's tokens)", safetext.Clip(kid, 64), home.id))
			}
			limiter = k.verified
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if t := k.others[tid]; t != nil {
		k.lru.MoveToFront(t.elem)
		return t, nil
	}
	if !limiter.AllowN(k.now(), 1) {
		return nil, refuse(TooManyTenants, fmt.Sprintf("its tenant %s was never seen before, and more than %d new tenants came in a short time (at most %g per second): refused without fetching its keys; with AdditionallyAllowedTenants \"*\" any tenant may present tokens, list the tenants to accept instead", tid, NewTenantBurst, NewTenantRate))
	}
	t := k.newTenant(tid)
	t.elem = k.lru.PushFront(t)
	k.others[tid] = t
	for k.lru.Len() > k.max {
		old := k.lru.Remove(k.lru.Back()).(*tenant)
		delete(k.others, old.id)
	}
	return t, nil
}

// key returns tenant t's key kid, fetching the keys when the policy says so.
func (k *keyCache) key(ctx context.Context, t *tenant, kid string) (*rsa.PublicKey, error) {
	now := k.now()
	t.mu.Lock()
	pub, fresh := t.keys[kid], now.Sub(t.fetchedAt) < KeysMaxAge
	due := t.dueLocked(now, kid)
	t.mu.Unlock()
	if pub != nil && fresh {
		return pub, nil
	}
	if due {
		k.refresh(ctx, t, kid)
	}
	t.mu.Lock()
	keys, lastErr, retryAt := t.keys, t.lastErr, t.retryAt
	t.mu.Unlock()
	if keys == nil {
		cause := lastErr
		if cause == nil {
			cause = ctx.Err()
		}
		msg := fmt.Sprintf("the signing keys of tenant %s could not be fetched, and none were fetched before: the token cannot be verified (fail closed)", t.id)
		if wait := retryAt.Sub(k.now()); wait > 0 {
			msg += fmt.Sprintf("; next attempt in %s", wait.Round(100*time.Millisecond))
		}
		return nil, &Error{Reason: KeysUnavailable, msg: msg, err: cause}
	}
	if pub := keys[kid]; pub != nil {
		return pub, nil
	}
	return nil, refuse(UnknownKey, fmt.Sprintf("its signing key %q is not one of tenant %s's keys (%d published; they are fetched again for an unknown key at most once per %s)", safetext.Clip(kid, 64), t.id, len(keys), RefetchInterval))
}

// dueLocked reports whether t's configuration and keys should be fetched for a token signed with
// kid. t.mu must be held.
func (t *tenant) dueLocked(now time.Time, kid string) bool {
	switch {
	case now.Before(t.retryAt):
		return false
	case t.keys == nil, now.Sub(t.fetchedAt) >= KeysMaxAge:
		return true
	case t.keys[kid] == nil:
		return t.refetchedAt.IsZero() || now.Sub(t.refetchedAt) >= RefetchInterval
	}
	return false
}

// refresh fetches t's configuration and keys once for all concurrent callers and waits for it
// (or for ctx). The fetch runs on when ctx ends first, bounded by FetchTimeout.
func (k *keyCache) refresh(ctx context.Context, t *tenant, kid string) {
	ch := k.sf.DoChan("keys:"+t.flight, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), FetchTimeout)
		defer cancel()
		k.load(fctx, t, kid)
		return nil, nil
	})
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

// load fetches what t needs. Calls for one tenant never overlap (singleflight), and each decides
// again whether a fetch is due: a caller that comes just after a fetch does not fetch again.
func (k *keyCache) load(ctx context.Context, t *tenant, kid string) {
	now := k.now()
	t.mu.Lock()
	if !t.dueLocked(now, kid) {
		t.mu.Unlock()
		return
	}
	stale := t.keys != nil && now.Sub(t.fetchedAt) >= KeysMaxAge
	refetch := t.keys != nil && !stale
	needDoc := t.jwksURI == "" || stale
	jwksURI := t.jwksURI
	t.mu.Unlock()

	var issuer string
	var err error
	if needDoc {
		issuer, jwksURI, err = k.discover(ctx, t.id, false)
	}
	var keys map[string]*rsa.PublicKey
	if err == nil {
		keys, err = k.fetchKeys(ctx, jwksURI)
	}

	var cold bool
	defer func() { // after t.mu is released
		if cold {
			k.forget(t)
		}
	}()
	t.mu.Lock()
	defer t.mu.Unlock()
	if issuer != "" {
		t.issuer, t.jwksURI = issuer, jwksURI
	}
	if err != nil {
		cold = t.keys == nil
		t.failures++
		t.retryAt = now.Add(backoff(t.failures))
		t.lastErr = err
		k.log(slog.LevelWarn, "the signing keys of a tenant could not be fetched; keys fetched before are kept", slog.String("tenant", t.id), slog.Bool("have_keys", t.keys != nil), slog.Time("next_try", t.retryAt), slog.String("error", err.Error()))
		return
	}
	t.keys, t.fetchedAt, t.failures, t.retryAt, t.lastErr = keys, now, 0, time.Time{}, nil
	if refetch {
		t.refetchedAt = now
	}
	k.log(slog.LevelInfo, "signing keys fetched", slog.String("tenant", t.id), slog.Int("keys", len(keys)), slog.Bool("unknown_kid", refetch))
}

// forget removes t from the LRU of other tenants (with "*"), if it is there: a tenant none of whose
// keys could ever be fetched (most often a random tenant ID that does not exist) keeps no place
// in it, so that its next token must pass the bound on new tenants again: retries of tenants
// admitted once are not free of it, and forged tokens cannot push real tenants out of the LRU.
func (k *keyCache) forget(t *tenant) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.others[t.id] == t {
		k.lru.Remove(t.elem)
		delete(k.others, t.id)
	}
}

func backoff(failures int) time.Duration {
	d := time.Second << min(failures-1, 5)
	return min(d, maxBackoff)
}

// checkIssuer checks that iss is t's v2 issuer or its v1 issuer. t's v2 configuration has been
// fetched (the key was found); the v1 document is fetched once, only for an issuer that looks
// like a v1 issuer of t (https://.../{tid}/).
func (k *keyCache) checkIssuer(ctx context.Context, t *tenant, iss string) error {
	t.mu.Lock()
	v2, v1 := t.issuer, t.v1Issuer
	t.mu.Unlock()
	if iss != "" && (iss == v2 || iss == v1) {
		return nil
	}
	want := v2
	if v1 != "" {
		want += " or " + v1
	}
	wrong := refuse(Issuer, fmt.Sprintf("its issuer %q is not tenant %s's (%s)", safetext.Clip(iss, 120), t.id, want))
	if v1 != "" || !strings.HasPrefix(iss, "https://") || !strings.HasSuffix(strings.ToLower(iss), "/"+t.id+"/") {
		return wrong
	}
	ch := k.sf.DoChan("v1:"+t.flight, func() (any, error) {
		now := k.now()
		t.mu.Lock()
		skip := t.v1Issuer != "" || now.Before(t.v1RetryAt)
		t.mu.Unlock()
		if skip {
			return nil, nil
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), FetchTimeout)
		defer cancel()
		issuer, _, err := k.discover(fctx, t.id, true)
		t.mu.Lock()
		defer t.mu.Unlock()
		if err != nil {
			t.v1Failures++
			t.v1RetryAt = now.Add(backoff(t.v1Failures))
			k.log(slog.LevelWarn, "the v1 OpenID configuration of a tenant could not be fetched", slog.String("tenant", t.id), slog.String("error", err.Error()))
			return nil, err
		}
		t.v1Issuer, t.v1Failures = issuer, 0
		return nil, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return &Error{Reason: KeysUnavailable, msg: fmt.Sprintf("its issuer %q looks like tenant %s's v1 issuer, whose OpenID configuration could not be fetched", safetext.Clip(iss, 120), t.id), err: res.Err}
		}
	case <-ctx.Done():
		return &Error{Reason: KeysUnavailable, msg: fmt.Sprintf("waiting for tenant %s's v1 OpenID configuration", t.id), err: ctx.Err()}
	}
	t.mu.Lock()
	v1 = t.v1Issuer
	t.mu.Unlock()
	if v1 != "" && iss == v1 {
		return nil
	}
	return refuse(Issuer, fmt.Sprintf("its issuer %q is not tenant %s's (%s or %s)", safetext.Clip(iss, 120), t.id, v2, v1))
}

// unresolved returns the first configured domain whose tenant ID is not known, and why.
func (k *keyCache) unresolved() (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, d := range k.domains {
		if !d.resolved {
			return d.name, d.lastErr
		}
	}
	return "", nil
}

// resolveDomains reads the tenant IDs of configured tenants named by domain.
func (k *keyCache) resolveDomains(ctx context.Context, pending []*domain) {
	for _, d := range pending {
		ch := k.sf.DoChan("domain:"+d.name, func() (any, error) {
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), FetchTimeout)
			defer cancel()
			issuer, jwksURI, err := k.discover(fctx, d.name, false)
			var tid string
			if err == nil {
				if tid = tenantOfIssuer(issuer); tid == "" {
					err = fmt.Errorf("the issuer %q of its OpenID configuration names no tenant ID", safetext.Clip(issuer, 120))
				}
			}
			k.mu.Lock()
			defer k.mu.Unlock()
			if err != nil {
				d.failures++
				d.retryAt = k.now().Add(backoff(d.failures))
				d.lastErr = err
				k.log(slog.LevelWarn, "the tenant ID of a tenant named by domain could not be read", slog.String("tenant", d.name), slog.String("error", err.Error()))
				return nil, nil
			}
			d.resolved = true
			if k.pinned[tid] == nil {
				t := k.newTenant(tid)
				t.issuer, t.jwksURI = issuer, jwksURI
				k.pinned[tid] = t
			}
			if d.home {
				k.home = k.pinned[tid]
			}
			return nil, nil
		})
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// tenantOfIssuer returns the lower-case tenant ID in issuer's path
// (https://login.microsoftonline.com/{tid}/v2.0), or "".
func tenantOfIssuer(issuer string) string {
	u, err := url.Parse(issuer)
	if err != nil {
		return ""
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if IsGUID(seg) {
			return strings.ToLower(seg)
		}
	}
	return ""
}

// discover fetches the OpenID configuration of tenant (a tenant ID or a domain): v2
// ({authority}/{tenant}/v2.0/.well-known/openid-configuration) or v1
// ({authority}/{tenant}/.well-known/openid-configuration), and returns its issuer and jwks_uri.
func (k *keyCache) discover(ctx context.Context, tenant string, v1 bool) (issuer, jwksURI string, err error) {
	u := k.host + tenant + "/v2.0/.well-known/openid-configuration"
	if v1 {
		u = k.host + tenant + "/.well-known/openid-configuration"
	}
	body, err := k.get(ctx, u)
	if err != nil {
		return "", "", err
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", "", fmt.Errorf("GET %s: the answer is not an OpenID configuration document", u)
	}
	// The common and organizations documents say {tenantid}; the tenant's own name it.
	issuer = strings.ReplaceAll(doc.Issuer, "{tenantid}", tenant)
	jwksURI = strings.ReplaceAll(doc.JWKSURI, "{tenantid}", tenant)
	if IsGUID(tenant) && !strings.Contains(strings.ToLower(issuer), tenant) {
		return "", "", fmt.Errorf("GET %s: its issuer %q does not name the tenant", u, safetext.Clip(issuer, 120))
	}
	if !strings.HasPrefix(issuer, "https://") {
		return "", "", fmt.Errorf("GET %s: its issuer %q is not an https URL", u, safetext.Clip(issuer, 120))
	}
	if ju, err := url.Parse(jwksURI); !v1 && (err != nil || ju.Scheme != "https" || ju.Host == "") {
		return "", "", fmt.Errorf("GET %s: its jwks_uri %q is not an https URL", u, safetext.Clip(jwksURI, 120))
	}
	return issuer, jwksURI, nil
}

// fetchKeys fetches a JWK set and returns its RSA signing keys by kid. Each key is decoded by
// go-jose (which checks x5c and x5t against the key); keys it cannot decode, or that are not RSA
// signing keys of at least 2048 bits, are skipped, so one odd key does not hide the others.
func (k *keyCache) fetchKeys(ctx context.Context, jwksURI string) (map[string]*rsa.PublicKey, error) {
	body, err := k.get(ctx, jwksURI)
	if err != nil {
		return nil, err
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("GET %s: the answer is not a JWK set", jwksURI)
	}
	keys := map[string]*rsa.PublicKey{}
	for i, raw := range set.Keys {
		if i == maxKeys {
			break
		}
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil {
			continue
		}
		pub, ok := jwk.Key.(*rsa.PublicKey)
		if !ok || jwk.KeyID == "" || (jwk.Use != "" && jwk.Use != "sig") || (jwk.Algorithm != "" && jwk.Algorithm != string(jose.RS256)) || pub.N.BitLen() < minRSABits {
			continue
		}
		keys[jwk.KeyID] = pub
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("GET %s: no RSA signing key in the JWK set (%d keys)", jwksURI, len(set.Keys))
	}
	return keys, nil
}

// get fetches a document through the pipeline, reading at most maxDocument bytes.
func (k *keyCache) get(ctx context.Context, u string) ([]byte, error) {
	req, err := runtime.NewRequest(ctx, http.MethodGet, u)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	runtime.SkipBodyDownload(req)
	req.Raw().Header.Set("Accept", "application/json")
	resp, err := k.pl.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w (%v)", ctxErr, err)
		}
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: reading the answer: %w", u, err)
	}
	if len(body) > maxDocument {
		return nil, fmt.Errorf("GET %s: the answer is larger than %d bytes", u, maxDocument)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d%s", u, resp.StatusCode, entraError(body))
	}
	return body, nil
}

// entraError summarizes an Entra error body (": AADSTS90002: Tenant '...' not found..."), or "".
func entraError(body []byte) string {
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		return ""
	}
	d := e.Description
	if i := strings.IndexAny(d, "\r\n"); i >= 0 {
		d = d[:i]
	}
	return ": " + safetext.Clip(e.Error, 40) + ": " + safetext.Clip(d, 200)
}

func (k *keyCache) log(level slog.Level, msg string, attrs ...slog.Attr) {
	if k.logger == nil {
		return
	}
	// A panic in the user's slog handler must not take a key fetch (and every verification
	// waiting for it) with it.
	defer func() { _ = recover() }()
	k.logger.LogAttrs(context.Background(), level, msg, append([]slog.Attr{slog.String("credential", k.cred)}, attrs...)...)
}
