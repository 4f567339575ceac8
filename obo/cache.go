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
// shard (or of the next non-empty one), so the bound is global while locks stay per shard.
type userCache struct {
	shards [cacheShards]shard
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

// add stores a new entry for k (or returns the one another request added first). It first
// reserves room, evicting least recently used entries while the cache is full, so that the number
// of entries never exceeds the bound, even for a moment.
func (c *userCache) add(k userKey, claims userClaims) *userEntry {
	if e := c.get(k); e != nil {
		return e
	}
	for {
		n := c.size.Load()
		if n < c.max {
			if c.size.CompareAndSwap(n, n+1) {
				break
			}
			continue
		}
		if !c.evictOne(int(k[0] % cacheShards)) {
			c.size.Add(1) // nothing left to evict (cannot happen with max >= 1)
			break
		}
	}
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.m[k]; e != nil { // added meanwhile: give the room back
		c.size.Add(-1)
		s.lru.MoveToFront(e.elem)
		return e
	}
	e := &userEntry{key: k, claims: claims}
	e.elem = s.lru.PushFront(e)
	s.m[k] = e
	return e
}

// evictOne removes the least recently used entry of shard i, or of the next shard that has one.
func (c *userCache) evictOne(i int) bool {
	for j := range cacheShards {
		s := &c.shards[(i+j)%cacheShards]
		s.mu.Lock()
		if back := s.lru.Back(); back != nil {
			old := s.lru.Remove(back).(*userEntry)
			delete(s.m, old.key)
			s.mu.Unlock()
			c.size.Add(-1)
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
