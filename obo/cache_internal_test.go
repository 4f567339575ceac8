package obo

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// snapshot locks every shard and returns the entries they hold, the size counter, and whether
// each shard's map and recency list agree.
func (c *userCache) snapshot() (entries int, size int64, consistent bool) {
	for i := range c.shards {
		c.shards[i].mu.Lock()
	}
	consistent = true
	for i := range c.shards {
		s := &c.shards[i]
		entries += len(s.m)
		if s.lru.Len() != len(s.m) {
			consistent = false
		}
	}
	size = c.size.Load()
	for i := range c.shards {
		c.shards[i].mu.Unlock()
	}
	return entries, size, consistent
}

// TestUserCacheBoundExactUnderConcurrency: many goroutines admit distinct users while a sampler
// checks that neither the entries nor the size counter ever exceed the bound, and that the
// counter is exactly the number of entries whenever no shard is being changed.
func TestUserCacheBoundExactUnderConcurrency(t *testing.T) {
	for _, max := range []int{1, 2, 8} {
		t.Run(fmt.Sprintf("max %d", max), func(t *testing.T) {
			c := newUserCache(max)
			workers := 8 * runtime.GOMAXPROCS(0)
			const perWorker = 1000
			var next atomic.Uint64
			var stop atomic.Bool
			var worst atomic.Int64
			note := func(n int64) {
				for {
					w := worst.Load()
					if n <= w || worst.CompareAndSwap(w, n) {
						return
					}
				}
			}
			var sampler sync.WaitGroup
			var violations []string
			sampler.Go(func() {
				for !stop.Load() {
					note(int64(c.len()))
					entries, size, ok := c.snapshot()
					note(int64(entries))
					if (size != int64(entries) || !ok) && len(violations) < 5 {
						violations = append(violations, fmt.Sprintf("size %d, entries %d, lists consistent %v", size, entries, ok))
					}
				}
			})
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() {
					var b [8]byte
					for i := range perWorker {
						binary.LittleEndian.PutUint64(b[:], next.Add(1))
						k := userKey(sha256.Sum256(b[:]))
						if e := c.add(k, userClaims{}); e == nil || e.key != k {
							t.Error("add returned another user's entry")
							return
						}
						note(int64(c.len()))
						if i%7 == 0 { // some users' tokens expire
							c.remove(k)
						}
					}
				})
			}
			wg.Wait()
			stop.Store(true)
			sampler.Wait()
			if w := worst.Load(); w > int64(max) {
				t.Errorf("the cache held %d users at some point, bound %d", w, max)
			}
			for _, v := range violations {
				t.Errorf("size invariant broken: %s", v)
			}
			entries, size, ok := c.snapshot()
			if !ok || size != int64(entries) || entries > max {
				t.Errorf("at rest: size %d, entries %d (bound %d), lists consistent %v", size, entries, max, ok)
			}
		})
	}
}

// TestUserCachePerUserBound: goroutines admit and remove many assertions of a few users at once;
// no user ever has more than MaxTokensPerUser entries, and the per-user lists hold exactly the
// cached entries.
func TestUserCachePerUserBound(t *testing.T) {
	c := newUserCache(1000)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				var k userKey
				binary.BigEndian.PutUint64(k[:], uint64(g*1000+i))
				k = sha256.Sum256(k[:])
				c.add(k, userClaims{TID: "t", OID: fmt.Sprint(i % 3)})
				if i%5 == 0 {
					c.remove(k)
				}
			}
		}()
	}
	wg.Wait()
	c.admit.Lock()
	defer c.admit.Unlock()
	listed := 0
	for u, l := range c.users {
		if l.Len() > MaxTokensPerUser {
			t.Errorf("user %s has %d entries, more than %d", u, l.Len(), MaxTokensPerUser)
		}
		for el := l.Front(); el != nil; el = el.Next() {
			e := el.Value.(*userEntry)
			if c.get(e.key) != e {
				t.Errorf("user %s lists an entry that is not cached", u)
			}
		}
		listed += l.Len()
	}
	if entries, _, _ := c.snapshot(); entries != listed {
		t.Errorf("%d entries cached, %d in the per-user lists", entries, listed)
	}
}
