package obo

import (
	"container/list"
	"sync"
	"sync/atomic"

	"github.com/azcredkit/azcredkit/internal/tokencache"
)

// DefaultMaxCachedUsers bounds the per-user token cache when AppOptions.MaxCachedUsers is 0.
const DefaultMaxCachedUsers = 10_000

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
	admit  sync.Mutex // held to add an entry: one admission at a time
	size   atomic.Int64
	max    int64
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
	c := &userCache{max: int64(max)}
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
	// No one else adds while admit is held, and size falls with every removal: when evictOne
	// finds every shard empty, size is 0.
	for c.size.Load() >= c.max {
		if !c.evictOne(int(k[0] % cacheShards)) {
			break
		}
	}
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := &userEntry{key: k, claims: claims}
	e.elem = s.lru.PushFront(e)
	s.m[k] = e
	c.size.Add(1)
	return e
}

// evictOne removes the least recently used entry of shard i, or of the next shard that has one.
// It reports false when every shard was empty.
func (c *userCache) evictOne(i int) bool {
	for j := range cacheShards {
		s := &c.shards[(i+j)%cacheShards]
		s.mu.Lock()
		if back := s.lru.Back(); back != nil {
			old := s.lru.Remove(back).(*userEntry)
			delete(s.m, old.key)
			c.size.Add(-1)
			s.mu.Unlock()
			return true
		}
		s.mu.Unlock()
	}
	return false
}

// remove drops k (its user token expired).
func (c *userCache) remove(k userKey) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.m[k]; e != nil {
		s.lru.Remove(e.elem)
		delete(s.m, k)
		c.size.Add(-1)
	}
}

// len returns the number of cached user assertions.
func (c *userCache) len() int { return int(c.size.Load()) }
