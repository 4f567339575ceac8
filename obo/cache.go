package obo

import (
	"container/list"
	"sync"

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

// userCache is a sharded LRU of userEntry, bounded to max entries in all.
type userCache struct {
	shards []shard
}

type shard struct {
	mu  sync.Mutex
	m   map[userKey]*userEntry
	lru list.List // front: most recently used
	max int
}

func newUserCache(max int) *userCache {
	if max <= 0 {
		max = DefaultMaxCachedUsers
	}
	n := min(cacheShards, max)
	c := &userCache{shards: make([]shard, n)}
	for i := range c.shards {
		c.shards[i].m = make(map[userKey]*userEntry)
		c.shards[i].max = max / n
		if i < max%n {
			c.shards[i].max++ // the shards' bounds add up to max exactly
		}
	}
	return c
}

func (c *userCache) shard(k userKey) *shard { return &c.shards[int(k[0])%len(c.shards)] }

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

// add stores a new entry for k (or returns the one another request added first), evicting the
// least recently used entries beyond the bound.
func (c *userCache) add(k userKey, claims userClaims) *userEntry {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.m[k]; e != nil {
		s.lru.MoveToFront(e.elem)
		return e
	}
	e := &userEntry{key: k, claims: claims}
	e.elem = s.lru.PushFront(e)
	s.m[k] = e
	for s.lru.Len() > s.max {
		old := s.lru.Remove(s.lru.Back()).(*userEntry)
		delete(s.m, old.key)
	}
	return e
}

// remove drops k (its user token expired).
func (c *userCache) remove(k userKey) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.m[k]; e != nil {
		s.lru.Remove(e.elem)
		delete(s.m, k)
	}
}

// len returns the number of cached user assertions.
func (c *userCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
