package obo

import (
	"container/list"
	"context"
	"sync"
	"sync/atomic"

	"github.com/azcredkit/azcredkit/internal/metering"
	"github.com/azcredkit/azcredkit/internal/tokencache"
	"github.com/azcredkit/azcredkit/metrics"
)

// DefaultMaxCachedUsers bounds the per-user token cache when AppOptions.MaxCachedUsers is 0.
const DefaultMaxCachedUsers = 10_000

// MaxTokensPerUser bounds how many user assertions (distinct access tokens) of one user (tenant
// and object ID) the cache holds: a new one beyond it replaces that user's oldest. A user has a
// token or two at a time (one per client app, and a refreshed one while the old still lives), so
// one user presenting many fresh tokens cannot push every other user out of the cache (each would
// then cost a new exchange).
const MaxTokensPerUser = 8

const cacheShards = 16

// userKey identifies one user assertion: the SHA-256 of the user's access token. A credential is
// bound to one key for its whole life, so it can only ever see that user's tokens.
type userKey [32]byte

// userEntry holds one user assertion's OBO tokens (one Slot per tenant + scopes + CAE).
type userEntry struct {
	key    userKey
	claims userClaims
	tokens tokencache.Map
	elem   *list.Element
	// byUser is the entry's element in its user's list (userCache.users, under admit).
	byUser *list.Element
}

// userCache is a sharded LRU of userEntry holding at most max entries in all: each shard keeps its
// own recency order, and an insertion beyond the bound evicts the least recently used entry of its
// shard (or of the next non-empty one), so the bound is global while lookups lock one shard only.
//
// The bound is exact, even under concurrency: a new entry is admitted only under admit, one at a
// time, after evicting until there is room; and size changes only together with a shard's map,
// under that shard's lock. So size is always the number of entries, and only an admission (under
// admit) can make it grow: no moment, however brief, sees more than max entries.
type userCache struct {
	shards [cacheShards]shard
	admit  sync.Mutex // held to add or remove an entry: one admission at a time
	size   atomic.Int64
	max    int64
	// users lists the entries of each user (tenant/object ID), oldest first; under admit.
	users map[string]*list.List
	// meter gets the size (OBOCacheSize) after each change and the evictions.
	meter metering.Meter
}

type shard struct {
	mu  sync.Mutex
	m   map[userKey]*userEntry
	lru list.List // front: most recently used
}

func newUserCache(max int) *userCache {
	if max <= 0 {
		max = DefaultMaxCachedUsers
	}
	c := &userCache{max: int64(max), users: map[string]*list.List{}}
	for i := range c.shards {
		c.shards[i].m = make(map[userKey]*userEntry)
	}
	return c
}

func (c *userCache) shard(k userKey) *shard { return &c.shards[k[0]%cacheShards] }

// get returns the entry for k, marking it recently used.
func (c *userCache) get(k userKey) *userEntry {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[k]
	if e != nil {
		s.lru.MoveToFront(e.elem)
	}
	return e
}

// add stores a new entry for k (or returns the one another request added first), evicting least
// recently used entries first while the cache is full. Only the admission of a new user is
// serialized (it follows a local parse of the user's token and precedes an exchange with Entra,
// both far costlier); lookups of cached users (get) never take admit.
func (c *userCache) add(k userKey, claims userClaims) *userEntry {
	if e := c.get(k); e != nil {
		return e
	}
	c.admit.Lock()
	defer c.admit.Unlock()
	if e := c.get(k); e != nil { // added while this request waited for admit
		return e
	}
	// One user's oldest assertions make room for their new one first.
	u := claims.TID + "/" + claims.OID
	for l := c.users[u]; l != nil && l.Len() >= MaxTokensPerUser; {
		c.removeLocked(l.Front().Value.(*userEntry))
		c.meter.Add(context.Background(), metrics.OBOCacheEvictions, "", "")
	}
	// No one else adds while admit is held, and size falls with every removal: when evictOne
	// finds every shard empty, size is 0.
	for c.size.Load() >= c.max {
		if !c.evictOne(int(k[0] % cacheShards)) {
			break
		}
		c.meter.Add(context.Background(), metrics.OBOCacheEvictions, "", "")
	}
	defer c.sizeChanged()
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := &userEntry{key: k, claims: claims}
	e.elem = s.lru.PushFront(e)
	s.m[k] = e
	c.size.Add(1)
	l := c.users[u]
	if l == nil {
		l = list.New()
		c.users[u] = l
	}
	e.byUser = l.PushBack(e)
	return e
}

// forgetUser drops e from its user's list. admit must be held.
func (c *userCache) forgetUser(e *userEntry) {
	u := e.claims.TID + "/" + e.claims.OID
	if l := c.users[u]; l != nil && e.byUser != nil {
		l.Remove(e.byUser)
		e.byUser = nil
		if l.Len() == 0 {
			delete(c.users, u)
		}
	}
}

// removeLocked drops e from the cache if it is still there. admit must be held.
func (c *userCache) removeLocked(e *userEntry) {
	s := c.shard(e.key)
	s.mu.Lock()
	if s.m[e.key] == e {
		s.lru.Remove(e.elem)
		delete(s.m, e.key)
		c.size.Add(-1)
	}
	s.mu.Unlock()
	c.forgetUser(e)
}

// evictOne removes the least recently used entry of shard i, or of the next shard that has one.
// It reports false when every shard was empty. admit must be held.
func (c *userCache) evictOne(i int) bool {
	for j := range cacheShards {
		s := &c.shards[(i+j)%cacheShards]
		s.mu.Lock()
		if back := s.lru.Back(); back != nil {
			old := s.lru.Remove(back).(*userEntry)
			delete(s.m, old.key)
			c.size.Add(-1)
			s.mu.Unlock()
			c.forgetUser(old)
			return true
		}
		s.mu.Unlock()
	}
	return false
}

// remove drops k (its user token expired).
func (c *userCache) remove(k userKey) {
	c.admit.Lock()
	defer c.admit.Unlock()
	s := c.shard(k)
	s.mu.Lock()
	e := s.m[k]
	s.mu.Unlock()
	if e != nil {
		c.removeLocked(e)
		c.sizeChanged()
	}
}

// sizeChanged reports the cache's size (under admit: sizes are reported in order).
func (c *userCache) sizeChanged() {
	c.meter.Set(context.Background(), metrics.OBOCacheSize, float64(c.size.Load()))
}

// len returns the number of cached user assertions.
func (c *userCache) len() int { return int(c.size.Load()) }
